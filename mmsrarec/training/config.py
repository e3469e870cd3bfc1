"""Training settings of the summarizer (GRPO): TRL's config dataclass plus our fields, each
with its `help`, checked together in `__post_init__`.

Defaults are the small CPU settings documented in `benchmarks/ACCURACY.md`; on a GPU raise
`n_items` and the step counts. They are written here only: the options of
`mmsrarec train summarizer` take their defaults and help from these fields.
Precision: bf16 only where a CUDA device has it (TRL's default of bf16 everywhere fails on
CPU), fp32 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import GRPOConfig

from mmsrarec.critic.rewards import RewardWeights
from mmsrarec.errors import ConfigError
from mmsrarec.summarization.stopping import MAX_NEW_TOKENS


def _precision(config: GRPOConfig) -> None:
    """bf16 where CUDA supports it, else fp32 (TRL's bf16 default fails on CPU); gradient
    checkpointing on CUDA only."""
    cuda = torch.cuda.is_available() and not config.use_cpu
    if config.bf16 is None:
        config.bf16 = bool(cuda and torch.cuda.is_bf16_supported())
    if not cuda:  # recomputing activations only saves memory; on CPU it just costs time
        config.gradient_checkpointing = False
    if config.bf16 and not cuda:
        raise ConfigError("`bf16` needs a CUDA device; set `bf16=False` (fp32) on CPU")


@dataclass
class LoraFields:
    """LoRA settings shared by both trainers (peft `LoraConfig`)."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_targets: str = field(
        default="q_proj,k_proj,v_proj,o_proj",
        metadata={"help": "Comma-separated module names that get adapters, or `all-linear`."},
    )

    def check_lora(self) -> None:
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ConfigError("`lora_r` and `lora_alpha` must be at least 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"`lora_dropout` must be in [0, 1), got {self.lora_dropout}")

    def lora_config(self):
        """The peft `LoraConfig` for a causal LM."""
        from peft import LoraConfig

        targets = self.lora_targets
        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=targets if targets == "all-linear" else targets.split(","),
            task_type="CAUSAL_LM",
        )


@dataclass
class SummarizerTrainConfig(LoraFields, GRPOConfig):
    """GRPO of the keyword summarizer on training items' descriptions."""

    n_items: int = field(
        default=64, metadata={"help": "Training items (prompts) for GRPO, drawn with `seed`."}
    )
    n_heldout: int = field(
        default=128,
        metadata={"help": "Items kept out of GRPO, summarised and scored before and after."},
    )
    alpha: float = field(
        default=RewardWeights().alpha, metadata={"help": "Weight of the normalised R_info."}
    )
    beta_recon: float = field(
        default=RewardWeights().beta, metadata={"help": "Weight of the normalised R_recon."}
    )
    gamma: float = field(
        default=RewardWeights().gamma, metadata={"help": "Weight of the normalised R_len."}
    )
    delta_collab: float = field(
        default=RewardWeights().delta,
        metadata={"help": "Weight of the normalised R_collab (ours; 0 leaves it out)."},
    )
    # TRL field defaults we change: a short CPU run, few, short completions; every component
    # logged. `mmsrarec train summarizer` takes its option defaults from these fields.
    max_steps: int = field(default=40, metadata={"help": "Optimizer steps (-1: run epochs)."})
    max_minutes: float = field(
        default=0.0,
        metadata={"help": "Stop after this many minutes of training, at a step's end (0: none)."},
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of item sampling, LoRA init and generation."}
    )
    num_generations: int | None = field(
        default=4, metadata={"help": "Completions per prompt (the GRPO group)."}
    )
    max_completion_length: int | None = field(
        default=MAX_NEW_TOKENS,
        metadata={"help": "Tokens per completion: the summarizer's inference budget."},
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Completions per device per step (a multiple of the group)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate (LoRA)."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (0: no reference model)."})
    logging_steps: float = field(default=1, metadata={"help": "Log every N steps."})
    save_steps: float = field(default=10, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "No trackers."})

    def __post_init__(self) -> None:
        _precision(self)
        self.check_lora()
        if self.n_items < 1 or self.n_heldout < 0:
            raise ConfigError("`n_items` must be at least 1 and `n_heldout` at least 0")
        if self.num_generations is None or self.num_generations < 2:
            raise ConfigError("`num_generations` must be at least 2: GRPO compares a group")
        if self.max_completion_length != MAX_NEW_TOKENS:
            raise ConfigError(f"`max_completion_length` must equal the summarizer's inference "
                              f"budget ({MAX_NEW_TOKENS}): GRPO trains the answers inference "
                              "gives")  # fmt: skip
        self.reward_weights_model()  # fail early on bad weights
        super().__post_init__()

    def reward_weights_model(self) -> RewardWeights:
        """The critic's `RewardWeights` for these alpha, beta_recon, gamma, delta_collab."""
        try:
            return RewardWeights(alpha=self.alpha, beta=self.beta_recon, gamma=self.gamma,
                                 delta=self.delta_collab)  # fmt: skip
        except ValueError as exc:
            raise ConfigError(
                f"reward weights `alpha`/`beta_recon`/`gamma`/`delta_collab`: {exc}"
            ) from None
