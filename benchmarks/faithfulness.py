"""Are the cited history items the cause? ERASER's comprehensiveness and sufficiency, adapted
to rankings, on every ML-100K test user (seed 0, full catalog, the fused system's top 5).

    python benchmarks/faithfulness.py --method mmsrarec --threads 1

For each user and each of the top-5 items j (ranked among the items not in the history):

- cited: the `N_CITED` history items whose removal lowers j's score most
  (`recommenders.explain.leave_one_out` over the last 50 positions, as the graph cites them:
  a fused system with the LLM member re-scores the `--shortlist` positions its cheaper members
  find most damaging; `--shortlist 0` re-scores all 50);
  random: as many items drawn uniformly from the same 50 positions (seed 0);
- comprehensiveness: j's rank after removing the cited items minus its rank before (the rank
  drop; higher = the removed items held j up), against the same with the random items;
  "cited beats random" when the cited removal drops j further (ties do not count);
- sufficiency: j's rank from the cited items alone, against from the random items alone;
- keywords (where a member reads text: `--keywords`): the words j shares with the cited items
  (`scoring.evidence`) removed from those items' text, the text features recomputed, j's
  score change and rank drop; against as many other words of the same items' text.

Ranks are 1-based and pessimistic (ties count against j) among the items not in the original
history. 95% intervals: percentile bootstrap over users (2,000 draws; a user's five
recommendations stay together). Per-user rows go to `<run_dir>/faithfulness/<method>.jsonl`,
so a killed run resumes; the summary is `benchmarks/explanations/faithfulness.json`.
`--cost-users N` also times the graph's evidence step (parts + leave-one-out for the top 10)
on the first N users: wall-clock and CPU seconds of this process (the machine is shared, so
the wall-clock time includes waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "explanations"
TOP = 5
DRAWS = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mmsrarec", help="A catalog recommender's name.")
    parser.add_argument("--users", type=int, default=0, help="Only the first N users (0 = all).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument(
        "--keywords",
        action="store_true",
        help="Also the keyword evidence (needs a member that reads text).",
    )
    parser.add_argument(
        "--cost-users", type=int, default=100, help="Users whose evidence step is timed (0 = none)."
    )
    parser.add_argument(
        "--shortlist",
        type=int,
        default=None,
        help="Positions a ranker with a costly member re-scores (0 = all of them; default: "
        "the graph's, `recommenders.explain.SHORTLIST`).",
    )
    parser.add_argument("--out", type=Path, default=OUT / "faithfulness.json")
    return parser.parse_args()  # fmt: skip


def ranks_of(scores: np.ndarray, excluded: list[int], items: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank of each `items[r]` in `scores[r]` among the columns not in
    `excluded` (and not padding): [len(items)]."""
    scores = np.array(scores, dtype=np.float64)
    scores[:, 0] = -np.inf
    scores[:, excluded] = -np.inf
    own = scores[np.arange(len(items)), items]
    return 1 + (scores >= own[:, None]).sum(axis=1) - 1  # the item itself counted once


def user_rows(ranker, dataset, user: str, rng: np.random.Generator, shortlist: int) -> list[dict]:
    """The comprehensiveness and sufficiency records of one user's top-5."""
    from mmsrarec.recommenders.base import Query
    from mmsrarec.recommenders.explain import N_CITED, WINDOW, leave_one_out

    history = tuple(dataset.history(user, "test"))
    base = ranker.score_catalog([Query(user, history)])[0]
    masked = np.array(base, dtype=np.float64)
    masked[0] = -np.inf
    masked[list(history)] = -np.inf
    top = np.argsort(-masked, kind="stable")[:TOP]
    query = Query(user, history, tuple(int(i) for i in top))
    counterfactual = leave_one_out(ranker, query, shortlist=shortlist)
    window = list(history[-WINDOW:])
    queries, meta = [], []
    for row in range(len(top)):
        cited = [i for i, _ in counterfactual.cited(row, N_CITED)]
        random = [int(i) for i in rng.choice(window, size=len(cited), replace=False)]
        for kind, removed in (("cited", cited), ("random", random)):
            queries.append(Query(user, tuple(i for i in history if i not in removed)))
            queries.append(Query(user, tuple(i for i in history if i in removed)))
            meta.append((row, kind))
    scores = ranker.score_catalog(queries)  # [2 per (item, kind)]
    items = np.repeat(top, 2 * 2)
    ranks = ranks_of(scores, list(history), items)
    before = ranks_of(base[None, :].repeat(TOP, 0), list(history), top)
    rows = [{"user": user, "item": int(item), "rank": int(before[r]),
             "n_cited": len(counterfactual.cited(r, N_CITED))}
            for r, item in enumerate(top)]  # fmt: skip
    for n, (row, kind) in enumerate(meta):
        rows[row][f"drop_{kind}"] = int(ranks[2 * n] - before[row])
        rows[row][f"alone_{kind}"] = int(ranks[2 * n + 1])
    return rows


