"""Yes/no scoring of candidates: `p(yes) / (p(yes) + p(no))` from the first generated token.

Every candidate of a user shares one prompt prefix (history keywords, collaborative keywords)
and differs only in a short suffix (the candidate and the question's tail). Two scorers give
the same numbers:

- `NaiveScorer`: one full forward pass per candidate over `prefix + suffix` (the reference).
- `SharedPrefixScorer`: runs the prefix once, keeps its KV cache, and runs the candidates'
  suffixes in batches on top of copies of that cache.

`ServerScorer` asks an OpenAI-compatible server (`llm_server_url`) for the same ratio, read
from the first token's top log-probabilities (`max_tokens=1`, `logprobs`).

Both tokenize the same way: `encode_prefix(prefix) + tokenizer(suffix, add_special_tokens=False)`.
The prompts put the boundary right after a newline (see `prompts.py`), so BPE merges cannot
cross it and the split tokenization equals the joint one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from mmsrarec.errors import ConfigError
from mmsrarec.models.llm import LLM
from mmsrarec.models.server import CompletionServer

YES_WORDS = ("yes", "Yes", " yes", " Yes")
NO_WORDS = ("no", "No", " no", " No")


def _single_token_ids(tokenizer: PreTrainedTokenizerBase, words: Sequence[str]) -> list[int]:
    ids: list[int] = []
    for word in words:
        encoded = tokenizer(word, add_special_tokens=False).input_ids
        # A word split in pieces is left out: its first piece ("n", " Y") starts many other words.
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


def yes_no_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Token ids that begin a "yes" and a "no" answer.

    Each of "yes", "Yes", " yes", " Yes" (likewise "no") that the tokenizer encodes as a single
    token contributes that token; duplicates are dropped.

    Raises:
        ConfigError: no spelling of "yes" (or of "no") is a single token, or the two share one.
    """
    yes_ids = _single_token_ids(tokenizer, YES_WORDS)
    no_ids = _single_token_ids(tokenizer, NO_WORDS)
    if not yes_ids or not no_ids:
        missing = "yes" if not yes_ids else "no"
        raise ConfigError(
            f"the tokenizer splits every spelling of `{missing}` into several tokens, so "
            "yes/no scoring cannot read the answer from one token; pick another `model`"
        )
    if set(yes_ids) & set(no_ids):
        raise ConfigError(
            "the tokenizer maps `yes` and `no` to the same token; pick another `model`"
        )
    return yes_ids, no_ids


