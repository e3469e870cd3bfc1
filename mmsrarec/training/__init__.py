"""Training loops, one stage per module.

- `sasrec_trainer`: SASRec (the retrieval encoder and a baseline).
- `summarizer`: GRPO of the keyword summarizer on the critic's rewards (TRL, LoRA).
- `recommender`: multi-task LoRA SFT of the recommender (TRL), instructions in
  `instructions`.
- `config`: the two trainers' settings (TRL config subclasses); `adapters`: load and switch
  the LoRA adapters on one base model; `plots`: reward and loss curves as PNG.
"""