def keyword_rows(
    ranker, text_side, dataset, user: str, rows: list[dict], rng, shortlist: int
) -> None:
    """Adds to each of the user's rows the keyword evidence's effect (see the module doc)."""
    from mmsrarec.recommenders.base import Query
    from mmsrarec.recommenders.explain import N_CITED, leave_one_out
    from mmsrarec.scoring.evidence import tokens

    history = tuple(dataset.history(user, "test"))
    top = tuple(r["item"] for r in rows)
    counterfactual = leave_one_out(ranker, Query(user, history, top), shortlist=shortlist)
    base = ranker.score_catalog([Query(user, history)])[0]
    for row, record in enumerate(rows):
        item = dataset.item(record["item"])
        cited = [i for i, _ in counterfactual.cited(row, N_CITED)]
        wanted = tokens(f"{item.title} {item.text}")
        edits = {}
        for kind in ("matched", "other"):
            removed: dict[int, set[str]] = {}
            for index in cited:
                words = tokens(dataset.item(index).text)
                shared = words & wanted
                pool = sorted(words - wanted)
                if kind == "matched":
                    removed[index] = shared
                else:
                    k = min(len(shared), len(pool))
                    removed[index] = set(rng.choice(pool, size=k, replace=False)) if k else set()
            edits[kind] = removed
        record["n_matched_words"] = sum(len(w) for w in edits["matched"].values())
        for kind, removed in edits.items():
            with text_side.without_words(dataset, removed):
                scores = ranker.score_catalog([Query(user, history)])[0]
            rank = ranks_of(scores[None, :], list(history), np.array([record["item"]]))[0]
            record[f"kw_drop_{kind}"] = int(rank - record["rank"])
            record[f"kw_score_change_{kind}"] = float(base[record["item"]] - scores[record["item"]])


def summary(rows: list[dict], prefix: str = "") -> dict:
    """Means and shares with 95% bootstrap intervals over users."""
    users = sorted({r["user"] for r in rows}, key=str)
    index = {u: n for n, u in enumerate(users)}
    group = np.array([index[r["user"]] for r in rows])

    def interval(values: np.ndarray) -> dict[str, float]:
        sums = np.bincount(group, values, len(users))
        counts = np.bincount(group, minlength=len(users))
        picks = np.random.default_rng(0).integers(0, len(users), size=(DRAWS, len(users)))
        means = sums[picks].sum(1) / counts[picks].sum(1)
        return {"mean": float(values.mean()), "ci_low": float(np.quantile(means, 0.025)),
                "ci_high": float(np.quantile(means, 0.975))}  # fmt: skip

    cited = np.array([r[f"{prefix}drop_cited" if not prefix else f"{prefix}drop_matched"]
                      for r in rows], dtype=float)  # fmt: skip
    other = np.array([r[f"{prefix}drop_random" if not prefix else f"{prefix}drop_other"]
                      for r in rows], dtype=float)  # fmt: skip
    share = interval((cited > other).astype(float))
    return {
        "share_beats": share, "share_ties": float((cited == other).mean()),
        "mean_rank_drop_cited": interval(cited), "mean_rank_drop_random": interval(other),
    }  # fmt: skip


