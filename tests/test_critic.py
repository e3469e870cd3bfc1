"""The critic: rewards (TRL contract, hand-checked values), normalisation, `RewardCritic`, and
the summarize <-> critique loop of the graph with a scripted summarizer and critic."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import pytest
import torch
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import ValidationError

from mmsrarec.critic import (
    RewardCritic,
    RewardWeights,
    completion_text,
    length_reward,
    make_info_reward,
    make_recon_reward,
    make_total_reward,
    normalise,
    weighted_total,
)
from mmsrarec.critic.critic import feedback
from mmsrarec.critic.rewards import RECON_PROMPT, length_score
from mmsrarec.data import Item
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.nodes.critic import after_critique, critique
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.nodes.summarizer import summarize
from mmsrarec.summarization import KeywordCache
from mmsrarec.trace import verify_trace
from mmsrarec.types import Judgement


class BagOfWordsEncoder:
    """Deterministic stand-in for a sentence encoder: hashed word counts, unit length."""

    name = "bag-of-words"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(",", " ").replace(".", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


ENCODER = BagOfWordsEncoder()
SPACE = "A space opera with starships, aliens and a galactic war."
ROMANCE = "A romantic comedy about a wedding planner in Paris."


def conversational(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# --- rewards ----------------------------------------------------------------------------------


def test_completion_text_handles_both_formats() -> None:
    assert completion_text("a, b") == "a, b"
    assert completion_text(conversational("a, b")) == "a, b"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a, b"}]}]
    assert completion_text(parts) == "a, b"
    assert completion_text([]) == ""


def test_info_reward_prefers_the_matching_description() -> None:
    r_info = make_info_reward(ENCODER)
    assert r_info.__name__ == "r_info"
    completions = ["space opera, starships, aliens", "space opera, starships, aliens", ""]
    scores = r_info(completions, description=[SPACE, ROMANCE, SPACE])
    assert len(scores) == 3
    assert scores[0] > scores[1] + 0.3 and scores[0] <= 1.0 + 1e-6
    assert scores[2] == 0.0  # no keywords: no information
    as_chat = r_info([conversational(c) for c in completions], description=[SPACE, ROMANCE, SPACE])
    assert as_chat == pytest.approx(scores)


def test_rewards_accept_trl_keyword_arguments(tiny_llm) -> None:
    completions = [conversational("space opera, aliens"), conversational("wedding, paris")]
    trl_kwargs: dict[str, Any] = {
        "prompts": [[{"role": "user", "content": "p"}]] * 2,
        "completion_ids": [[1, 2], [3]],
        "description": [SPACE, ROMANCE],
        "trainer_state": object(),
        "log_extra": lambda *a, **k: None,
        "log_metric": lambda *a, **k: None,
        "item_id": ["1", "2"],  # any other dataset column
    }
    rewards = [make_info_reward(ENCODER), make_recon_reward(tiny_llm), length_reward]
    rewards.append(make_total_reward(ENCODER, tiny_llm))
    assert [f.__name__ for f in rewards] == ["r_info", "r_recon", "r_len", "r_total"]
    for reward in rewards:
        values = reward(completions=completions, **trl_kwargs)
        assert len(values) == 2 and all(math.isfinite(v) for v in values)


def test_rewards_reject_a_missing_or_misaligned_description(tiny_llm) -> None:
    for reward in (make_info_reward(ENCODER), make_recon_reward(tiny_llm)):
        with pytest.raises(ValueError, match="description"):
            reward(["a, b"])
        with pytest.raises(ValueError, match="one text per completion"):
            reward(["a, b", "c"], description=[SPACE])
        with pytest.raises(ValueError, match="one text per completion"):
            reward(["a, b"], description=SPACE)


def test_length_reward_counts_parsed_keywords_without_the_cap() -> None:
    assert length_reward.__name__ == "r_len"
    many = ", ".join(f"w{i}" for i in range(11))
    completions = ["a1, b2, b2, c3", conversational("x\n\nmore, words"), many, ""]
    assert length_reward(completions) == [-3.0, -1.0, -11.0, 0.0]


def test_recon_reward_is_teacher_forced_minus_perplexity(tiny_llm) -> None:
    r_recon = make_recon_reward(tiny_llm, batch_size=8)
    assert r_recon.__name__ == "r_recon"
    completions = ["space opera, aliens", "wedding", conversational("space opera, aliens"), ""]
    descriptions = [SPACE, ROMANCE + " " + ROMANCE, SPACE, "The user watched a film."]
    scores = r_recon(completions, description=descriptions)
    assert len(scores) == 4 and all(math.isfinite(s) and s <= -1.0 for s in scores)
    assert scores[0] == pytest.approx(scores[2], rel=1e-5)  # string == conversational

    # By hand, one unpadded row: mean NLL of the description tokens after the prompt.
    tokenizer = tiny_llm.tokenizer
    prompt = tokenizer(RECON_PROMPT.format(keywords="wedding"))["input_ids"]
    target = tokenizer(" " + ROMANCE + " " + ROMANCE, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = tiny_llm.model(torch.tensor([prompt + target])).logits[0]
    nll = torch.nn.functional.cross_entropy(logits[len(prompt) - 1 : -1], torch.tensor(target))
    assert scores[1] == pytest.approx(-math.exp(nll.item()), rel=1e-4)

    one_by_one = make_recon_reward(tiny_llm, batch_size=1)(completions, description=descriptions)
    assert one_by_one == pytest.approx(scores, rel=1e-4)  # padding changes nothing
    assert r_recon(["a"], description=["  "]) == [-1.0]  # nothing to reconstruct


# --- normalisation and weights ----------------------------------------------------------------


def test_length_score_target_range() -> None:
    expected = {0: 0.0, 1: 1 / 3, 2: 2 / 3, 3: 1.0, 5: 0.92, 8: 0.8, 12: 0.4, 16: 0.0, 30: 0.0}
    for n, score in expected.items():
        assert length_score(n) == pytest.approx(score), n


def test_normalise_and_weighted_total_by_hand() -> None:
    vocab = 49152
    raw = {"r_info": 0.7, "r_recon": -10.0, "r_len": -4.0}
    scaled = normalise(raw, vocab_size=vocab)
    recon = 1 - math.log(10) / math.log(vocab)
    assert scaled == pytest.approx({"info": 0.7, "recon": recon, "len": 0.96})
    weights = RewardWeights()
    assert (weights.alpha, weights.beta, weights.gamma) == (0.5, 0.3, 0.2)
    assert weighted_total(scaled, weights) == pytest.approx(0.5 * 0.7 + 0.3 * recon + 0.2 * 0.96)
    extreme = normalise({"r_info": -0.4, "r_recon": -1e30, "r_len": -20.0}, vocab_size=vocab)
    assert extreme == {"info": 0.0, "recon": 0.0, "len": 0.0}
    perfect = normalise({"r_info": 1.0, "r_recon": -1.0, "r_len": -3.0}, vocab_size=vocab)
    assert weighted_total(perfect, RewardWeights(alpha=2, beta=1, gamma=1)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="normalise"):
        weighted_total(raw, weights)  # raw components are refused, not silently mixed


def test_reward_weights_validation() -> None:
    with pytest.raises(ValidationError):
        RewardWeights(alpha=-1)
    with pytest.raises(ValidationError, match="must be positive"):
        RewardWeights(alpha=0, beta=0, gamma=0)
    with pytest.raises(ValidationError):
        RewardWeights(delta=-1)
    with pytest.raises(ValidationError):
        RewardWeights(epsilon=1)


def test_total_reward_is_on_zero_one(tiny_llm) -> None:
    r_total = make_total_reward(ENCODER, tiny_llm)
    totals = r_total(["space opera, starships, aliens", ""], description=[SPACE, SPACE])
    assert all(0.0 <= t <= 1.0 for t in totals) and totals[0] > totals[1]


# --- RewardCritic -----------------------------------------------------------------------------


def test_reward_critic_judges_with_the_three_rewards(tiny_llm) -> None:
    critic = RewardCritic(ENCODER, tiny_llm, threshold=0.99)
    items = [Item("s", "Space", SPACE), Item("r", "Romance", ROMANCE)]
    drafts = {
        "s": ["space opera", "starships", "aliens"],
        "r": [f"word{i}" for i in range(11)],  # a custom summarizer may exceed the cap
    }
    judged = critic.judge(items, drafts)
    assert set(judged) == {"s", "r"}
    for judgement in judged.values():
        assert set(judgement["components"]) == {"r_info", "r_recon", "r_len"}
        assert 0.0 <= judgement["total"] <= 1.0
    assert judged["s"]["total"] > judged["r"]["total"]
    assert judged["r"]["components"]["r_len"] == -11.0
    assert "too many keywords (11); use at most 8" in judged["r"]["feedback"]
    assert "miss the description's content" in judged["r"]["feedback"]
    assert (
        RewardCritic(ENCODER, tiny_llm, threshold=0.0).judge(items, drafts)["r"]["feedback"] == ""
    )
    with pytest.raises(ValueError, match="not given to the critic"):
        critic.judge(items[:1], drafts)


def test_feedback_messages() -> None:
    good = {"info": 0.9, "recon": 0.9, "len": 1.0}
    assert feedback(good, 0).startswith("no keywords found")
    assert feedback(good, 2) == "too few keywords (2); give 3 to 8"
    assert "hard to reconstruct" in feedback({**good, "recon": 0.2}, 5)
    assert "miss the description" in feedback({**good, "info": 0.55, "recon": 0.6}, 5)


# --- the summarize <-> critique loop ----------------------------------------------------------


class ScriptedSummarizer:
    """Keywords `<item>-r<round>`; records every call's items and feedback."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def summarize(self, items: Sequence[Item], feedback: Mapping[str, str]) -> dict[str, list[str]]:
        self.calls.append(([item.item_id for item in items], dict(feedback)))
        rounds = len(self.calls)
        return {item.item_id: [f"{item.item_id}-r{rounds}", "film"] for item in items}


