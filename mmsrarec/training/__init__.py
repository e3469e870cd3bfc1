"""Training loops, one stage per module.

- `sasrec_trainer`: SASRec (the retrieval encoder and a baseline).
- `summarizer`: GRPO of the keyword summarizer on the critic's rewards (TRL, LoRA).
- `yes_no_trainer`: listwise training of the yes/no scorer with hybrid item tokens.
- `item_lm_trainer`: sequence-level training of the hybrid-token LLM recommender.
- `config`: the summarizer's settings (a TRL config subclass); `adapters`: load and switch
  LoRA adapters on one base model; `checkpoints`, `plots`: resume markers, curves as PNG.
"""
