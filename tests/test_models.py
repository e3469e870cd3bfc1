"""Model loading: tiny local models in unit tests, the packaged presets under `-m integration`."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError, ModelNotFoundError
from mmsrarec.models import (
    LLM_PRESETS,
    ChromaEmbedding,
    ModelCache,
    load_encoder,
    load_llm,
)
from mmsrarec.models.presets import (
    MANIFEST,
    GgufPreset,
    ensure_converted,
    packaged_model_dirs,
    preset_cache_dir,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", offline=True)


# --- local folders: chat, base, vision ----------------------------------------------------------


def test_chat_model_loads_from_a_folder(tiny_lm_dir: Path, settings: Settings) -> None:
    llm = load_llm(str(tiny_lm_dir), settings)
    assert (llm.is_chat, llm.is_vision, llm.processor) == (True, False, None)
    assert llm.source == tiny_lm_dir.resolve()
    assert llm.name == str(tiny_lm_dir)
    assert not llm.model.training
    assert llm.tokenizer.pad_token is not None
    prompt = llm.render_prompt([{"role": "user", "content": "Will the user like it?"}])
    assert prompt.endswith("<|im_start|>assistant\n")
    for word in ["yes", "no", " yes", " no"]:
        assert len(llm.tokenizer(word, add_special_tokens=False).input_ids) == 1
    inputs = llm.tokenizer(prompt, return_tensors="pt")
    out = llm.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs.input_ids.shape[1] + 3


def test_base_model_has_no_chat_template(tiny_base_lm_dir: Path, settings: Settings) -> None:
    llm = load_llm(str(tiny_base_lm_dir), settings)
    assert not llm.is_chat and not llm.is_vision
    messages = [
        {"role": "system", "content": "You recommend movies."},
        {"role": "user", "content": [{"type": "text", "text": "Next movie?"}]},
    ]
    assert llm.render_prompt(messages) == "You recommend movies.\n\nNext movie?\n"


def test_vision_model_is_detected_and_generates(tiny_vlm_dir: Path, settings: Settings) -> None:
    from PIL import Image

    llm = load_llm(str(tiny_vlm_dir), settings)
    assert llm.is_vision and llm.is_chat and llm.processor is not None
    assert llm.tokenizer is llm.processor.tokenizer
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    poster = Image.fromarray(pixels)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Like it?"}]}
    ]
    prompt = llm.render_prompt(messages)
    assert "<image>" in prompt
    inputs = llm.processor(text=[prompt], images=[[poster]], return_tensors="pt")
    with torch.inference_mode():
        logits = llm.model(**inputs).logits
    assert logits.shape[:2] == inputs.input_ids.shape
    assert torch.isfinite(logits).all()
    out = llm.model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] == inputs.input_ids.shape[1] + 2


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed"
)
def test_vision_model_needing_torchvision_is_a_clear_error(
    tiny_lm_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    """Qwen2-VL's processor includes a video processor, which needs torchvision."""
    folder = tmp_path / "qwen2-vl"
    folder.mkdir()
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(tiny_lm_dir / name, folder / name)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    processor = {
        "processor_class": "Qwen2VLProcessor",
        "image_processor": {"image_processor_type": "Qwen2VLImageProcessor"},
        "video_processor": {"video_processor_type": "Qwen2VLVideoProcessor"},
    }
    (folder / "processor_config.json").write_text(json.dumps(processor))
    with pytest.raises(ConfigError, match=r"`model` .* needs a package .*[Tt]orchvision"):
        load_llm(str(folder), settings)


def test_model_cache_loads_once(tiny_lm_dir: Path, tmp_path: Path) -> None:
    cache = ModelCache(Settings(cache_dir=tmp_path, model=str(tiny_lm_dir)))
    assert cache.llm() is cache.llm(str(tiny_lm_dir))


# --- ids and paths that do not resolve ---------------------------------------------------------


def test_unknown_hub_id_fails_at_once_offline(settings: Settings) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"`nobody/no-such-model-xyz`.*preset"):
        load_llm("nobody/no-such-model-xyz", settings)
    with pytest.raises(ModelNotFoundError, match=r"`embedding_model`.*all-minilm-l6-v2"):
        load_encoder("nobody/no-such-encoder", settings)
    assert time.perf_counter() - start < 3.0