class ScriptedCritic:
    """Scores per item and round from a script (the draft's round is in its first keyword)."""

    name = "scripted-critic"

    def __init__(self, script: dict[str, list[float]]) -> None:
        self.script = script

    def judge(self, items: Sequence[Item], drafts: Mapping[str, list[str]]) -> dict[str, Judgement]:
        out = {}
        for item_id, keywords in drafts.items():
            round_ = int(keywords[0].rsplit("-r", 1)[1])
            total = self.script[item_id][round_ - 1]
            out[item_id] = Judgement(
                total=total, components={"r_info": total}, feedback=f"improve {item_id}"
            )
        return out


def _loop_graph():
    graph = StateGraph(RecommendationState, context_schema=GraphContext)
    graph.add_node("summarize", summarize)
    graph.add_node("critique", critique)
    graph.add_node("retrieve", lambda state: {"similar_users": []})
    graph.add_edge(START, "summarize")
    graph.add_edge("summarize", "critique")
    graph.add_conditional_edges(
        "critique", after_critique, {"summarize": "summarize", "retrieve": "retrieve"}
    )
    graph.add_edge("retrieve", END)
    return graph.compile()


def _context(dataset, summarizer, critic, store, **settings: Any) -> GraphContext:
    return GraphContext(
        dataset=dataset,
        summarizer=summarizer,
        critic=critic,
        keywords=store,
        retriever=None,
        scorer=None,
        settings=GraphSettings(**settings),
    )