def cost(ranker, dataset, users: list[str], shortlist: int) -> dict:
    """Seconds of the graph's evidence step per user: parts and leave-one-out of the top 10."""
    from mmsrarec.recommenders.base import Query
    from mmsrarec.recommenders.explain import leave_one_out

    seconds, cpu = [], []
    for user in users:
        history = tuple(dataset.history(user, "test"))
        scores = np.array(ranker.score_catalog([Query(user, history)])[0], dtype=np.float64)
        scores[0] = -np.inf
        scores[list(history)] = -np.inf
        top = tuple(int(i) for i in np.argsort(-scores, kind="stable")[:10])
        started, started_cpu = time.perf_counter(), time.process_time()
        query = Query(user, history, top)
        ranker.contributions([query])
        leave_one_out(ranker, query, shortlist=shortlist)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    values, cpu_ms = np.array(seconds) * 1000, np.array(cpu) * 1000
    return {"users": len(users), "ms_mean": float(values.mean()),
            "ms_median": float(np.median(values)), "ms_p90": float(np.quantile(values, 0.9)),
            "cpu_ms_mean": float(cpu_ms.mean()), "cpu_ms_median": float(np.median(cpu_ms)),
            "load_average": os.getloadavg()}  # fmt: skip


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset
    from mmsrarec.recommenders.explain import SHORTLIST
    from mmsrarec.recommenders.methods import build_recommender

    args.shortlist = SHORTLIST if args.shortlist is None else args.shortlist

    torch.set_num_threads(args.threads)
    settings = load_settings()
    dataset = load_dataset(settings.dataset_dir)
    ranker = build_recommender(args.method, settings)
    ranker.fit(dataset, 0)
    users = sorted(dataset.eval_users, key=str)[: args.users or None]
    folder = settings.run_dir / "faithfulness"
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{'-kw' if args.keywords else ''}{'-s' + str(args.shortlist) if args.shortlist else ''}"
    records = folder / f"{args.method}{tag}.jsonl"
    done = {}
    if records.exists():
        for line in records.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done.setdefault(row["user"], []).append(row)
    text_side = None
    if args.keywords:
        from text_side import TextSide  # benchmarks/text_side.py

        text_side = TextSide.find(ranker)
    started = time.perf_counter()
    with records.open("a") as sink:
        for n, user in enumerate(users):
            if user in done:
                continue
            rng = np.random.default_rng([0, int(user) if user.isdigit() else n])
            rows = user_rows(ranker, dataset, user, rng, args.shortlist)
            if text_side is not None:
                keyword_rows(ranker, text_side, dataset, user, rows, rng, args.shortlist)
            sink.write("".join(json.dumps(r) + "\n" for r in rows))
            sink.flush()
            done[user] = rows
            if n % 50 == 0:
                print(f"{n}/{len(users)} users, {time.perf_counter() - started:.0f}s", flush=True)
    rows = [r for u in users for r in done[u]]
    result = summary(rows)
    report = {
        "command": "python benchmarks/faithfulness.py " + " ".join(sys.argv[1:]),
        "method": args.method, "seed": 0, "top": TOP, "n": len(rows), "users": len(users),
        "shortlist": args.shortlist,
        "share_cited_beats_random": result["share_beats"]["mean"],
        "ci_low": result["share_beats"]["ci_low"], "ci_high": result["share_beats"]["ci_high"],
        "share_ties": result["share_ties"],
        "mean_rank_drop_cited": result["mean_rank_drop_cited"]["mean"],
        "mean_rank_drop_cited_ci": [result["mean_rank_drop_cited"]["ci_low"],
                                    result["mean_rank_drop_cited"]["ci_high"]],
        "mean_rank_drop_random": result["mean_rank_drop_random"]["mean"],
        "mean_rank_drop_random_ci": [result["mean_rank_drop_random"]["ci_low"],
                                     result["mean_rank_drop_random"]["ci_high"]],
        "mean_rank_before": float(np.mean([r["rank"] for r in rows])),
        "sufficiency": {
            "mean_rank_cited_alone": float(np.mean([r["alone_cited"] for r in rows])),
            "mean_rank_random_alone": float(np.mean([r["alone_random"] for r in rows])),
            "share_cited_alone_ranks_higher": float(np.mean(
                [r["alone_cited"] < r["alone_random"] for r in rows])),
        },
        "mean_cited_per_recommendation": float(np.mean([r["n_cited"] for r in rows])),
    }  # fmt: skip
    if args.keywords:
        keywords = summary(rows, prefix="kw_")
        report["keywords"] = {
            "share_matched_beats_other": keywords["share_beats"],
            "share_ties": keywords["share_ties"],
            "mean_rank_drop_matched": keywords["mean_rank_drop_cited"],
            "mean_rank_drop_other": keywords["mean_rank_drop_random"],
            "mean_score_change_matched": float(np.mean([r["kw_score_change_matched"]
                                                        for r in rows])),
            "mean_score_change_other": float(np.mean([r["kw_score_change_other"] for r in rows])),
            "mean_matched_words": float(np.mean([r["n_matched_words"] for r in rows])),
        }  # fmt: skip
    if args.cost_users:
        report["cost"] = cost(ranker, dataset, users[: args.cost_users], args.shortlist)
        report["cost"]["machine"] = (f"{platform.processor() or platform.machine()}, "
                                     f"{os.cpu_count()} cores shared with other jobs, "
                                     f"{args.threads} torch thread")  # fmt: skip
    from mmsrarec.storage import atomic_write_json

    atomic_write_json(args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
