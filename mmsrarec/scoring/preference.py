"""One sentence on the older part of a history, by recurrent summarisation (as in LLM-TRSR).

The items before the last n are walked oldest first in chunks; each step gives the model the
previous summary and the chunk's items (title and the start of their text) and asks for an
updated one-sentence summary, written after the lead "The user likes " (greedy,
at most `MAX_NEW_TOKENS` tokens). Cost is bounded: only the most recent `MAX_ITEMS` older
items are read (at most `MAX_ITEMS / chunk` short generations per user; 5 with the default
chunk of 10), since the last n items already reach the prompt as keywords and long-gone
tastes matter least.

Results are cached in SQLite, keyed by (user id, sha256 of the summarised item ids, model
name, `PROMPT_VERSION`): a changed history, model or prompt gives a new key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import torch

from mmsrarec.data import Item
from mmsrarec.errors import ConfigError
from mmsrarec.models.llm import LLM
from mmsrarec.models.server import CompletionServer
from mmsrarec.prompt_text import sanitize
from mmsrarec.scoring.prompts import MAX_TEXT_CHARS
from mmsrarec.scoring.yes_no import encode_prefix

PROMPT_VERSION = 1
MAX_ITEMS = 50  # most recent older items read per user
MAX_NEW_TOKENS = 48
MAX_ITEM_CHARS = 120  # per item: title and the start of its text (genres for ML-100K)
SYSTEM = "You describe a user's taste in one short sentence."
LEAD = "The user likes "  # the summary's first words, written into the prompt

SCHEMA = """CREATE TABLE IF NOT EXISTS preferences (
    user_id TEXT NOT NULL,
    history_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version INTEGER NOT NULL,
    summary TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (user_id, history_sha256, model, prompt_version)
)"""


def history_key(items: Sequence[Item]) -> str:
    """sha256 of the item ids, in order."""
    return hashlib.sha256(json.dumps([item.item_id for item in items]).encode()).hexdigest()


class LLMPreferenceSummarizer:
    """Recurrent one-sentence summaries of older history, cached per user in SQLite.

    Args:
        llm: The model that writes the summaries (chat or base).
        cache_path: The SQLite file (created with its folder when missing).
        chunk: Items read per step.
        server: Write the sentences on this OpenAI-compatible server instead of with
            `llm.model` (`llm` still renders the prompts).
    """

    def __init__(
        self, llm: LLM, cache_path: Path, chunk: int = 10, server: CompletionServer | None = None
    ) -> None:
        if chunk < 1:
            raise ConfigError(f"`chunk` must be at least 1, got {chunk}")
        self.llm = llm
        self.server = server
        self.name = server.name if server is not None else llm.name
        self.cache_path = Path(cache_path)
        self.chunk = chunk
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per call: safe when graph nodes run in worker threads.
        return sqlite3.connect(self.cache_path, timeout=30)

    def preference(self, user_id: str, items: Sequence[Item]) -> str:
        """One sentence on `items` (the history before the last n items, oldest first); ""
        when there are none. Only the most recent `MAX_ITEMS` are read."""
        items = list(items)[-MAX_ITEMS:]
        if not items:
            return ""
        key = (user_id, history_key(items), self.name, PROMPT_VERSION)
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT summary FROM preferences WHERE user_id = ? AND history_sha256 = ? "
                "AND model = ? AND prompt_version = ?",
                key,
            ).fetchone()
        if row is not None:
            return row[0]
        summary = ""
        for start in range(0, len(items), self.chunk):
            summary = self._step(summary, items[start : start + self.chunk])
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO preferences VALUES (?, ?, ?, ?, ?, ?)",
                (*key, summary, time.time()),
            )
        return summary

    def _prompt(self, summary: str, chunk: Sequence[Item]) -> str:
        """The step's prompt; it ends with `LEAD`, the answer's first words, which steer small
        models into writing a summary instead of echoing the instructions."""
        tokenizer = self.llm.tokenizer
        lines = "\n".join(
            f"- <item>{sanitize(item.text or item.title, MAX_ITEM_CHARS, tokenizer)}</item>"
            for item in chunk
        )
        body = (
            f"Summary of the user's taste so far: {summary or '(none yet)'}\n"
            f"Items the user interacted with next, oldest first:\n{lines}\n"
            "Update the summary: one short sentence on the kinds of items the user likes."
        )
        if self.llm.is_chat:
            rendered = self.llm.render_prompt(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]
            )
            return rendered + LEAD
        return f"{body}\nUpdated summary: {LEAD}"

    @torch.inference_mode()
    def _step(self, summary: str, chunk: Sequence[Item]) -> str:
        """The summary after reading `chunk`; the previous one when the model writes nothing."""
        tokenizer = self.llm.tokenizer
        prompt = self._prompt(summary, chunk)
        if self.server is not None:
            text = self.server.complete([prompt], MAX_NEW_TOKENS)[0].text
        else:
            ids = torch.tensor([encode_prefix(tokenizer, prompt)]).to(self.llm.model.device)
            output = self.llm.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            text = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
        # The first line only (titles such as "Mrs. Doubtfire" make full stops unreliable).
        first = text.strip().splitlines()[0].strip() if text.strip() else ""
        return sanitize(LEAD + first, MAX_TEXT_CHARS, self.llm.tokenizer) if first else summary