def _run(context: GraphContext, history: list[str]) -> dict[str, Any]:
    start = {"user_id": "u0", "history": history, "candidates": [], "top_k": 1, "critic_round": 0}
    return _loop_graph().invoke(start, context=context)


def test_loop_keeps_the_best_and_stops_at_max_rounds_or_threshold(tiny_dataset, tmp_path: Path):
    summarizer = ScriptedSummarizer()
    critic = ScriptedCritic({"m1": [0.5, 0.3, 0.4], "m2": [0.4, 0.9], "m3": [0.7], "m9": [0.95]})
    store = KeywordCache(tmp_path / "kw.sqlite", summarizer.name, "test")
    context = _context(tiny_dataset, summarizer, critic, store, max_rounds=3, threshold=0.6)
    state = _run(context, ["m9", "m1", "m2", "m3"])  # n_history=5 keeps all four

    assert [ids for ids, _ in summarizer.calls] == [["m9", "m1", "m2", "m3"], ["m1", "m2"], ["m1"]]
    assert summarizer.calls[0][1] == {}
    assert summarizer.calls[1][1] == {"m1": "improve m1", "m2": "improve m2"}
    summaries = state["summaries"]
    assert summaries["m1"]["keywords"] == ["m1-r1", "film"]  # round 1 scored best (0.5)
    assert (summaries["m1"]["reward"], summaries["m1"]["rounds"]) == (0.5, 3)
    assert (summaries["m2"]["keywords"], summaries["m2"]["rounds"]) == (["m2-r2", "film"], 2)
    assert (summaries["m3"]["reward"], summaries["m3"]["rounds"]) == (0.7, 1)
    assert summaries["m3"]["source"] == "scripted" and summaries["m3"]["components"]
    assert state["critic_round"] == 3 and state["to_summarize"] == []
    items = [tiny_dataset.by_id(i) for i in ("m1", "m2", "m3")]
    assert store.get_rows(items) == {
        "m1": (["m1-r1", "film"], 0.5),
        "m2": (["m2-r2", "film"], 0.9),
        "m3": (["m3-r1", "film"], 0.7),
    }
    nodes = [record["node"] for record in state["trace"]]
    assert nodes == ["summarize", "critique"] * 3
    assert state["trace"][0]["model"] == "scripted"
    assert state["trace"][0]["outputs"]["keywords"]["m1"] == ["m1-r1", "film"]
    assert state["trace"][1]["outputs"]["scores"]["m1"]["total"] == 0.5
    assert verify_trace(state["trace"]) is None


