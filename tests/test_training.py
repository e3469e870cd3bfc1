"""Training smoke tests: a few GRPO steps on tiny local models (no real weights); the trained
graph and the two-stage ranking."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError
from mmsrarec.models import load_llm
from mmsrarec.training.config import SummarizerTrainConfig

torch.set_num_threads(1)


def fresh_llm(path: Path, tmp_path: Path):
    """A private copy of a tiny model (the session fixtures must not be trained)."""
    return load_llm(str(path), Settings(cache_dir=tmp_path / "cache", offline=True))


def test_grpo_items_come_from_training_sequences_only(tiny_dataset):
    from mmsrarec.training.summarizer import split_items

    train_items = {i for s in tiny_dataset.train_sequences().values() for i in s}
    held_out_only = {
        tiny_dataset.item(i).item_id
        for user in tiny_dataset.eval_users
        for i in (tiny_dataset.target(user, "valid"), tiny_dataset.target(user, "test"))
        if i not in train_items
    }
    assert held_out_only  # the fixture has items seen only at validation or test positions
    train, heldout = split_items(tiny_dataset, n_items=1000, n_heldout=3, seed=0)
    chosen = {item.item_id for item in train + heldout}
    assert chosen == {tiny_dataset.item(i).item_id for i in train_items}
    assert not chosen & held_out_only


def test_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="num_generations"):
        SummarizerTrainConfig(output_dir=str(tmp_path), num_generations=1, use_cpu=True)
    config = SummarizerTrainConfig(output_dir=str(tmp_path), use_cpu=True)
    assert config.bf16 is False


def complete_names(out: Path) -> list[str]:
    """Names of the complete `checkpoint-N` folders under `out`, oldest first."""
    from mmsrarec.training.checkpoints import is_complete

    found = [p for p in out.glob("checkpoint-*") if is_complete(p)]
    return [p.name for p in sorted(found, key=lambda p: int(p.name.split("-")[-1]))]


def _grpo_config(out: Path, **changes) -> SummarizerTrainConfig:
    settings = dict(output_dir=str(out), use_cpu=True, max_steps=2, n_items=4, n_heldout=3,
                    num_generations=2, per_device_train_batch_size=2, save_steps=1,
                    learning_rate=1e-2, seed=0)  # fmt: skip
    return SummarizerTrainConfig(**{**settings, **changes})


def test_grpo_few_steps_rewards_and_adapter(
    tiny_dataset, tiny_lm_dir, tiny_encoder, tmp_path, monkeypatch
):
    from mmsrarec.critic import rewards as rewards_module
    from mmsrarec.training.summarizer import train_summarizer

    policy = fresh_llm(tiny_lm_dir, tmp_path)
    reward_llm = fresh_llm(tiny_lm_dir, tmp_path)
    scored: dict[str, list[int]] = {}  # reward name -> completions per call
    real = rewards_module.make_rewards

    def counting(*args, **kwargs):
        def wrap(name, function):
            def counted(completions, **kw):
                scored.setdefault(name, []).append(len(completions))
                return function(completions, **kw)

            return counted

        return {name: wrap(name, f) for name, f in real(*args, **kwargs).items()}

    monkeypatch.setattr(rewards_module, "make_rewards", counting)  # inside r_total
    monkeypatch.setattr("mmsrarec.training.summarizer.make_rewards", counting)  # held-out
    config = _grpo_config(tmp_path / "grpo")
    snapshot = dataclasses.asdict(config)
    report = train_summarizer(config, tiny_dataset, policy, tiny_encoder, reward_llm)
    assert dataclasses.asdict(config) == snapshot  # the caller's config is not changed
    out = tmp_path / "grpo"
    assert report["steps"] == 2 and report["collab"] is True
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "rewards.png").stat().st_size > 0
    # One call per reward per scoring pass: held-out before, 2 steps, held-out after. The
    # training calls see at most the step's 2 completions (repeats are scored once).
    assert {name: len(calls) for name, calls in scored.items()} == {
        "r_info": 4, "r_recon": 4, "r_len": 4, "r_collab": 4
    }  # fmt: skip
    assert [n <= 2 for n in scored["r_recon"]] == [False, True, True, False]
    logged = [row for row in report_history(out) if "rewards/r_total/mean" in row]
    assert logged and all(math.isfinite(row["raw/r_recon"]) for row in logged)
    assert all({"norm/info", "norm/collab", "raw/r_len"} <= set(row) for row in logged)
    heldout = report["heldout"]
    assert heldout["n_items"] == 3 and heldout["ci_low"] <= heldout["diff"] <= heldout["ci_high"]
    assert {"norm/info", "norm/recon", "norm/len", "norm/collab"} <= set(heldout["components"])
    assert len(report["examples"]) == 3
    from safetensors.torch import load_file

    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]  # peft starts B at zero
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b)  # the policy's adapter moved

    # Resume: a longer run picks up the newest COMPLETE checkpoint. A half-written newer one
    # (a kill during its save: files there, no `complete.json`) is skipped.
    from mmsrarec.training.checkpoints import MARKER

    assert complete_names(out) == ["checkpoint-1", "checkpoint-2"]
    broken = out / "checkpoint-3"
    shutil.copytree(out / "checkpoint-2", broken)
    (broken / MARKER).unlink()
    (broken / "optimizer.pt").write_bytes(b"half")
    policy = fresh_llm(tiny_lm_dir, tmp_path)  # a new process would load the base again
    again = train_summarizer(_grpo_config(out, max_steps=3), tiny_dataset, policy,
                             tiny_encoder, reward_llm)  # fmt: skip
    assert again["resumed_from"].endswith("checkpoint-2") and again["steps"] == 3
    assert complete_names(out) == ["checkpoint-2", "checkpoint-3"]


def test_grpo_completions_end_where_inference_stops(tiny_llm, tiny_dataset):
    """The GRPO cut (`stop_length`) keeps exactly the keywords greedy inference returns."""
    from mmsrarec.summarization import LLMSummarizer
    from mmsrarec.summarization.parse import parse_keywords
    from mmsrarec.summarization.stopping import MAX_NEW_TOKENS, stop_length

    summarizer = LLMSummarizer(tiny_llm)
    assert (
        summarizer.max_new_tokens == MAX_NEW_TOKENS == SummarizerTrainConfig.max_completion_length
    )
    with pytest.raises(ConfigError, match="inference"):
        _grpo_config(Path("unused"), max_completion_length=MAX_NEW_TOKENS - 8)
    tokenizer = tiny_llm.tokenizer
    for item in tiny_dataset.items[:4]:
        prompt = summarizer.prompt(item)
        inference = summarizer.generate(tiny_llm, [prompt])[0]
        inputs = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():  # what GRPO samples, greedily and with no stop rule
            output = tiny_llm.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS,
                                             do_sample=False, min_new_tokens=MAX_NEW_TOKENS,
                                             pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        sampled = output[0, inputs["input_ids"].shape[1] :].tolist()
        cut = sampled[: stop_length(sampled, tokenizer, summarizer.max_keywords)]
        trained = tokenizer.decode(cut, skip_special_tokens=True)
        assert parse_keywords(trained, None) == parse_keywords(inference, None)


def report_history(out: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]


def test_two_stage_reranks_only_the_shortlist(tiny_dataset):
    import numpy as np

    from mmsrarec.graph.trained import TwoStageRecommender
    from mmsrarec.recommenders.base import Query, Recommender

    class First(Recommender):  # prefers low item indices
        def score_catalog(self, queries):
            return np.tile(-np.arange(tiny_dataset.n_items + 1, dtype=float), (len(queries), 1))

    class Second(Recommender):  # prefers high item indices among what it is shown
        name = "second"
        shown: list = []

        def score_catalog(self, queries):
            raise AssertionError("the re-ranker only scores candidates")

        def score_candidates(self, queries):
            self.shown += [q.candidates for q in queries]
            return [np.array(q.candidates, dtype=float) / 100 for q in queries]

    second = Second()
    two = TwoStageRecommender(First(), second, k=3)
    query = Query("u0", (1, 2), ())
    scores = two.score_catalog([query])[0]
    assert second.shown == [(3, 4, 5)]  # SASRec's top 3 unseen items
    order = [int(i) for i in np.argsort(-scores[1:], kind="stable") + 1]
    assert order[:3] == [5, 4, 3]  # re-ranked by the second stage
    assert order[3:6] == [6, 7, 8]  # the rest keep the first stage's order


def test_trained_graph_uses_the_grpo_adapter_and_the_trained_scorer(
    tiny_dataset, tiny_lm_dir, tiny_encoder_dir, tmp_path
):
    """`mmsrarec-yes-no-no-retrieval` end to end on tiny models: the summarizer runs with the
    GRPO adapter, candidates are scored by the trained yes/no scorer, which is refused once
    the keywords it was trained on change."""
    import json

    from peft import LoraConfig, get_peft_model

    from mmsrarec.errors import NotPreparedError
    from mmsrarec.graph.trained import TrainedGraphRecommender
    from mmsrarec.models.adapters import adapter_dir, tuned_summarizer_name
    from mmsrarec.recommenders.base import Query
    from mmsrarec.recommenders.yes_no import YesNoRecommender
    from mmsrarec.summarization import PROMPT_VERSION, KeywordCache
    from mmsrarec.summarization.cache import keyword_cache_path
    from mmsrarec.training.yes_no_trainer import YesNoConfig

    settings = Settings(
        cache_dir=tmp_path / "cache", run_dir=tmp_path / "runs", data_dir=tmp_path / "data",
        dataset=tiny_dataset.name, model=str(tiny_lm_dir), embedding_model=str(tiny_encoder_dir),
        offline=True,
    )  # fmt: skip
    torch.manual_seed(0)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(fresh_llm(tiny_lm_dir, tmp_path).model, lora)
    model.save_pretrained(adapter_dir(settings, "summarizer"))
    tuned = tuned_summarizer_name(settings)  # `mmsrarec summarize --critic --tuned`:
    with KeywordCache(keyword_cache_path(settings), tuned, PROMPT_VERSION) as cache:
        cache.put_many((item, [f"kw {item.item_id}", "drama"], 1.0) for item in tiny_dataset.items)
    zero_shot = TrainedGraphRecommender(settings, "mmsrarec-yes-no-no-sft")
    zero_shot.fit(tiny_dataset, 0)
    assert zero_shot.context.ranker is None and zero_shot.context.summarizer.name == tuned
    config = YesNoConfig(examples=4, batch_size=2, eval_every=2, n_valid_users=2, negatives=3,
                         k_similar=0, bf16=False, lora_rank=2)  # fmt: skip
    scorer = YesNoRecommender(settings, config, progress=False)
    scorer.fit(tiny_dataset, 0)  # `mmsrarec train recommender`: on the tuned keywords
    assert scorer.manifest["keywords"]["source"] == tuned
    assert scorer.keywords_of(tiny_dataset.item(1)) == [
        f"kw {tiny_dataset.item(1).item_id}",
        "drama",
    ]
    recommender = TrainedGraphRecommender(settings, "mmsrarec-yes-no-no-retrieval")
    recommender.fit(tiny_dataset, 0)
    context = recommender.context
    assert context.retriever is None and recommender.name == "mmsrarec-yes-no-no-retrieval"
    assert context.ranker.config == config  # the settings it was trained with
    assert context.preference is None  # METHOD.md's prompt: no older-history sentence
    user = tiny_dataset.eval_users[0]
    query = Query(user, tuple(tiny_dataset.history(user, "test")),
                  tuple(tiny_dataset.candidates(user, "test")))  # fmt: skip
    scores = recommender.score_candidates([query])[0]
    np.testing.assert_allclose(scores, scorer.score_candidates([query])[0], rtol=1e-5)
    # Other keywords in the cache: the scorer's prompts would differ from its training.
    manifest = scorer.save_dir(0) / "manifest.json"
    stale = json.loads(manifest.read_text())
    stale["keywords"]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(stale))
    with pytest.raises(NotPreparedError, match="trained with other keywords"):
        TrainedGraphRecommender(settings, "mmsrarec-yes-no").fit(tiny_dataset, 0)


def np_isfinite(values) -> bool:
    import numpy as np

    return bool(np.isfinite(values).all())


def test_train_cli_rejects_bad_options_in_one_line(capsys):
    from mmsrarec.cli.common import run_guarded
    from mmsrarec.cli.train import app

    assert run_guarded(app, ["recommender", "--k-similar", "-1", "--cpu"]) == 2
    assert "k-similar" in capsys.readouterr().err


def test_unexpected_errors_keep_their_own_traceback():
    import typer

    from mmsrarec.cli.common import run_guarded

    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise RuntimeError("the real cause")

    with pytest.raises(RuntimeError, match="the real cause"):
        run_guarded(app, [])


def test_grpo_stops_after_its_time_budget():
    from types import SimpleNamespace

    from mmsrarec.training.summarizer import StopAfter

    control = SimpleNamespace(should_training_stop=False, should_save=False)
    StopAfter(0).on_step_end(None, None, control)  # 0: no budget
    assert not control.should_training_stop
    StopAfter(1e-9).on_step_end(None, None, control)
    assert control.should_training_stop and control.should_save


GRPO_CHILD = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from mmsrarec.config import Settings
from mmsrarec.data import load_dataset
from mmsrarec.models import load_encoder, load_llm
from mmsrarec.training.config import SummarizerTrainConfig
from mmsrarec.training.summarizer import train_summarizer
lm, encoder, data, out = sys.argv[1:5]
settings = Settings(cache_dir=Path(out) / "cache", offline=True)
config = SummarizerTrainConfig(output_dir=out, use_cpu=True, max_steps=200, n_items=4,
                               n_heldout=0, num_generations=2, per_device_train_batch_size=2,
                               save_steps=1, learning_rate=1e-2, seed=0)
train_summarizer(config, load_dataset(Path(data)), load_llm(lm, settings),
                 load_encoder(encoder, settings), load_llm(lm, settings))
"""


