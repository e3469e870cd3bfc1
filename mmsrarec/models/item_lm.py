"""An LLM backbone that reads items as tokens and scores the whole catalog at every position.

After E4SRec and LLaRA: each item is one input vector, the sum of two learned projections,

    e_i = W_id · id_i + W_text · t_i                          [hidden]

where `id_i` is a collaborative ID embedding (trainable, initialised from the trained SASRec
of the same seed) and `t_i` a frozen text feature of the item (the LLM's own mean-pooled
hidden states over its keywords and title, see `models/item_text.py`). A user's history
becomes the sequence e_{h_1} .. e_{h_T}; the first `layers` decoder layers of the LLM (LoRA
adapters on every projection, the rest frozen) read it causally, and position t scores every
item by

    score_t(j) = W_out(h_t) · e_j / sqrt(hidden) + b_j

so one forward gives a full-catalog distribution at every position (trained with softmax
cross-entropy over all items; `training/item_lm_trainer.py`).

Items without a trained ID (`has_id` False: the cold items of the new-releases split, or
items added after training) fall back on their text, on the input and the output side:
e_i = W_text · t_i, and their bias is the text's, b_i = w_bias · t_i (every item carries that
text bias; an item with an ID adds its own). `id_dropout` hides the IDs of a random share of
items in every training batch (DropoutNet), so that the text path learns to score an item
the way its interactions would; items without an ID never enter the training softmax.

Optional retrieval tokens: the items that the k most similar training users chose next,
placed before the history after a learned separator, `[SEP, r_1 .. r_k, h_1 .. h_T]` (the
separator first, so that no query row is ever fully masked).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from transformers import PreTrainedModel

from mmsrarec.errors import ConfigError

ItemTokens = Literal["hybrid", "id", "text"]
# ID dropout where the catalog has items without interactions: chosen on the new-releases
# split's validation (pseudo-cold items, see benchmarks/coldstart/RESULTS.md).
AUTO_ID_DROPOUT = 0.25
Backbone = Literal["pretrained", "random"]
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ItemLMConfig:
    """Model and training settings of the LLM recommender (defaults chosen on validation)."""

    layers: int = field(
        default=4, metadata={"help": "Decoder layers of the LLM kept (from the bottom)."}
    )
    item_tokens: ItemTokens = field(
        default="hybrid",
        metadata={"help": "`hybrid` = ID + text projections; `id` or `text` alone (controls)."},
    )
    text_features: Literal["llm", "minilm", "permuted"] = field(
        default="llm",
        metadata={
            "help": "`llm`: the LLM's hidden states; `minilm`: the sentence encoder; "
            "`permuted`: the LLM's features shuffled across items (control)."
        },
    )
    text_init: Literal["zero", "normal"] = field(
        default="zero",
        metadata={
            "help": "Hybrid tokens: `zero` starts the text projection at 0, so training starts "
            "from the ID tokens and adds text where it lowers the loss; `normal` starts both "
            "at random (the text part then outweighs the IDs by an order of magnitude)."
        },
    )
    backbone: Backbone = field(
        default="pretrained",
        metadata={"help": "`random`: same shape, randomly initialised (control)."},
    )
    k_similar: int = field(
        default=0,
        metadata={"help": "Retrieval tokens: next items of this many similar users (0 = off)."},
    )
    id_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Hybrid tokens: share of items whose ID is hidden in each training batch "
            "(input and output side), so the text path learns to score items without "
            "interactions (new releases); 0 = off, 1 = the text path alone. Default: "
            f"{AUTO_ID_DROPOUT} where the catalog has items without interactions (the "
            "new-releases split), else 0."
        },
    )
    loss: Literal["full", "sampled", "auto"] = field(
        default="auto",
        metadata={
            "help": "`full`: softmax over every item at each position; `sampled`: against "
            "`sampled_negatives` items drawn for the batch (mixed popular and uniform, logQ "
            "correction: `training/losses.py`); `auto`: full up to that module's "
            "`FULL_SOFTMAX_MAX_ITEMS` items, sampled above."
        },
    )
    sampled_negatives: int = field(
        default=1024, metadata={"help": "`loss=sampled`: items drawn per training batch."}
    )
    max_len: int = field(default=50, metadata={"help": "History items per window."})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank on every projection."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the item tokens."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    schedule: Literal["cosine", "constant"] = field(
        default="cosine",
        metadata={"help": "Learning rate over `max_epochs`: 5% warm-up then cosine decay to 0."},
    )
    batch_size: int = field(default=32, metadata={"help": "Windows per training step."})
    max_epochs: int = field(default=8, metadata={"help": "Upper bound on training epochs."})
    patience: int = field(
        default=2, metadata={"help": "Stop after this many epochs without a better validation."}
    )
    bf16: bool = field(
        default=True, metadata={"help": "bfloat16 autocast for the backbone's matrix products."}
    )

    def __post_init__(self) -> None:
        for name in ("layers", "max_len", "lora_rank", "batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.k_similar < 0:
            raise ConfigError(f"`k_similar` must be >= 0, got {self.k_similar}")
        if self.item_tokens not in ("hybrid", "id", "text"):
            raise ConfigError(f"`item_tokens` must be hybrid, id or text, got {self.item_tokens}")
        if self.text_features not in ("llm", "minilm", "permuted"):
            raise ConfigError("`text_features` must be llm, minilm or permuted")
        if self.text_init not in ("zero", "normal"):
            raise ConfigError(f"`text_init` must be zero or normal, got {self.text_init}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"`schedule` must be cosine or constant, got {self.schedule}")
        if self.backbone not in ("pretrained", "random"):
            raise ConfigError(f"`backbone` must be pretrained or random, got {self.backbone}")
        if not 0.0 <= self.dropout < 1.0 or self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("`dropout` must be in [0, 1), `lr` > 0 and `weight_decay` >= 0")
        if self.id_dropout is not None and not 0.0 <= self.id_dropout <= 1.0:
            raise ConfigError(f"`id_dropout` must be in [0, 1], got {self.id_dropout}")
        if self.id_dropout and self.item_tokens != "hybrid":
            raise ConfigError("`id_dropout` needs hybrid item tokens (an ID and a text part)")
        if self.loss not in ("full", "sampled", "auto"):
            raise ConfigError(f"`loss` must be full, sampled or auto, got `{self.loss}`")
        if self.sampled_negatives < 1:
            raise ConfigError(f"`sampled_negatives` must be at least 1: {self.sampled_negatives}")

    def id_dropout_for(self, has_cold: bool) -> float:
        """The ID dropout a fit uses: the setting, or its default for the data."""
        if self.id_dropout is not None:
            return self.id_dropout
        return AUTO_ID_DROPOUT if has_cold and self.item_tokens == "hybrid" else 0.0

    def resolved(self, has_cold: bool) -> ItemLMConfig:
        """This config with the ID dropout a fit on such data uses (None where it is off, so
        that a model trained before the setting existed keeps its fingerprint)."""
        share = self.id_dropout_for(has_cold)
        return dataclasses.replace(self, id_dropout=share or None)

    def to_dict(self) -> dict[str, Any]:
        """Every field, except settings added later while at their default (so that models
        and benchmark rows keyed on the settings before them keep their keys)."""
        fields = dataclasses.asdict(self)
        return {k: v for k, v in fields.items() if k not in _LATER or v != _LATER[k]}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# Settings added after models were trained and rows committed, with their defaults.
_LATER: dict[str, Any] = {"id_dropout": None, "loss": "auto", "sampled_negatives": 1024}


def truncated_backbone(model: PreTrainedModel, layers: int, backbone: Backbone) -> nn.Module:
    """A copy of the causal LM's decoder (no LM head) keeping its first `layers` layers.

    `backbone="random"` re-initialises the copy (same shape, no pretrained knowledge).
    """
    decoder = model.get_decoder()
    total = len(decoder.layers)
    if layers > total:
        raise ConfigError(f"`layers` is {layers} but the model has only {total}: lower it")
    kept = copy.deepcopy(decoder)
    kept.layers = nn.ModuleList(list(kept.layers)[:layers])
    kept.config = copy.deepcopy(decoder.config)
    kept.config.num_hidden_layers = layers
    if hasattr(kept.config, "layer_types") and kept.config.layer_types is not None:
        kept.config.layer_types = list(kept.config.layer_types)[:layers]
    kept.embed_tokens = None  # items come in as vectors; the vocabulary is not needed
    if backbone == "random":
        with torch.no_grad():
            for module in kept.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=kept.config.initializer_range)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
    return kept


def add_lora(backbone: nn.Module, rank: int) -> nn.Module:
    """LoRA adapters on every attention and MLP projection; every other weight frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    present = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
    targets = [name for name in LORA_TARGETS if name in present]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    backbone = inject_adapter_in_model(config, backbone)
    for name, param in backbone.named_parameters():
        param.requires_grad = "lora_" in name
    return backbone


