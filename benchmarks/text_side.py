"""The text side of a fusion, for the keyword-evidence test of `faithfulness.py`: words removed
from some items' texts, their frozen text features recomputed, the scores read again.

The LLM recommender reads each item as a frozen, standardised feature of its text
(`models.item_text`: the LLM's mean-pooled hidden state of "<title>: <keywords or genres>").
`without_words` recomputes that feature for the edited items with the same LLM and the
catalog's own standardisation (as `LLMRecommender.add_items` does for new items), puts it in
the model's feature table for the duration of the `with` block, and puts the originals back
afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch


class TextSide:
    """The first fusion member that reads text, with the LLM its features came from."""

    def __init__(self, member) -> None:
        self.member = member
        self.llm = member.text.llm  # the base weights the frozen features were computed with
        self.table = member.model.text_features  # [n_items + 1, d], row 0 padding

    @classmethod
    def find(cls, ranker) -> TextSide:
        members = [m for m in getattr(ranker, "members", {}).values() if m.reads_text]
        if not members or getattr(members[0], "raw_features", None) is None:
            raise SystemExit(f"`{ranker.name}` has no fitted LLM member that reads text")
        return cls(members[0])

    @contextmanager
    def without_words(self, dataset, removed: Mapping[int, set[str]]) -> Iterator[None]:
        """Item index -> words to drop from its text; the features swapped inside the block."""
        from mmsrarec.models.item_text import item_text, llm_features, standardize

        edited = {i: words for i, words in removed.items() if words}
        if not edited:
            yield
            return
        rows = sorted(edited)
        texts = []
        for index in rows:
            item = dataset.item(index)
            text = item_text(item, self.member.keywords.get(item.item_id))
            for word in edited[index]:
                text = re.sub(rf"(?i)\b{re.escape(word)}\b", "", text)
            texts.append(re.sub(r"\s+", " ", text))
        raw = llm_features(self.llm.model, self.llm.tokenizer, texts)
        features = standardize(raw, like=self.member.raw_features)  # as the catalog was
        before = self.table[rows].clone()
        with torch.no_grad():
            self.table[rows] = torch.from_numpy(features.astype(np.float32)).to(self.table)
        try:
            yield
        finally:
            with torch.no_grad():
                self.table[rows] = before
