"""Load a language model (text or vision-language) from a preset, a Hugging Face id or a folder.

    llm = load_llm("smollm2-135m", settings)       # converted once, then ~1 s
    llm = load_llm("HuggingFaceTB/SmolVLM-256M-Instruct", settings)   # is_vision=True
    llm = load_llm("runs/sft/model", settings)     # a folder saved with save_pretrained

Nothing is cached at module level: a caller that needs the same model twice keeps the `LLM`
(or a `ModelCache`, which it owns and passes on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError, ModelNotFoundError
from mmsrarec.models.device import model_device
from mmsrarec.models.embeddings import SentenceEncoder, load_encoder
from mmsrarec.models.presets import LLM_PRESETS, ensure_converted, resolve_pretrained


@dataclass
class LLM:
    """A loaded language model and what is needed to prompt it.

    Attributes:
        model: The model, in eval mode, on CPU.
        tokenizer: Its tokenizer; `pad_token` is always set (to EOS when the model has none).
        processor: The multimodal processor (images + text) for vision models, else None.
        name: The spec it was loaded from (preset name, hub id or path).
        is_chat: The tokenizer (or processor) has a chat template: prompt with messages.
            Base models (e.g. `gemma3-270m`) take plain text instead; see `render_prompt`.
        is_vision: A vision-language model (its config has a `vision_config`).
        source: The local folder the weights were read from.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    processor: ProcessorMixin | None
    name: str
    is_chat: bool
    is_vision: bool
    source: Path

    def render_prompt(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text for `messages`, ready for the assistant's reply to follow.

        Chat models use their template (with the generation prompt). Base models get the
        messages' text joined by blank lines: a base model has no notion of roles.
        """
        if self.is_chat:
            template_owner = self.processor if self.processor is not None else self.tokenizer
            return template_owner.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        parts = []
        for message in messages:
            content = message["content"]
            if not isinstance(content, str):
                content = "".join(p["text"] for p in content if p.get("type") == "text")
            parts.append(content)
        return "\n\n".join(parts) + "\n"


def is_vision_config(config: PretrainedConfig) -> bool:
    """Vision-language configs (Idefics3/SmolVLM, Qwen2.5-VL, Gemma 3 4B+) nest a vision tower."""
    return getattr(config, "vision_config", None) is not None


def llm_source(spec: str, settings: Settings) -> tuple[str, Path, bool]:
    """(what `from_pretrained` reads, the local folder, local files only) for `spec`; a preset
    is converted on first use."""
    if spec in LLM_PRESETS:
        source = ensure_converted(LLM_PRESETS[spec], settings.cache_dir)
        return str(source), source, True
    load_from, source = resolve_pretrained(spec, settings, setting="model")
    return load_from, source, settings.offline


def load_llm(spec: str, settings: Settings, *, dtype: torch.dtype = torch.float32) -> LLM:
    """Load an LLM from a preset name, a Hugging Face id or a local folder.

    Args:
        spec: `smollm2-135m` / `gemma3-270m` (see `LLM_PRESETS`), a hub id such as
            `HuggingFaceTB/SmolLM2-360M-Instruct`, or a folder saved with `save_pretrained`.
        settings: `cache_dir` holds converted presets; `offline` forbids hub downloads.
        dtype: Weight dtype; float32 is the safe choice on CPU.

    Raises:
        ModelNotFoundError: The spec names nothing that can be loaded (offline: at once).
        ConfigError: The model needs a package that is not installed (e.g. torchvision).
    """
    load_from, source, local_only = llm_source(spec, settings)
    try:
        model, tokenizer, processor = _load_parts(load_from, local_only, dtype)
    except OSError as exc:  # a file the folder or the hub cache lacks
        raise ModelNotFoundError(
            f"`model` `{spec}` is incomplete in `{source}` ({exc}); re-save it with "
            "`save_pretrained`, or download it again with internet (`offline = false`)"
        ) from exc
    except ImportError as exc:  # e.g. Qwen2-VL and SmolVLM2 processors need torchvision
        first_line = str(exc).strip().splitlines()[0]
        raise ConfigError(
            f"`model` `{spec}` needs a package that is not installed: {first_line} "
            "Install it, or pick another model (SmolVLM v1 / Idefics3 works without torchvision)"
        ) from exc
    model.to(model_device(settings)).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    chat_template = getattr(processor, "chat_template", None) or tokenizer.chat_template
    return LLM(
        model=model,
        tokenizer=tokenizer,
        processor=processor,
        name=spec,
        is_chat=bool(chat_template),
        is_vision=processor is not None,
        source=source,
    )


def _load_parts(
    load_from: str, local_only: bool, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin | None]:
    """Model, tokenizer and (vision models only) processor, picked by the config."""
    kwargs: dict[str, Any] = {"local_files_only": local_only}
    config = AutoConfig.from_pretrained(load_from, **kwargs)
    if is_vision_config(config):
        processor = AutoProcessor.from_pretrained(load_from, **kwargs)
        model = AutoModelForImageTextToText.from_pretrained(
            load_from, config=config, dtype=dtype, **kwargs
        )
        return model, processor.tokenizer, processor
    tokenizer = AutoTokenizer.from_pretrained(load_from, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(load_from, config=config, dtype=dtype, **kwargs)
    return model, tokenizer, None


@dataclass
class ModelCache:
    """Models loaded at most once, owned by the caller and passed to whoever needs them.

    Keys are the spec strings; all loads use the one `settings` given here.
    """

    settings: Settings
    _llms: dict[str, LLM] = field(default_factory=dict, repr=False)
    _encoders: dict[str, SentenceEncoder] = field(default_factory=dict, repr=False)

    def llm(self, spec: str | None = None) -> LLM:
        """The LLM for `spec` (default: `settings.model`), loading it on first use."""
        spec = spec or self.settings.model
        if spec not in self._llms:
            self._llms[spec] = load_llm(spec, self.settings)
        return self._llms[spec]

    def encoder(self, spec: str | None = None) -> SentenceEncoder:
        """The sentence encoder for `spec` (default: `settings.embedding_model`)."""
        spec = spec or self.settings.embedding_model
        if spec not in self._encoders:
            self._encoders[spec] = load_encoder(spec, self.settings)
        return self._encoders[spec]