class ItemLM(nn.Module):
    """Hybrid item tokens -> truncated LLM decoder -> scores over the whole catalog.

    Args:
        backbone: a decoder that takes `inputs_embeds` and `attention_mask` and returns
            `last_hidden_state` (e.g. `truncated_backbone(...)`, LoRA added or not).
        id_init: [n_items + 1, d_id] initial ID embeddings (row 0 = padding), or None with
            `item_tokens="text"`.
        text_features: [n_items + 1, d_text] frozen text features (row 0 = zeros), or None
            with `item_tokens="id"`.
        item_tokens: which parts make an item's vector.
        dropout: dropout on the input item vectors.
        text_init: `zero` starts the text projection of hybrid tokens at 0.
        text_bias: learn a bias from the text (w_bias), for items scored without their ID.
    """

    def __init__(
        self,
        backbone: nn.Module,
        hidden: int,
        id_init: torch.Tensor | None,
        text_features: torch.Tensor | None,
        item_tokens: ItemTokens = "hybrid",
        dropout: float = 0.1,
        text_init: str = "zero",
        text_bias: bool = False,
    ) -> None:
        super().__init__()
        if item_tokens != "text" and id_init is None:
            raise ConfigError(f"`item_tokens={item_tokens}` needs ID embeddings")
        if item_tokens != "id" and text_features is None:
            raise ConfigError(f"`item_tokens={item_tokens}` needs text features")
        self.backbone = backbone
        self.item_tokens = item_tokens
        self.n_items = (id_init if id_init is not None else text_features).shape[0] - 1
        self.id_embedding = self.id_proj = self.text_proj = None
        if item_tokens != "text":
            self.id_embedding = nn.Embedding.from_pretrained(
                id_init.float().clone(), freeze=False, padding_idx=0
            )
            self.id_proj = nn.Linear(id_init.shape[1], hidden, bias=False)
        if item_tokens != "id":
            self.register_buffer("text_features", text_features.float().clone(), persistent=False)
            self.text_proj = nn.Linear(text_features.shape[1], hidden, bias=False)
        self.separator = nn.Parameter(torch.zeros(hidden))
        self.output = nn.Linear(hidden, hidden)
        self.item_bias = nn.Parameter(torch.zeros(self.n_items + 1))
        # w_bias, from 0 (every item's bias starts equal); a plain tensor draws no random
        # numbers, so the other weights start as they did before it existed. Only with ID
        # dropout: without it no item is text alone in training, and each has its own bias.
        self.text_bias = None
        if text_bias:
            self.text_bias = nn.Parameter(torch.zeros(text_features.shape[1]))
        # Which items have a trained ID (`set_cold`); not saved: it comes from the data.
        self.register_buffer("has_id", torch.ones(self.n_items + 1, dtype=torch.bool),
                             persistent=False)  # fmt: skip
        self.drop = nn.Dropout(dropout)
        for linear in (self.id_proj, self.text_proj, self.output):
            if linear is not None:
                nn.init.normal_(linear.weight, std=linear.in_features**-0.5)
        if item_tokens == "hybrid" and text_init == "zero":
            # Standardised text features projected at random are an order of magnitude
            # larger than the ID part and drown the collaborative signal (measured in
            # benchmarks/ACCURACY.md); from 0, text enters only where it lowers the loss.
            nn.init.zeros_(self.text_proj.weight)

    def set_cold(self, cold) -> None:
        """Mark `cold` item indices as having no trained ID."""
        self.has_id.fill_(True)
        if len(cold):
            self.has_id[torch.as_tensor(sorted(cold), device=self.has_id.device)] = False

    @torch.no_grad()
    def add_items(self, text: torch.Tensor | None, count: int) -> None:
        """`count` items appended to the catalog, without an ID: scored by their text features
        (`text`, [count, d_text], standardised as the catalog's), or -inf by an ID-only model."""
        if self.id_embedding is not None:
            weight = self.id_embedding.weight
            grown = torch.cat([weight, weight.new_zeros(count, weight.shape[1])])
            self.id_embedding = nn.Embedding.from_pretrained(grown, freeze=False, padding_idx=0)
        if self.text_proj is not None:
            self.text_features = torch.cat([self.text_features, text.to(self.text_features)])
        self.item_bias = nn.Parameter(torch.cat([self.item_bias, self.item_bias.new_zeros(count)]))
        self.has_id = torch.cat([self.has_id, self.has_id.new_zeros(count)])
        self.n_items += count

    def known(self, history) -> list[int]:
        """The history items the model can read: all where items have text, else those with
        an ID (an ID-only model cannot represent a new item)."""
        if self.text_proj is not None:
            return list(history)
        has_id = self.has_id.tolist()
        return [i for i in history if has_id[i]]

    def item_vectors(
        self, items: torch.Tensor | None = None, id_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """e_i for `items` (any shape of indices) or for the whole catalog [n_items + 1, H].

        `id_mask` [n_items + 1] (default `has_id`): items whose ID part is used; the others
        are their text part alone.
        """
        mask = self.has_id if id_mask is None else id_mask
        vectors = 0
        if self.id_proj is not None:
            ids = self.id_embedding.weight if items is None else self.id_embedding(items)
            keep = mask if items is None else mask[items]
            vectors = vectors + self.id_proj(ids) * keep[..., None]
        if self.text_proj is not None:
            text = self.text_features if items is None else self.text_features[items]
            vectors = vectors + self.text_proj(text)
        return vectors

    def item_biases(self, id_mask: torch.Tensor | None = None) -> torch.Tensor:
        """b_i of every item [n_items + 1]: the text's bias, plus the ID's where it is used."""
        mask = self.has_id if id_mask is None else id_mask
        bias = self.item_bias * mask
        if self.text_bias is not None:
            bias = bias + self.text_features @ self.text_bias
        return bias

    def forward(
        self,
        items: torch.Tensor,
        retrieved: torch.Tensor | None = None,
        id_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state at every history position.

        Args:
            items: LongTensor [B, T], right-padded with 0.
            retrieved: LongTensor [B, K] of retrieval items (0 = none), or None.
            id_mask: items whose ID part is used (`item_vectors`); default `has_id`.

        Returns:
            [B, T, H]: position t holds the state after reading items[:, : t + 1].
        """
        present = items > 0
        x = self.drop(self.item_vectors(items, id_mask))  # [B, T, H]
        if retrieved is not None and retrieved.shape[1]:
            b, k = retrieved.shape
            prefix = self.drop(self.item_vectors(retrieved, id_mask))  # [B, K, H]
            separator = self.separator.expand(b, 1, -1)
            x = torch.cat([separator, prefix, x], dim=1)
            first = torch.ones(b, 1, dtype=torch.bool, device=items.device)
            present = torch.cat([first, retrieved > 0, present], dim=1)
        mask = present.long()
        # Positions count real tokens only, so a padded retrieval slot does not shift them.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        hidden = self.backbone(
            inputs_embeds=x, attention_mask=mask, position_ids=positions
        ).last_hidden_state
        return hidden[:, -items.shape[1] :]

    def item_logits(
        self,
        hidden: torch.Tensor,
        id_mask: torch.Tensor | None = None,
        items: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden [..., H] -> scores [..., n_items + 1], or [..., len(items)] for the item
        indices `items` [S] alone (a sampled softmax's); the padding item is -inf.

        Items without a trained ID are -inf in training (they did not exist then) and where
        the model has no text to score them by.
        """
        scale = hidden.shape[-1] ** -0.5  # keeps the first logits near 0: loss starts at log(n)
        vectors = self.item_vectors(items, id_mask)
        biases = self.item_biases(id_mask)
        has_id = self.has_id
        if items is not None:
            biases, has_id = biases[items], has_id[items]
        logits = self.output(hidden) @ vectors.T * scale + biases
        if items is None:
            logits[..., 0] = float("-inf")
        else:
            logits = logits.masked_fill(items == 0, float("-inf"))
        if self.training or self.text_proj is None:
            logits = logits.masked_fill(~has_id, float("-inf"))
        return logits

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters training changes (LoRA, projections, ID embeddings, head)."""
        return trainable_state(self)


def trainable_state(module: nn.Module, also: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """CPU copies of `module`'s trainable parameters, plus the state entries named in `also`
    (buffers fixed at build time that loading must restore)."""
    names = {name for name, p in module.named_parameters() if p.requires_grad} | set(also)
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if k in names}
