"""Do the motivations describe what a user chooses next? On every ML-100K test user: the
held-out test item's keywords should match the user's motivations (built from the history
before it) better than a random unseen item's do.

    python benchmarks/motivations.py

Per user, the 20 frozen negatives of the sampled protocol are the random unseen items (drawn
once, seed 0); the user's AUC is the share of them the test item out-matches
(`scoring.motivations.match`; ties count one half). Reported: the mean over users with a 95%
bootstrap interval over users, for the motivations built from

- `stored-else-text` (the default): the keyword store's critic-approved keywords where an
  item has them (the base SmolLM2-135M summarizer's; `mmsrarec summarize --critic`), else the
  words of its own text (its genres on ML-100K);
- `text`: every item's own text;
- `stored-only`: the stored keywords alone (items without any have none);
- `no-interactions`: the default without the interaction embeddings (keywords alone group
  the history).

Each variant is also compared with `text` user by user (paired 95% bootstrap interval), and
`stored-else-text` and `text` on the users whose test item has stored keywords. Also: how
many items the store covers, and how many of its keywords only repeat the title.
Writes `benchmarks/explanations/motivations.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "explanations" / "motivations.json"
DRAWS = 2000


def user_auc(history, candidates, space, embeddings, dataset) -> float:
    from mmsrarec.scoring.motivations import match, profile

    motivations = profile(history, space, embeddings, lambda i: dataset.item(i).title,
                          lambda i: dataset.item(i).item_id)  # fmt: skip
    scores = np.array([match(motivations, space, item) for item in candidates])
    target, negatives = scores[0], scores[1:]
    return float(((target > negatives) + 0.5 * (target == negatives)).mean())


def interval(values: np.ndarray) -> dict[str, float]:
    picks = np.random.default_rng(0).integers(0, len(values), size=(DRAWS, len(values)))
    means = values[picks].mean(axis=1)
    return {"mean": float(values.mean()), "ci_low": float(np.quantile(means, 0.025)),
            "ci_high": float(np.quantile(means, 0.975))}  # fmt: skip


def title_copies(dataset, stored: dict[str, list[str]]) -> float:
    """Share of stored keywords whose words all occur in the item's title."""
    from mmsrarec.scoring.evidence import tokens

    pairs = [(dataset.by_id(i).title, k) for i, words in stored.items() for k in words]
    copies = [bool(tokens(k)) and tokens(k) <= tokens(title) for title, k in pairs]
    return float(np.mean(copies)) if copies else 0.0


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset
    from mmsrarec.metrics import paired_interval
    from mmsrarec.scoring.evidence import text_keywords
    from mmsrarec.scoring.motivations import KeywordSpace, interaction_embeddings
    from mmsrarec.storage import atomic_write_json
    from mmsrarec.summarization.keywords import stored_keywords

    settings = load_settings()
    dataset = load_dataset(settings.dataset_dir)
    stored = stored_keywords(settings, dataset, settings.model)
    embeddings = interaction_embeddings(dataset)
    spaces = {  # "text" first: the others are compared with it, user by user
        "text": (KeywordSpace.build(dataset, {}, text_keywords), embeddings),
        "stored-else-text": (KeywordSpace.build(dataset, stored, text_keywords), embeddings),
        "stored-only": (KeywordSpace.build(dataset, stored, lambda item: []), embeddings),
        "no-interactions": (KeywordSpace.build(dataset, stored, text_keywords),
                            np.zeros_like(embeddings)),
    }  # fmt: skip
    users = list(dataset.eval_users)
    covered = {u for u in users if dataset.item(dataset.target(u, "test")).item_id in stored}
    report = {
        "command": "python benchmarks/motivations.py " + " ".join(sys.argv[1:]),
        "users": len(users), "negatives_per_user": len(dataset.candidates(users[0], "test")) - 1,
        "keyword_store": {
            "summarizer": settings.model, "items": len(stored), "catalog": dataset.n_items,
            "share_of_keywords_repeating_the_title": title_copies(dataset, stored),
            "users_whose_test_item_has_stored_keywords": len(covered),
        },
        "auc": {},
    }  # fmt: skip
    per_user = {}
    for name, (space, vectors) in spaces.items():
        aucs = np.array([user_auc(dataset.history(u, "test"), dataset.candidates(u, "test"),
                                  space, vectors, dataset) for u in users])  # fmt: skip
        per_user[name] = aucs
        report["auc"][name] = {**interval(aucs), "share_users_above_half": float(
            (aucs > 0.5).mean())}  # fmt: skip
        if name != "text":
            report["auc"][name]["paired_diff_vs_text"] = paired_interval(aucs, per_user["text"])
        print(name, report["auc"][name], flush=True)
    mask = np.array([u in covered for u in users])
    report["users_whose_test_item_has_stored_keywords"] = {
        name: {**interval(per_user[name][mask]), "users": int(mask.sum())}
        for name in ("stored-else-text", "text")
    }  # fmt: skip
    atomic_write_json(OUT, report)


if __name__ == "__main__":
    main()
