"""Training smoke tests: a few GRPO and SFT steps on tiny local models (no real weights)."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError
from mmsrarec.models import load_llm
from mmsrarec.scoring.prompts import build_prefix, candidate_suffix
from mmsrarec.scoring.yes_no import SharedPrefixScorer
from mmsrarec.training.adapters import OnAdapter, active_adapter, attach_adapters
from mmsrarec.training.config import RecommenderTrainConfig, SummarizerTrainConfig
from mmsrarec.training.instructions import TASKS, training_examples, validation_examples

torch.set_num_threads(1)


def fresh_llm(path: Path, tmp_path: Path):
    """A private copy of a tiny model (the session fixtures must not be trained)."""
    return load_llm(str(path), Settings(cache_dir=tmp_path / "cache", offline=True))


def test_instructions_use_training_positions_only(tiny_dataset, tiny_llm):
    rows = training_examples(tiny_llm, tiny_dataset, n_users=0, positions_per_user=3, negatives=2)
    assert {row["task"] for row in rows} == set(TASKS)
    train_items = {i for s in tiny_dataset.train_sequences().values() for i in s}
    train_titles = {tiny_dataset.item(i).title for i in train_items}
    train_texts = {tiny_dataset.item(i).text for i in train_items}
    for row in rows:
        if row["task"] in ("pick_next", "keywords_title"):  # the answer is a training item
            assert row["completion"] in train_titles
        if row["task"] in ("yes_no", "next_keywords"):  # history items are training items
            assert set(re.findall(r"\d+\. <item>(.*?)</item>", row["prompt"])) <= train_titles
        if row["task"] == "yes_no" and row["completion"] == "yes":  # positives too
            assert re.search(r"<candidate>(.*?)</candidate>", row["prompt"])[1] in train_texts
    # yes/no rows are the scorer's exact prompt: prefix + candidate suffix
    yes = [row for row in rows if row["task"] == "yes_no"]
    assert {row["completion"] for row in yes} == {"yes", "no"}
    empty_prefix = build_prefix(tiny_llm, [], "", [])
    assert empty_prefix.split("Recent items")[0] in yes[0]["prompt"]
    assert yes[0]["prompt"].endswith(candidate_suffix(tiny_llm, tiny_dataset.item(1))[-30:])
    valid = validation_examples(tiny_llm, tiny_dataset, n_users=3)
    assert valid and all(row["prompt"] for row in valid)


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


def test_yes_no_examples_retrieve_from_the_whole_history(tiny_dataset, tiny_llm):
    """As at inference: similar users are found from the whole prefix of the sequence, the
    prompt lists the last `n_history` items and the neighbours' next items."""
    seen_histories = []

    def similar_for(user, history):
        seen_histories.append((user, list(history)))
        return [{"user_id": "other", "similarity": 0.9, "next_item_id": "i-next",
                 "next_title": "Neighbour Pick", "keywords": ["kw-a", "kw-b"]}]  # fmt: skip

    rows = training_examples(
        tiny_llm, tiny_dataset, tasks=["yes_no"], positions_per_user=50, n_history=2,
        similar_for=similar_for,
    )  # fmt: skip
    train = tiny_dataset.train_sequences()
    ids = {u: [tiny_dataset.item(i).item_id for i in seq] for u, seq in train.items()}
    assert any(len(history) > 2 for _, history in seen_histories)
    for user, history in seen_histories:  # each one a strict prefix of the user's sequence
        assert history == ids[user][: len(history)] and len(history) < len(ids[user])
    for row in rows:
        assert "<item>Neighbour Pick</item> keywords: kw-a, kw-b" in row["prompt"]
        assert len(re.findall(r"\n\d+\. <item>", row["prompt"])) <= 2


def test_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="num_generations"):
        SummarizerTrainConfig(output_dir=str(tmp_path), num_generations=1, use_cpu=True)
    with pytest.raises(ConfigError, match="tasks"):
        RecommenderTrainConfig(output_dir=str(tmp_path), tasks="nope", use_cpu=True)
    config = RecommenderTrainConfig(output_dir=str(tmp_path), use_cpu=True)
    assert config.bf16 is False and config.task_list == list(TASKS)


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


