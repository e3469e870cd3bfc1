"""LoRA adapters (the GRPO summarizer's) on ONE base model, switched per call.

    llm = attach_adapters(models.llm(), {"summarizer": adapter_folder})
    summarizer = OnAdapter(LLMSummarizer(llm), llm.model, "summarizer", name=...)
    critic = OnAdapter(RewardCritic(encoder, llm), llm.model, None)   # base weights

peft's `PeftModel` holds several named adapters over the same base weights; `set_adapter`
picks the one used by the next forward pass and `disable_adapter()` runs the bare base model.
So the graph keeps one copy of the weights in memory for every role that runs on it. Attaching
injects LoRA layers into `llm.model` in place: do not share that `LLM` with a caller that
wants the untouched model (load a fresh one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError, NotPreparedError
from mmsrarec.models import LLM

SUMMARIZER = "summarizer"


def train_dir(settings: Settings, role: str, tag: str = "") -> Path:
    """Where `mmsrarec train <role> [--tag T]` writes checkpoints, curves and the adapter."""
    if tag and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", tag):
        raise ConfigError(f"`--tag` may hold only letters, digits, `-` and `_` (at most 40), "
                          f"got `{tag[:40]}`")  # fmt: skip
    return settings.run_dir / "train" / (f"{role}-{tag}" if tag else role) / settings.dataset


def adapter_dir(settings: Settings, role: str, tag: str = "") -> Path:
    """The saved adapter of `role` (what `mmsrarec evaluate --method mmsrarec` loads)."""
    return train_dir(settings, role, tag) / "adapter"


def tuned_summarizer_name(settings: Settings, tag: str = "") -> str:
    """The keyword-cache name of the summarizer with the GRPO adapter (`train summarizer`)."""
    path = check_adapter(adapter_dir(settings, SUMMARIZER, tag), SUMMARIZER)
    return f"{settings.model}+grpo-{adapter_digest(path)}"


def adapter_digest(path: Path) -> str:
    """A short hash of the adapter's weights (part of keyword-cache keys)."""
    weights = path / "adapter_model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:10]


def check_adapter(path: Path, role: str) -> Path:
    if not (path / "adapter_config.json").exists():
        raise NotPreparedError(
            f"no trained `{role}` adapter in `{path}`: run `mmsrarec train {role}` first"
        )
    return path


def attach_adapters(llm: LLM, adapters: Mapping[str, Path]) -> LLM:
    """`llm` with the LoRA adapters in `adapters` (name -> folder) loaded on its model.

    Returns a new `LLM` (same tokenizer) whose model is a `PeftModel` holding every adapter;
    with no adapters, `llm` itself.

    Raises:
        NotPreparedError: A folder holds no saved adapter.
    """
    if not adapters:
        return llm
    from peft import PeftModel

    model: Any = llm.model
    for name, path in adapters.items():
        check_adapter(Path(path), name)
        if isinstance(model, PeftModel):
            model.load_adapter(str(path), adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
    model.eval()
    return dataclasses.replace(llm, model=model)


@contextmanager
def active_adapter(model: Any, adapter: str | None) -> Iterator[None]:
    """Run the block with `adapter` active on `model` (None: the bare base model)."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        if adapter is not None:
            raise NotPreparedError(f"adapter `{adapter}` is not loaded: call `attach_adapters`")
        yield
        return
    if adapter is None:
        with model.disable_adapter():
            yield
        return
    if adapter not in model.peft_config:
        raise NotPreparedError(f"adapter `{adapter}` is not loaded; have {list(model.peft_config)}")
    previous = model.active_adapter
    model.set_adapter(adapter)
    try:
        yield
    finally:
        model.set_adapter(previous)


class OnAdapter:
    """A graph part (summarizer, critic, scorer, preference summarizer) that runs with one
    adapter active. Other attributes (`llm`, `batch_size`, ...) are the part's own.

    Args:
        part: The wrapped object.
        model: The shared `PeftModel` (or the plain model, with `adapter=None`).
        adapter: The adapter to activate; None runs the base model.
        name: Replaces the part's `name` (keyword-cache keys must tell adapters apart).
    """

    def __init__(self, part: Any, model: Any, adapter: str | None, name: str | None = None):
        self.part, self.model, self.adapter = part, model, adapter
        self.name = name if name is not None else getattr(part, "name", type(part).__name__)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.part, attribute)

    def summarize(self, *args: Any, **kwargs: Any) -> Any:
        with active_adapter(self.model, self.adapter):
            return self.part.summarize(*args, **kwargs)

    def judge(self, *args: Any, **kwargs: Any) -> Any:
        with active_adapter(self.model, self.adapter):
            return self.part.judge(*args, **kwargs)

    def score(self, *args: Any, **kwargs: Any) -> Any:
        with active_adapter(self.model, self.adapter):
            return self.part.score(*args, **kwargs)

    def preference(self, *args: Any, **kwargs: Any) -> Any:
        with active_adapter(self.model, self.adapter):
            return self.part.preference(*args, **kwargs)