def test_missing_folder_and_folder_without_config(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_llm(str(tmp_path / "no" / "such" / "model"), settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_llm(str(tmp_path / "empty"), settings)


def test_folder_missing_weights(tiny_lm_dir: Path, settings: Settings, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_lm_dir, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="incomplete"):
        load_llm(str(folder), settings)


def test_hub_id_loads_from_the_local_hub_cache(
    tiny_lm_dir: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--tiny-org--tiny-lm"
    shutil.copytree(tiny_lm_dir, repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    llm = load_llm("tiny-org/tiny-lm", settings)
    assert llm.source == repo / "snapshots" / "0123abc"
    assert llm.is_chat


# --- presets: GGUF converted once, crash-safe ---------------------------------------------------


@pytest.fixture
def tiny_preset(tiny_gguf_path: Path, monkeypatch: pytest.MonkeyPatch) -> GgufPreset:
    preset = GgufPreset("tiny-gguf", None, lambda scratch: tiny_gguf_path)
    monkeypatch.setitem(LLM_PRESETS, preset.name, preset)
    return preset


def _forbid_gguf(preset: GgufPreset, monkeypatch: pytest.MonkeyPatch) -> None:
    def locate(scratch: Path) -> Path:
        raise AssertionError("the GGUF file was read again")

    monkeypatch.setitem(LLM_PRESETS, preset.name, dataclasses.replace(preset, locate_gguf=locate))


def test_preset_converts_once_then_loads_from_cache(
    tiny_preset: GgufPreset, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = load_llm("tiny-gguf", settings)
    folder = preset_cache_dir(tiny_preset, settings.cache_dir)
    assert llm.source == folder and llm.name == "tiny-gguf"
    assert llm.is_chat  # the chat template travels from the GGUF metadata
    assert (folder / "model.safetensors").is_file() and (folder / MANIFEST).is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert not list(folder.glob("*.gguf")) and not list(folder.parent.glob(".tiny-gguf.*-*"))

    manifest_mtime = (folder / MANIFEST).stat().st_mtime_ns
    _forbid_gguf(tiny_preset, monkeypatch)
    again = load_llm("tiny-gguf", settings)
    assert (folder / MANIFEST).stat().st_mtime_ns == manifest_mtime
    ids = llm.tokenizer("yes no", return_tensors="pt").input_ids
    with torch.inference_mode():
        torch.testing.assert_close(again.model(ids).logits, llm.model(ids).logits)


def test_truncated_cache_is_rebuilt(tiny_preset: GgufPreset, settings: Settings) -> None:
    folder = ensure_converted(tiny_preset, settings.cache_dir)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as handle:
        handle.truncate(size // 2)
    llm = load_llm("tiny-gguf", settings)
    assert weights.stat().st_size == size
    assert llm.model(torch.tensor([[1, 2, 3]])).logits.isfinite().all()


def test_stale_manifest_is_rebuilt(tiny_preset: GgufPreset, settings: Settings) -> None:
    folder = ensure_converted(tiny_preset, settings.cache_dir)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["identity"]["transformers"] = "0.0.1"
    (folder / MANIFEST).write_text(json.dumps(manifest))
    ensure_converted(tiny_preset, settings.cache_dir)
    assert json.loads((folder / MANIFEST).read_text())["identity"]["transformers"] != "0.0.1"


def test_failed_conversion_leaves_no_cache(tiny_preset: GgufPreset, settings: Settings) -> None:
    def broken(scratch: Path) -> Path:
        (scratch.parent / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("conversion died")

    with pytest.raises(RuntimeError, match="conversion died"):
        ensure_converted(dataclasses.replace(tiny_preset, locate_gguf=broken), settings.cache_dir)
    models = settings.cache_dir / "models"
    assert not (models / "tiny-gguf").exists()
    assert not list(models.glob(".tiny-gguf.tmp-*"))
    # A SIGKILLed build leaves its temporary folder: the next build removes it.
    leftover = models / ".tiny-gguf.tmp-deadbeef"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    ensure_converted(tiny_preset, settings.cache_dir)
    assert not leftover.exists() and (models / "tiny-gguf" / MANIFEST).is_file()


@pytest.mark.slow
def test_killed_conversion_leaves_no_cache(tiny_gguf_path: Path, tmp_path: Path) -> None:
    """SIGKILL a real process in the middle of a conversion (about 6 s: it imports torch)."""
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from mmsrarec.models import presets

        def locate(scratch):
            (scratch.parent / "model.safetensors").write_bytes(b"half")
            Path({str(tmp_path / "started")!r}).touch()
            time.sleep(60)

        preset = presets.GgufPreset("tiny-gguf", None, locate)
        presets.ensure_converted(preset, Path({str(tmp_path / "cache")!r}))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    models = tmp_path / "cache" / "models"
    assert not (models / "tiny-gguf").exists()
    preset = GgufPreset("tiny-gguf", None, lambda scratch: tiny_gguf_path)
    folder = ensure_converted(preset, tmp_path / "cache")
    assert (folder / MANIFEST).is_file() and not list(models.glob(".tiny-gguf.tmp-*"))


# --- sentence encoder ---------------------------------------------------------------------------


def test_encoder_returns_unit_float32_rows_in_input_order(tiny_encoder) -> None:
    texts = ["a space adventure film", "no", "a romantic comedy about a movie star", "yes"]
    vectors = tiny_encoder.encode(texts, batch_size=3)
    assert vectors.shape == (4, tiny_encoder.dim) == (4, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([tiny_encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    assert tiny_encoder.encode([]).shape == (0, 32)
    with pytest.raises(TypeError):
        tiny_encoder.encode("one string")


def test_encoder_reads_pooling_from_sentence_transformers_files(
    tiny_encoder_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    folder = shutil.copytree(tiny_encoder_dir, tmp_path / "encoder")
    (folder / "1_Pooling").mkdir()
    pooling = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))
    encoder = load_encoder(str(folder), settings)
    assert (encoder.pooling, encoder.max_length) == ("cls", 16)
    pooling = {"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ConfigError, match="pooling"):
        load_encoder(str(folder), settings)


def test_chroma_embedding_function_round_trip(tiny_encoder, tmp_path: Path) -> None:
    import chromadb

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        function = ChromaEmbedding(tiny_encoder)
        client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
        items = client.create_collection("items", embedding_function=function)
        items.add(ids=["m1", "m2"], documents=["space adventure film", "cooking recipe"])
        hits = items.query(query_texts=["space adventure film"], n_results=1)
        assert hits["ids"] == [["m1"]]
        assert items.configuration["embedding_function"].get_config() == function.get_config()

        reopened = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
        again = reopened.get_collection("items", embedding_function=ChromaEmbedding(tiny_encoder))
        assert again.query(query_texts=["cooking recipe"], n_results=1)["ids"] == [["m2"]]
    rebuilt = ChromaEmbedding.build_from_config(function.get_config())
    np.testing.assert_allclose(rebuilt(["yes"])[0], tiny_encoder.encode(["yes"])[0], atol=1e-6)


# --- the guard against real weights in unit tests -----------------------------------------------


def test_guard_refuses_real_models_in_unit_tests(real_model_guard, settings: Settings) -> None:
    with pytest.raises(BaseException) as caught:
        load_llm("smollm2-135m", settings)
    assert type(caught.value).__name__ == "RealModelLoadError"
    assert not (settings.cache_dir / "models" / "smollm2-135m").exists()
    with pytest.raises(BaseException) as caught:
        load_encoder("all-minilm-l6-v2", settings)
    assert type(caught.value).__name__ == "RealModelLoadError"
    assert real_model_guard.violations
    real_model_guard.violations.clear()  # expected here: do not fail this test at teardown


def test_guard_covers_every_packaged_model(real_model_guard) -> None:
    assert {str(p) for p in packaged_model_dirs()} <= set(real_model_guard.roots)
    assert set(real_model_guard.preset_names) == set(LLM_PRESETS)


# --- the real packaged models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A fresh cache: the first load of each preset really converts."""
    return Settings(cache_dir=tmp_path_factory.mktemp("real_cache"), offline=True)


def _reply(llm, text: str, max_new_tokens: int = 12) -> str:
    prompt = llm.render_prompt([{"role": "user", "content": text}])
    inputs = llm.tokenizer(prompt, return_tensors="pt", add_special_tokens=not llm.is_chat)
    with torch.inference_mode():
        out = llm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return llm.tokenizer.decode(out[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.integration
@pytest.mark.parametrize("preset", ["smollm2-135m", "gemma3-270m"])
def test_preset_converts_once_and_reloads_fast(
    preset: str, real_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.perf_counter()
    llm = load_llm(preset, real_settings)
    first = time.perf_counter() - start
    assert llm.is_chat == (preset == "smollm2-135m") and not llm.is_vision
    del llm
    _forbid_gguf(LLM_PRESETS[preset], monkeypatch)
    start = time.perf_counter()
    llm = load_llm(preset, real_settings)
    second = time.perf_counter() - start
    print(f"{preset}: first load (GGUF conversion) {first:.1f} s, cached load {second:.1f} s")
    assert second < 10.0
    reply = _reply(llm, "What is the capital of France?")
    assert reply.strip(), reply
    print(f"{preset} says: {reply!r}")


@pytest.mark.integration
def test_corrupted_preset_cache_is_rebuilt(real_settings: Settings) -> None:
    folder = ensure_converted(LLM_PRESETS["smollm2-135m"], real_settings.cache_dir)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as handle:
        handle.truncate(size // 3)
    llm = load_llm("smollm2-135m", real_settings)
    assert weights.stat().st_size == size
    assert _reply(llm, "Name a fruit.", max_new_tokens=4).strip()


@pytest.mark.integration
def test_minilm_gives_meaningful_embeddings(real_settings: Settings) -> None:
    start = time.perf_counter()
    encoder = load_encoder("all-minilm-l6-v2", real_settings)
    loaded = time.perf_counter() - start
    query, close, far = encoder.encode(
        ["space adventure film", "science fiction movie", "cooking recipe"]
    )
    assert encoder.dim == 384
    assert float(query @ close) > float(query @ far)
    titles = [f"Movie title number {i} (199{i % 10})" for i in range(1682)]
    start = time.perf_counter()
    vectors = encoder.encode(titles)
    print(f"MiniLM: load {loaded:.1f} s, encode 1682 titles {time.perf_counter() - start:.1f} s")
    assert vectors.shape == (1682, 384)