def test_sft_few_steps_then_reload_gives_identical_scores(tiny_dataset, tiny_lm_dir, tmp_path):
    from mmsrarec.training.recommender import train_recommender

    llm = fresh_llm(tiny_lm_dir, tmp_path)
    config = RecommenderTrainConfig(
        output_dir=str(tmp_path / "sft"), use_cpu=True, max_steps=3, n_users=6,
        n_valid_users=2, per_device_train_batch_size=2, eval_steps=2, save_steps=2,
        logging_steps=1, learning_rate=1e-2, max_length=256, seed=0,
    )  # fmt: skip
    report = train_recommender(config, tiny_dataset, llm)
    out = tmp_path / "sft"
    losses = [row["loss"] for row in report_history(out) if "loss" in row]
    assert losses and all(math.isfinite(x) for x in losses)
    assert (out / "loss.png").exists() and report["eval_loss_best"] is not None
    assert set(report["tasks"]) == set(TASKS)

    # Adapter saved -> loaded on a fresh base model gives the trained model's scores.
    trained = type(llm)(**{**llm.__dict__, "model": _trained_model(out)})
    prefix = build_prefix(trained, [("Movie 1", ["space opera"])], "", [])
    suffixes = [candidate_suffix(trained, tiny_dataset.item(i)) for i in (2, 3, 4)]
    reloaded = attach_adapters(fresh_llm(tiny_lm_dir, tmp_path), {"recommender": out / "adapter"})
    base = fresh_llm(tiny_lm_dir, tmp_path)
    with active_adapter(reloaded.model, "recommender"):
        again = SharedPrefixScorer(reloaded).score(prefix, suffixes)
    first = SharedPrefixScorer(trained).score(prefix, suffixes)
    assert again == pytest.approx(first, abs=1e-6)
    untrained = SharedPrefixScorer(base).score(prefix, suffixes)
    assert untrained != pytest.approx(again, abs=1e-4)  # the adapter changed the scores
    with active_adapter(reloaded.model, None):  # adapters off = the base model
        assert SharedPrefixScorer(reloaded).score(prefix, suffixes) == pytest.approx(untrained)
    scorer = OnAdapter(SharedPrefixScorer(reloaded), reloaded.model, "recommender", name="x")
    assert scorer.score(prefix, suffixes) == pytest.approx(first, abs=1e-6) and scorer.name == "x"


def _trained_model(out: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(_base_path(out))
    return PeftModel.from_pretrained(base, str(out / "adapter")).eval()


def _base_path(out: Path) -> str:
    import json

    return json.loads((out / "adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ]


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


def test_trained_graph_switches_adapters_on_one_model(
    tiny_dataset, tiny_lm_dir, tiny_encoder_dir, tmp_path
):
    """`mmsrarec-yes-no-no-retrieval` end to end on tiny models: both adapters on one PeftModel,
    the scorer runs with the SFT adapter, the summarizer with the GRPO one."""
    from peft import LoraConfig, get_peft_model

    from mmsrarec.graph.trained import TrainedGraphRecommender, inference_prompt_parts
    from mmsrarec.recommenders.base import Query
    from mmsrarec.training.adapters import adapter_dir

    settings = Settings(
        cache_dir=tmp_path / "cache", run_dir=tmp_path / "runs", data_dir=tmp_path / "data",
        dataset=tiny_dataset.name, model=str(tiny_lm_dir), embedding_model=str(tiny_encoder_dir),
        offline=True,
    )  # fmt: skip
    for seed, role in enumerate(("summarizer", "recommender")):
        torch.manual_seed(seed)
        lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(fresh_llm(tiny_lm_dir, tmp_path).model, lora)
        model.save_pretrained(adapter_dir(settings, role))
    recommender = TrainedGraphRecommender(settings, "mmsrarec-yes-no-no-retrieval")
    recommender.fit(tiny_dataset, 0)
    context = recommender.context
    assert context.retriever is None and recommender.name == "mmsrarec-yes-no-no-retrieval"
    peft_model = context.scorer.llm.model
    assert set(peft_model.peft_config) == {"summarizer", "recommender"}
    assert context.summarizer.llm.model is peft_model  # one base model in memory
    assert "+grpo-" in context.summarizer.name and "+sft-" in context.scorer.name
    # METHOD.md's prompt (no older-history sentence), catalog summarized offline in `fit`
    assert context.preference is None
    assert set(context.keywords.get_many(tiny_dataset.items)) == {
        item.item_id for item in tiny_dataset.items
    }
    user = tiny_dataset.eval_users[0]
    query = Query(user, tuple(tiny_dataset.history(user, "test")),
                  tuple(tiny_dataset.candidates(user, "test")))  # fmt: skip
    scores = recommender.score_candidates([query])[0]
    assert len(scores) == len(query.candidates) and np_isfinite(scores)
    # the scorer's numbers are the SFT adapter's, not the base model's
    prefix = build_prefix(context.scorer.llm, [], "", [])
    suffixes = [candidate_suffix(context.scorer.llm, tiny_dataset.item(i)) for i in (1, 2)]
    with active_adapter(peft_model, "recommender"):
        sft = SharedPrefixScorer(context.scorer.llm).score(prefix, suffixes)
    with active_adapter(peft_model, None):
        base = SharedPrefixScorer(context.scorer.llm).score(prefix, suffixes)
    assert context.scorer.score(prefix, suffixes) == pytest.approx(sft)
    assert sft != pytest.approx(base)
    # SFT prompts get the keywords this graph uses: the GRPO summarizer's, from its cache
    keywords_for, similar_for = inference_prompt_parts(settings, tiny_dataset, k_similar=0)
    stored = context.keywords.get_many(tiny_dataset.items)
    assert similar_for is None
    assert {i.item_id: keywords_for(i) for i in tiny_dataset.items} == stored


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