def test_loop_uses_cache_hits_and_n_history(tiny_dataset, tmp_path: Path) -> None:
    summarizer = ScriptedSummarizer()
    store = KeywordCache(tmp_path / "kw.sqlite", summarizer.name, "test")
    store.put(tiny_dataset.by_id("m3"), ["cached", "film"], 0.8)
    context = _context(tiny_dataset, summarizer, None, store, n_history=2)
    state = _run(context, ["m1", "m2", "m3"])  # only m2 and m3 are recent enough
    assert [ids for ids, _ in summarizer.calls] == [["m2"]]
    assert set(state["summaries"]) == {"m2", "m3"}
    assert state["summaries"]["m3"] == {
        "item_id": "m3",
        "keywords": ["cached", "film"],
        "reward": None,
        "components": {},
        "rounds": 0,
        "source": "cache",
    }
    # Without a critic, drafts are accepted as they are and stored.
    assert state["summaries"]["m2"]["reward"] is None and state["critic_round"] == 1
    assert store.get_many([tiny_dataset.by_id("m2")]) == {"m2": ["m2-r1", "film"]}
    again = ScriptedSummarizer()
    _run(_context(tiny_dataset, again, None, store, n_history=2), ["m1", "m2", "m3"])
    assert again.calls == []  # everything cached: the summarizer is not called


def test_nodes_return_only_declared_state_keys(tiny_dataset, tmp_path: Path) -> None:
    declared = set(get_type_hints(RecommendationState))
    summarizer = ScriptedSummarizer()
    store = KeywordCache(tmp_path / "kw.sqlite", summarizer.name, "test")
    store.put(tiny_dataset.by_id("m1"), ["cached"], None)
    critic = ScriptedCritic({"m2": [0.1, 0.2]})
    runtime = Runtime(context=_context(tiny_dataset, summarizer, critic, store, max_rounds=2))
    state: dict[str, Any] = {"history": ["m1", "m2"], "critic_round": 0, "summaries": {}}
    first = summarize(state, runtime)
    assert set(first) <= declared and "summaries" in first
    state.update(first)
    judged = critique(state, runtime)
    assert set(judged) <= declared
    assert judged["to_summarize"] == ["m2"] and judged["feedback"] == {"m2": "improve m2"}
    state.update({**judged, "summaries": {**state["summaries"], **judged["summaries"]}})
    assert after_critique(state, runtime) == "summarize"
    second = summarize(state, runtime)
    assert set(second) <= declared and second["drafts"] == {"m2": ["m2-r2", "film"]}
    state.update(second)
    assert set(critique(state, runtime)) <= declared
    assert after_critique({**state, "to_summarize": []}, runtime) == "retrieve"
    # The router never loops past max_rounds, whatever the state says.
    assert after_critique({**state, "to_summarize": ["m2"], "critic_round": 2}, runtime) == (
        "retrieve"
    )


# --- R_collab and the one-pass total ----------------------------------------------------------


def _with_sequence(dataset, user, sequence):
    import dataclasses

    return dataclasses.replace(dataset, sequences={**dataset.sequences, user: sequence})


