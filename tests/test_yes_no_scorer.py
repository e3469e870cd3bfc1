"""The trained yes/no scorer: packed layout, item slots, token ids, listwise training, the
manifest, and the evaluation's resume key."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mmsrarec.config import Settings
from mmsrarec.errors import NotPreparedError
from mmsrarec.evaluation.harness import evaluate_method
from mmsrarec.evaluation.protocols import Protocol
from mmsrarec.recommenders.base import Query
from mmsrarec.scoring import packed as packed_module
from mmsrarec.scoring.packed import ITEM_SLOT, Encoded, answer_margins, encode, pack
from mmsrarec.scoring.prompts import build_prefix, candidate_suffix
from mmsrarec.scoring.yes_no import NaiveScorer, encode_prefix, yes_no_token_ids
from mmsrarec.training.yes_no_trainer import YesNoConfig, training_positions

TINY = dict(examples=8, batch_size=4, eval_every=4, n_valid_users=4, negatives=4, k_similar=0,
            keywords="none", bf16=False, lora_rank=4, lr=1e-2, rerank=6)  # fmt: skip


TINY_HISTORY = YesNoConfig().n_history


def settings_for(tmp_path, tiny_lm_dir, dataset) -> Settings:
    return Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d", run_dir=tmp_path / "r",
                    model=str(tiny_lm_dir), dataset=dataset.name, offline=True)  # fmt: skip


def yes_no_ids(llm):
    return (torch.tensor(ids) for ids in yes_no_token_ids(llm.tokenizer))


def test_packed_candidates_score_as_one_prompt_each(tiny_llm, tiny_dataset):
    """The 4-D mask and restarted positions make every packed suffix equal `prefix + suffix`
    run alone: against the reference scorer without slots, and with item tokens too."""
    items = [tiny_dataset.item(i) for i in range(1, 8)]
    prefix = build_prefix(tiny_llm, [(i.title, ["a", "b"]) for i in items[:3]], "", [])
    suffixes = [candidate_suffix(tiny_llm, item) for item in items[3:]]
    yes, no = yes_no_ids(tiny_llm)
    plain = pack(encode(tiny_llm.tokenizer, prefix, [], first=True),
                 [encode(tiny_llm.tokenizer, s, [], first=False) for s in suffixes])  # fmt: skip
    with torch.no_grad():
        margins = answer_margins(tiny_llm.model, plain, lambda i: None, yes, no)
    expected = NaiveScorer(tiny_llm).score(prefix, suffixes)
    np.testing.assert_allclose(torch.sigmoid(margins.double()).numpy(), expected, atol=1e-5)

    hidden = tiny_llm.model.config.hidden_size
    table = torch.randn(
        tiny_dataset.n_items + 1, hidden, generator=torch.Generator().manual_seed(0)
    )
    slotted = build_prefix(tiny_llm, [(i.title, ["a"]) for i in items[:3]], "", [], ITEM_SLOT)
    head = encode(tiny_llm.tokenizer, slotted, [1, 2, 3], first=True)
    tails = [encode(tiny_llm.tokenizer, candidate_suffix(tiny_llm, item, ITEM_SLOT), [j], False)
             for j, item in enumerate(items[3:], start=4)]  # fmt: skip
    with torch.no_grad():
        together = answer_margins(tiny_llm.model, pack(head, tails), table.__getitem__, yes, no)
        alone = [answer_margins(tiny_llm.model, pack(head, [t]), table.__getitem__, yes, no)
                 for t in tails]  # fmt: skip
    np.testing.assert_allclose(together.numpy(), torch.cat(alone).numpy(), atol=1e-4)
    with torch.no_grad():  # the item tokens matter: other vectors, other answers
        other = answer_margins(tiny_llm.model, pack(head, tails), lambda i: -table[i], yes, no)
    assert not torch.allclose(other, together)


def test_slots_become_single_positions_and_bos_is_not_doubled(tiny_llm):
    text = build_prefix(tiny_llm, [("A", ["x"]), ("B", [])], "", [], ITEM_SLOT)
    encoded = encode(tiny_llm.tokenizer, text, [7, 9], first=True)
    assert [i for i in encoded.items if i] == [7, 9]
    plain = [t for t, i in zip(encoded.ids, encoded.items, strict=True) if not i]
    assert plain[: len(encode_prefix(tiny_llm.tokenizer, ""))] == encode_prefix(
        tiny_llm.tokenizer, ""
    )
    bos = tiny_llm.tokenizer.bos_token_id  # SmolLM2's is `<|im_start|>`, which opens turns
    assert encoded.ids[:2] != [bos, bos]  # the template's own start is not doubled
    first_piece = text.split(ITEM_SLOT)[0]
    assert encoded.ids[: len(encode_prefix(tiny_llm.tokenizer, first_piece))] == encode_prefix(
        tiny_llm.tokenizer, first_piece
    )  # the plain scorer's ids, BOS rule included
    with pytest.raises(ValueError, match="2 item slots for 1 items"):
        encode(tiny_llm.tokenizer, text, [7], first=True)


def test_trainer_and_scorer_feed_the_model_the_same_tokens(
    tiny_dataset, tiny_lm_dir, tmp_path, monkeypatch
):
    """One (user, history, candidates) list seen by a training step and by scoring gives the
    same packed ids, items, positions and mask; its prefix starts with the scorer's BOS rule."""
    from mmsrarec.recommenders.yes_no import YesNoRecommender

    settings = settings_for(tmp_path, tiny_lm_dir, tiny_dataset)
    recommender = YesNoRecommender(settings, YesNoConfig(**TINY), progress=False)
    recommender._prepare(tiny_dataset, 0)
    position = training_positions(tiny_dataset, 1, 4, seed=0)[0]
    seen: list[packed_module.Packed] = []
    real = packed_module.answer_margins

    def record(model, packed, *args):
        seen.append(packed)
        return real(model, packed, *args)

    monkeypatch.setattr("mmsrarec.recommenders.yes_no.answer_margins", record)
    candidates = (position.target, *position.negatives)
    margins = recommender.list_margins([(position.user, position.history, candidates)])
    margins[0].logsumexp(0).backward()  # what a training step does with them
    recommender.score_candidates([Query(position.user, position.history, candidates)])
    train, score = seen
    for field in ("ids", "items", "positions", "mask", "last"):
        assert torch.equal(getattr(train, field), getattr(score, field)), field
    tokenizer = recommender.llm.tokenizer
    bos = encode_prefix(tokenizer, "")  # [BOS] where the tokenizer adds one, else []
    assert train.ids[: len(bos)].tolist() == bos
    assert train.ids[:2].tolist() != [tokenizer.bos_token_id] * 2
    slots = train.items[train.items > 0].tolist()  # history items, then one per candidate
    assert slots == [*position.history[-TINY_HISTORY:], *candidates]