def encode_prefix(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a prompt's start: the text, plus the BOS token where the tokenizer adds one
    and the text (e.g. a rendered chat template) does not already begin with it."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = tokenizer.bos_token
    adds_bos = tokenizer("", add_special_tokens=True).input_ids[:1] == [tokenizer.bos_token_id]
    if bos is not None and adds_bos and not text.startswith(bos):
        ids = [tokenizer.bos_token_id, *ids]
    return ids


def encode_suffix(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a prompt's continuation (no special tokens added)."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise ValueError("a candidate suffix is empty: every prompt needs its candidate text")
    return ids


class _YesNoReader:
    """Turns next-token logits into `p(yes) / (p(yes) + p(no))`."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.name = llm.name
        yes_ids, no_ids = yes_no_token_ids(llm.tokenizer)
        self.yes_ids = torch.tensor(yes_ids)
        self.no_ids = torch.tensor(no_ids)

    def probabilities(self, logits: torch.Tensor) -> list[float]:
        """`logits`: [batch, vocab] at each prompt's last token.

        The softmax normaliser cancels in the ratio, so
        `p(yes) / (p(yes) + p(no)) = sigmoid(logsumexp(yes logits) - logsumexp(no logits))`,
        computed in float64 so that confident answers stay strictly inside (0, 1).
        """
        logits = logits.double().cpu()
        margin = logits[:, self.yes_ids].logsumexp(-1) - logits[:, self.no_ids].logsumexp(-1)
        return torch.sigmoid(margin).tolist()


class NaiveScorer(_YesNoReader):
    """One full forward pass per candidate: the reference `SharedPrefixScorer` must match.

    Args:
        llm: The model; its `name` is the scorer's `name`.
    """

    @torch.inference_mode()
    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        """`p(yes) / (p(yes) + p(no))` for each `prefix + suffix` prompt."""
        prefix_ids = encode_prefix(self.llm.tokenizer, prefix)
        scores = []
        for suffix in suffixes:
            ids = torch.tensor([prefix_ids + encode_suffix(self.llm.tokenizer, suffix)])
            ids = ids.to(self.llm.model.device)
            logits = self.llm.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits
            scores += self.probabilities(logits[:, -1])
        return scores


class SharedPrefixScorer(_YesNoReader):
    """Runs the shared prefix once and the candidates' suffixes in batches on its KV cache.

    Args:
        llm: The model; its `name` is the scorer's `name`.
        batch_size: Suffixes per forward pass. Memory grows with it (the prefix cache is
            copied once per row); 32 covers the paper's 1 + 20 candidates in one pass.
    """

    def __init__(self, llm: LLM, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ConfigError(f"`batch_size` must be at least 1, got {batch_size}")
        super().__init__(llm)
        self.batch_size = batch_size

    @torch.inference_mode()
    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        """`p(yes) / (p(yes) + p(no))` for each `prefix + suffix` prompt."""
        if not suffixes:
            return []
        tokenizer = self.llm.tokenizer
        prefix_ids = encode_prefix(tokenizer, prefix)
        if not prefix_ids:
            raise ValueError("the prompt prefix is empty: nothing to share between candidates")
        encoded = [encode_suffix(tokenizer, suffix) for suffix in suffixes]
        prefix_out = self.llm.model(
            input_ids=torch.tensor([prefix_ids], device=self.llm.model.device),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = prefix_out.past_key_values
        # Similar lengths share a batch: less padding, fewer distinct last positions.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        scores = [0.0] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch_scores = self._score_batch(cache, len(prefix_ids), [encoded[i] for i in rows])
            for row, value in zip(rows, batch_scores, strict=True):
                scores[row] = value
        return scores

    def _score_batch(self, prefix_cache, prefix_len: int, batch: list[list[int]]) -> list[float]:
        """Run right-padded suffixes on a copy of the prefix cache; read each row's last token."""
        size, width = len(batch), max(len(ids) for ids in batch)
        pad = self.llm.tokenizer.pad_token_id
        input_ids = torch.full((size, width), pad, dtype=torch.long)  # [B, S]
        attention_mask = torch.zeros((size, prefix_len + width), dtype=torch.long)  # [B, P + S]
        attention_mask[:, :prefix_len] = 1
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, prefix_len : prefix_len + len(ids)] = 1
        # Right padding: every row's real tokens sit at positions P .. P + len - 1.
        position_ids = (prefix_len + torch.arange(width)).unsqueeze(0).expand(size, -1)
        # The cache layers (full or sliding-window) copy with their bookkeeping; the copy's
        # `update` concatenates into new tensors, so the shared prefix cache is never changed.
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(size)
        last = torch.tensor([len(ids) - 1 for ids in batch])  # [B]
        # Only the positions some row ends at need logits: [B, U, vocab] instead of [B, S, vocab].
        keep, where = torch.unique(last, return_inverse=True)
        device = self.llm.model.device
        logits = self.llm.model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            position_ids=position_ids.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=keep.to(device),
        ).logits
        return self.probabilities(logits[torch.arange(size, device=device), where.to(device)])


def yes_no_ratio(logprobs: Mapping[str, float]) -> float:
    """`p(yes) / (p(yes) + p(no))` from first-token log-probabilities by token text.

    The spellings are those of `YES_WORDS` / `NO_WORDS`. The ratio does not depend on the
    softmax normaliser, so it is exact when every spelling the model gives weight to is among
    the listed tokens; a spelling missing from a top-k list counts as 0 (it is less likely
    than the k-th token). Neither answer listed: 0.5.
    """
    yes = sum(math.exp(value) for token, value in logprobs.items() if token in YES_WORDS)
    no = sum(math.exp(value) for token, value in logprobs.items() if token in NO_WORDS)
    return 0.5 if yes + no == 0.0 else yes / (yes + no)


class ServerScorer:
    """The `CandidateScorer` over an OpenAI-compatible server: one `max_tokens=1` completion
    with `logprobs` per candidate prompt (vLLM's prefix caching shares the prefix's work).

    Args:
        server: The completions endpoint; its `name` is the scorer's `name`.
    """

    def __init__(self, server: CompletionServer) -> None:
        self.server = server
        self.name = server.name

    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        """`p(yes) / (p(yes) + p(no))` for each `prefix + suffix` prompt."""
        if any(not suffix for suffix in suffixes):
            raise ValueError("a candidate suffix is empty: every prompt needs its candidate text")
        return [yes_no_ratio(self.server.first_token_logprobs(prefix + s)) for s in suffixes]