def test_collab_targets_read_training_interactions_only(tiny_dataset) -> None:
    from mmsrarec.critic import CollabTargets

    base = CollabTargets.from_dataset(tiny_dataset)
    assert base.neighbours  # the tiny data has co-chosen items
    # Swap one user's validation and test items for other items: nothing changes.
    user = next(u for u in tiny_dataset.eval_users if len(tiny_dataset.sequence(u)) >= 4)
    sequence = list(tiny_dataset.sequence(user))
    unseen = [i for i in range(1, tiny_dataset.n_items + 1) if i not in sequence]
    swapped = _with_sequence(tiny_dataset, user, sequence[:-2] + unseen[:2])
    again = CollabTargets.from_dataset(swapped)
    assert again.neighbours == base.neighbours and again.contrast == base.contrast
    # Swap one of its TRAINING items instead: the targets move.
    moved = _with_sequence(tiny_dataset, user, [unseen[0], *sequence[1:]])
    assert CollabTargets.from_dataset(moved).neighbours != base.neighbours


def test_collab_reward_prefers_what_the_audience_also_chose(tiny_dataset) -> None:
    from mmsrarec.critic import CollabTargets, make_collab_reward

    targets = CollabTargets.from_dataset(tiny_dataset, n_neighbours=3, n_contrast=3)
    r_collab = make_collab_reward(ENCODER, targets)
    item_id = next(iter(targets.neighbours))
    near = ", ".join(targets.neighbours[item_id])
    far = ", ".join(targets.contrast[item_id])
    good, bad, empty = r_collab([near, far, ""], item_id=[item_id] * 3)
    assert good > 0 > bad and empty == 0.0
    unknown = r_collab(["comedy"], item_id=["not-an-item"])
    assert unknown == [0.0]  # no training user chose it: no neighbours, no signal
    with pytest.raises(ValueError, match="item_id"):
        r_collab(["comedy"])


def test_total_reward_calls_each_reward_once_on_distinct_completions(tiny_llm, monkeypatch) -> None:
    from mmsrarec.critic import rewards as rewards_module

    calls: dict[str, list[list[str]]] = {}
    real = rewards_module.make_rewards

    def counting(*args: Any, **kwargs: Any):
        def wrap(name, function):
            def counted(completions, **kw):
                calls.setdefault(name, []).append([completion_text(c) for c in completions])
                return function(completions, **kw)

            return counted

        return {name: wrap(name, f) for name, f in real(*args, **kwargs).items()}

    monkeypatch.setattr(rewards_module, "make_rewards", counting)
    r_total = make_total_reward(ENCODER, tiny_llm)
    logged: dict[str, float] = {}
    completions = ["space, war", "space, war", "wedding, paris", "space, war"]
    totals = r_total(completions, description=[SPACE, SPACE, ROMANCE, SPACE],
                     item_id=["1", "1", "2", "1"], log_metric=logged.__setitem__)  # fmt: skip
    assert set(calls) == {"r_info", "r_recon", "r_len"}
    assert all(len(batches) == 1 for batches in calls.values())  # once per batch
    assert calls["r_recon"][0] == ["space, war", "wedding, paris"]  # repeats scored once
    assert totals[0] == totals[1] == totals[3] and len(totals) == 4
    assert {"raw/r_info", "raw/r_recon", "raw/r_len", "norm/info"} <= set(logged)


def test_critic_adds_collab_and_names_it_when_weakest(tiny_dataset, tiny_llm) -> None:
    from mmsrarec.critic import CollabTargets

    targets = CollabTargets.from_dataset(tiny_dataset)
    item_id = next(iter(targets.neighbours))
    item = tiny_dataset.by_id(item_id)
    critic = RewardCritic(ENCODER, tiny_llm, collab=targets, threshold=1.01)
    judged = critic.judge([item], {item_id: ["alpha", "beta", "gamma"]})[item_id]
    assert "r_collab" in judged["components"]
    assert (
        "r_collab"
        not in RewardCritic(ENCODER, tiny_llm).judge([item], {item_id: ["alpha"]})[item_id][
            "components"
        ]
    )
    scaled = {"info": 0.9, "recon": 0.9, "len": 1.0, "collab": 0.6}
    assert "audience" in feedback(scaled, 4)
    assert "audience" in feedback({**scaled, "collab": 0.2}, 4)
    assert "audience" not in feedback({"info": 0.9, "recon": 0.7, "len": 1.0}, 4)