def test_training_keeps_the_best_validation_weights_and_reloads(
    tiny_dataset, tiny_lm_dir, tmp_path
):
    from mmsrarec.recommenders.yes_no import YesNoRecommender

    settings = settings_for(tmp_path, tiny_lm_dir, tiny_dataset)
    fresh = YesNoRecommender(settings, YesNoConfig(**TINY), progress=False)
    fresh._prepare(tiny_dataset, 0)  # the same seeded start that `fit` trains from
    before = fresh.model.trainable_state()
    first = YesNoRecommender(settings, YesNoConfig(**TINY), progress=False)
    first.fit(tiny_dataset, 0)
    folder = first.save_dir(0)
    log = first.meta["log"]
    assert [row["examples"] for row in log] == [0, 4, 8]
    assert all(np.isfinite(row["loss"]) for row in log[1:])
    assert first.meta["best_valid_ndcg5"] == max(row["valid_ndcg5"] for row in log)
    assert (folder / "manifest.json").exists() and not (folder / "checkpoint.pt").exists()
    after = first.model.trainable_state()
    if first.meta["best_examples"] > 0:
        assert any(not torch.equal(before[k], after[k]) for k in before)
    queries = [Query.from_dataset(tiny_dataset, u, "test", True) for u in tiny_dataset.eval_users]
    scores = first.score_candidates(queries)
    assert all(((s > 0) & (s < 1)).all() for s in scores)
    catalog = first.score_catalog(queries[:2])
    assert catalog.shape == (2, tiny_dataset.n_items + 1)
    assert ((catalog[:, 1:] > 1).sum(axis=1) == TINY["rerank"]).all()

    again = YesNoRecommender(settings, YesNoConfig(**TINY), progress=False)
    again.load(tiny_dataset, 0)  # same manifest: the saved weights, no training
    for a, b in zip(again.score_candidates(queries), scores, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_a_stale_scorer_is_refused_at_load_and_retrained_by_fit(
    tiny_dataset, tiny_lm_dir, tmp_path
):
    from mmsrarec.recommenders.yes_no import YesNoRecommender

    settings = settings_for(tmp_path, tiny_lm_dir, tiny_dataset)
    with pytest.raises(NotPreparedError, match="no trained yes/no scorer"):
        YesNoRecommender(settings, YesNoConfig(**TINY), progress=False).load(tiny_dataset, 0)
    YesNoRecommender(settings, YesNoConfig(**TINY), progress=False).fit(tiny_dataset, 0)
    longer = YesNoConfig(**{**TINY, "n_history": 2})
    with pytest.raises(NotPreparedError, match="config, n_history"):
        YesNoRecommender(settings, longer, progress=False).load(tiny_dataset, 0)
    trained = YesNoRecommender(settings, YesNoConfig(**TINY), progress=False)
    shutil.copytree(trained.save_dir(0), trained.save_dir(1))  # seed 0's weights as seed 1's
    with pytest.raises(NotPreparedError, match="other sasrec, seed"):
        trained.load(tiny_dataset, 1)
    retrained = YesNoRecommender(settings, longer, progress=False)
    retrained.fit(tiny_dataset, 0)
    manifest = json.loads((retrained.save_dir(0) / "manifest.json").read_text())
    assert manifest["n_history"] == 2
    YesNoRecommender(settings, longer, progress=False).load(tiny_dataset, 0)


def test_saved_evaluations_under_another_resume_key_are_run_again(tiny_dataset, tmp_path):
    from mmsrarec.recommenders.popularity import PopularityRecommender

    fits = []

    def build():
        recommender = PopularityRecommender()
        fits.append(1)
        return recommender

    def run(key):
        return evaluate_method("pop", build, tiny_dataset, [0], Protocol.sampled, "valid",
                               done_dir=tmp_path, key=lambda seed: f"{key}-{seed}")  # fmt: skip

    first = run("a")
    assert run("a").first.metrics == first.first.metrics and len(fits) == 1  # reused
    run("b")  # other trained weights: the saved seed is stale
    assert len(fits) == 2
    assert json.loads((tmp_path / "pop.sampled.valid.seed0.json").read_text())["key"] == "b-0"


def test_yes_no_config_rejects_bad_settings():
    from mmsrarec.errors import ConfigError

    with pytest.raises(ConfigError, match="`negatives`"):
        YesNoConfig(negatives=0)
    with pytest.raises(ConfigError, match="`keywords`"):
        YesNoConfig(keywords="best")


def test_encoded_prompt_needs_content():
    with pytest.raises(ValueError, match="non-empty"):
        pack(Encoded([], []), [Encoded([1], [0])])
