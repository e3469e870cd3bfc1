"""Training loops: SASRec (`sasrec_trainer`); the summarizer's GRPO and the recommender's SFT
live beside it."""