def test_grpo_killed_mid_run_resumes_from_its_last_complete_checkpoint(
    tiny_dataset, tiny_lm_dir, tiny_encoder_dir, tiny_encoder, tmp_path
):
    """kill -9 of a real training process, then a rerun in this one: it resumes from the
    newest checkpoint whose `complete.json` matches its files, and finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mmsrarec.training.summarizer import train_summarizer

    out = tmp_path / "grpo"
    folder = next(p.parent for p in (tmp_path / "data").rglob("manifest.json"))  # tiny_dataset's
    child = subprocess.Popen(
        [sys.executable, "-c", GRPO_CHILD, str(tiny_lm_dir), str(tiny_encoder_dir), str(folder),
         str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while len(complete_names(out)) < 2:
            assert child.poll() is None, "the training process ended before its checkpoints"
            assert time.monotonic() < deadline, "no checkpoints after 240 s"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    newest = out / complete_names(out)[-1]
    step = int(newest.name.split("-")[-1])
    policy = fresh_llm(tiny_lm_dir, tmp_path)
    reward_llm = fresh_llm(tiny_lm_dir, tmp_path)
    config = _grpo_config(out, max_steps=step + 1, n_heldout=0)
    report = train_summarizer(config, tiny_dataset, policy, tiny_encoder, reward_llm)
    assert Path(report["resumed_from"]) == newest and report["steps"] == step + 1
    assert (out / "adapter" / "adapter_model.safetensors").exists()


def test_adapters_switch_per_call_on_one_model(tiny_lm_dir, tiny_dataset, tmp_path):
    """Two saved adapters on one `PeftModel`: each call runs the one it names, None the base."""
    from peft import LoraConfig, get_peft_model

    from mmsrarec.models.adapters import OnAdapter, active_adapter, attach_adapters
    from mmsrarec.scoring.prompts import build_prefix, candidate_suffix
    from mmsrarec.scoring.yes_no import SharedPrefixScorer

    folders = {}
    for seed, name in enumerate(("one", "two")):
        torch.manual_seed(seed)
        lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(fresh_llm(tiny_lm_dir, tmp_path).model, lora)
        model.save_pretrained(tmp_path / name)
        folders[name] = tmp_path / name
    llm = attach_adapters(fresh_llm(tiny_lm_dir, tmp_path), folders)
    base = SharedPrefixScorer(fresh_llm(tiny_lm_dir, tmp_path))
    prefix = build_prefix(llm, [("Movie 1", ["space opera"])], "", [])
    suffixes = [candidate_suffix(llm, tiny_dataset.item(i)) for i in (2, 3)]
    scorer = SharedPrefixScorer(llm)
    scores = {}
    for name in ("one", "two", None):
        with active_adapter(llm.model, name):
            scores[name] = scorer.score(prefix, suffixes)
    assert scores[None] == pytest.approx(base.score(prefix, suffixes))
    assert scores["one"] != pytest.approx(scores["two"]) != pytest.approx(scores[None])
    wrapped = OnAdapter(scorer, llm.model, "two", name="x")
    assert wrapped.score(prefix, suffixes) == pytest.approx(scores["two"]) and wrapped.name == "x"
    assert llm.model.active_adapter == "one"  # the call restored the active adapter
