"""The new-releases table: the cold items (ML-100K: released in 1997 or later) have no
interaction before the test; every method is evaluated on all test users, the cold-target and
warm-target users apart, and on the shelf (a cold target among the cold items only).

    python benchmarks/coldstart.py                   # every row (resumes)
    python benchmarks/coldstart.py --rows main       # the main rows, 3 seeds
    python benchmarks/coldstart.py --rows controls   # the controls, seed 0
    python benchmarks/coldstart.py --report          # tables from committed rows only

Each finished (method, seed) is committed as `coldstart/rows/<method>.seed<k>.json` (metrics
of the sampled, full and shelf protocols, per-user target ranks, fit and scoring seconds, the
training log or the fitted gate) with a key over the method's settings, the data, the cold
items and `ROW_VERSION`; a row whose key matches is skipped, so a killed run resumes. Seed 0
also writes the rankings exports `coldstart/rankings/{sampled,full,shelf}.<method>.jsonl.gz`
(the shelf export: the cold target, then the 100 best-scored unseen cold items). Models are
trained under `<run_dir>/new-releases/`. Afterwards `coldstart/results.json` and
`coldstart/RESULTS.md` hold the tables with paired 95% bootstrap intervals over users.
Prerequisite: `mmsrarec data prepare` (after fields were kept: `--force` on an older one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from rows import load_rows, per_user, write_export

HERE = Path(__file__).resolve().parent
OUT = HERE / "coldstart"
RANKINGS = OUT / "rankings"
ROW_VERSION = 1  # bump when the evaluation or a method's code changes its numbers
FUSED = "mmsrarec"
# Main rows (3 seeds where the method depends on the seed), then controls (seed 0).
MAIN = ["random", "most-popular", "latest", "content-knn", "item-knn", "sasrec", "sasrec-text",
        "cf-ensemble", "llm-recommender", FUSED]  # fmt: skip
SEEDED = {"sasrec", "sasrec-text", "cf-ensemble", "llm-recommender", FUSED}
CONTROLS = ["genre-profile", "llm-fame", "llm-i2i", "llm-recommender-permuted-text",
            "llm-recommender-minilm", "llm-recommender-no-id-dropout", "mmsrarec-llm-new-items",
            "cf-ensemble-sasrec-text"]  # fmt: skip
# What the fused system must beat, by group: the references of the paired intervals.
AGAINST = ["most-popular", "latest", "content-knn", "sasrec-text", "cf-ensemble",
           "llm-recommender", "cf-ensemble-sasrec-text"]  # fmt: skip
PROTOCOLS = ("sampled", "full", "shelf")
DRAWS = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="main,controls",
        help="`main`, `controls`, or method names (comma-separated).",
    )
    parser.add_argument("--seeds", type=int, default=3, help="Seeds of the seeded main rows.")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    parser.add_argument("--report", action="store_true", help="Only rebuild the tables.")
    return parser.parse_args()  # fmt: skip


def plan(rows: str, seeds: int) -> list[tuple[str, int]]:
    """(method, seed) pairs: seeded main rows over `seeds` seeds, everything else on 0."""
    out = []
    for part in filter(None, rows.split(",")):
        names = {"main": MAIN, "controls": CONTROLS}.get(part, [part])
        out += [(m, s) for m in names for s in (range(seeds) if m in SEEDED else [0])]
    return list(dict.fromkeys(out))


def split(settings):
    """The new-releases split of the prepared dataset and the settings that train on it."""
    from mmsrarec.data import load_dataset
    from mmsrarec.data.coldstart import RUN_SUBDIR, new_releases

    dataset = new_releases(load_dataset(settings.dataset_dir))
    return dataset, settings.model_copy(update={"run_dir": settings.run_dir / RUN_SUBDIR})


def row_key(method: str, seed: int, dataset) -> str:
    from mmsrarec.data.dataset import split_json
    from mmsrarec.models.item_lm import ItemLMConfig
    from mmsrarec.recommenders.methods import FUSIONS, LLM_VARIANTS

    members = FUSIONS.get(method, (method,))
    llm = {m: ItemLMConfig(**LLM_VARIANTS[m]).to_dict() for m in members if m in LLM_VARIANTS}
    data = split_json(dataset)
    parts = {"version": ROW_VERSION, "method": method, "seed": seed, "members": members,
             "llm": llm, "dataset": dataset.name, "cold_rule": dataset.cold_rule,
             "cold": sorted(dataset.cold),
             "data": hashlib.sha256(data.encode()).hexdigest()}  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def row_path(method: str, seed: int) -> Path:
    return OUT / "rows" / f"{method}.seed{seed}.json"


def run_row(method: str, seed: int, dataset, settings) -> None:
    """Fit once on the split, evaluate the three protocols on every test user, commit."""
    import torch

    from mmsrarec.evaluation.methods import build_method
    from mmsrarec.evaluation.protocols import EVALUATE, Protocol
    from mmsrarec.storage import atomic_write_json

    recommender = build_method(method, settings)
    started = time.perf_counter()
    recommender.fit(dataset, seed)
    row = {"key": row_key(method, seed, dataset), "method": method, "seed": seed,
           "fit_s": time.perf_counter() - started,
           "device": "cuda" if torch.cuda.is_available() else "cpu"}  # fmt: skip
    for protocol in PROTOCOLS:
        began = time.perf_counter()
        result = EVALUATE[Protocol(protocol)](recommender, dataset, "test")
        row[protocol] = {"metrics": result.metrics, "users": result.users,
                         "ranks": result.ranks.tolist(), "cold": result.cold.tolist(),
                         "seconds": time.perf_counter() - began}  # fmt: skip
        if seed == 0:
            write_export(RANKINGS, method, result, dataset)
    meta = getattr(recommender, "meta", None)
    if isinstance(meta, dict) and "log" in meta:
        row["training"] = {k: meta[k] for k in ("log", "best_epoch", "train_seconds", "keywords")
                           if k in meta}  # fmt: skip
    if hasattr(recommender, "describe_gate"):
        row["gate"] = recommender.describe_gate()
    if isinstance(meta, dict) and "validation" in meta:  # the fusion's fit, validation only
        row["validation"] = meta["validation"]
    atomic_write_json(row_path(method, seed), row)
    full = row["full"]["metrics"]
    print(f"{method} seed {seed}: full NDCG@10 cold {full['cold:NDCG@10']:.4f}, warm "
          f"{full['warm:NDCG@10']:.4f}, all {full['NDCG@10']:.4f}; shelf "
          f"{row['shelf']['metrics']['NDCG@10']:.4f}; fit {row['fit_s']:.0f} s",
          flush=True)  # fmt: skip


# ----- report -----------------------------------------------------------------------------


GROUPS = {"cold": ("full", "cold"), "warm": ("full", "warm"), "all": ("full", None),
          "shelf": ("shelf", None), "sampled-cold": ("sampled", "cold"),
          "sampled-all": ("sampled", None)}  # fmt: skip


def group_users(dataset, group: str) -> list[str]:
    protocol, part = GROUPS[group]
    users = sorted(dataset.eval_users)
    if protocol == "shelf" or part == "cold":
        return [u for u in users if dataset.target(u, "test") in dataset.cold]
    if part == "warm":
        return [u for u in users if dataset.target(u, "test") not in dataset.cold]
    return users


def report(dataset) -> dict:
    """Tables from the committed rows: `coldstart/results.json` and `coldstart/RESULTS.md`."""
    from mmsrarec.metrics import paired_interval
    from mmsrarec.storage import atomic_write_json, atomic_write_text

    rows = load_rows(OUT / "rows")
    cold_users = group_users(dataset, "cold")
    out: dict = {"n_users": len(dataset.eval_users), "cold_users": len(cold_users),
                 "cold_items": len(dataset.cold), "cold_rule": dataset.cold_rule,
                 "methods": {}, "fused": FUSED, "paired": {}}  # fmt: skip
    for method, method_rows in rows.items():
        entry: dict = {"seeds": [r["seed"] for r in method_rows], "groups": {}}
        for group, (protocol, _) in GROUPS.items():
            values = [per_user([r], protocol, group_users(dataset, group)).mean()
                      for r in method_rows]  # fmt: skip
            entry["groups"][group] = {"mean": float(np.mean(values)),
                                      "std": float(np.std(values, ddof=1))
                                      if len(values) > 1 else 0.0}  # fmt: skip
        entry["fit_s"] = float(np.mean([r["fit_s"] for r in method_rows]))
        entry["full_s_per_user"] = float(
            np.mean([r["full"]["seconds"] for r in method_rows]) / out["n_users"]
        )
        entry["gates"] = [r["gate"] for r in method_rows if "gate" in r]
        out["methods"][method] = entry
    for method in [FUSED, *(m for m in rows if m.startswith(FUSED + "-"))]:
        if method not in rows:
            continue
        for against in [*AGAINST, *(m for m in rows if m.startswith(FUSED) and m != method)]:
            if against not in rows or against == method:
                continue
            seeds = {r["seed"] for r in rows[method]} & {r["seed"] for r in rows[against]}
            mine = [r for r in rows[method] if r["seed"] in seeds]
            theirs = [r for r in rows[against] if r["seed"] in seeds]
            pair = {"seeds": sorted(seeds)}
            for group, (protocol, _) in GROUPS.items():
                users = group_users(dataset, group)
                pair[group] = paired_interval(
                    per_user(mine, protocol, users), per_user(theirs, protocol, users), draws=DRAWS
                )
            out["paired"].setdefault(method, {})[against] = pair
    out["what_carries_it"] = what_carries_it(dataset)
    atomic_write_json(OUT / "results.json", out)
    atomic_write_text(OUT / "RESULTS.md", markdown(out))
    return out


def what_carries_it(dataset) -> dict:
    """Descriptive statistics of the test positions (no model is fitted on them): who picks a
    new release, and how far an oracle that knows every release's final popularity gets on
    the shelf, against what the LLM's familiarity with the titles predicts of it."""
    from mmsrarec.metrics import ndcg

    cold = np.zeros(dataset.n_items + 1, dtype=bool)
    cold[sorted(dataset.cold)] = True
    users = sorted(dataset.eval_users)
    share = np.array([cold[dataset.history(u, "test")[-10:]].mean() for u in users])
    picked = np.array([cold[dataset.target(u, "test")] for u in users])
    bins = {
        "none": share == 0,
        "under 30%": (share > 0) & (share < 0.3),
        "30% to 60%": (share >= 0.3) & (share < 0.6),
        "60% or more": share >= 0.6,
    }
    who = [{"share": name, "users": int(m.sum()), "picks_new": float(picked[m].mean())}
           for name, m in bins.items()]  # fmt: skip
    counts = np.zeros(dataset.n_items + 1)
    for sequence in dataset.sequences.values():  # every interaction: an oracle, not a model
        np.add.at(counts, sequence, 1)
    ranks = []
    for user in group_users(dataset, "shelf"):
        allowed = cold.copy()
        allowed[dataset.history(user, "test")] = False
        target = dataset.target(user, "test")
        allowed[target] = True
        scores = np.where(allowed, counts, -np.inf)
        ranks.append(int((scores >= scores[target]).sum()) - 1)
    return {
        "who": who,
        "oracle_popularity_shelf_ndcg10": ndcg(np.array(ranks), 10),
        "fame_spearman_new_releases": _fame_spearman(dataset, counts),
    }


def _fame_spearman(dataset, counts: np.ndarray) -> float:
    """Spearman correlation of `llm-fame`'s predicted popularity (fitted without the new
    releases) with the new releases' final interaction counts."""
    from mmsrarec.config import Settings
    from mmsrarec.recommenders.methods import build_recommender

    fame = build_recommender("llm-fame", Settings())
    fame.fit(dataset, 0)
    new = np.array(sorted(dataset.cold))
    ranks = [np.argsort(np.argsort(values)) for values in (fame.scores[new], counts[new])]
    return float(np.corrcoef(*ranks)[0, 1])


def _cell(value: dict) -> str:
    if value["std"] < 5e-4:
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} ± {value['std']:.3f}"


def _interval(p: dict) -> str:
    return f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"


def markdown(out: dict) -> str:
    order = [m for m in [*MAIN, *CONTROLS] if m in out["methods"]]
    order += [m for m in out["methods"] if m not in order]
    n, cold = out["n_users"], out["cold_users"]
    lines = [
        f"# New releases on ML-100K: {out['cold_items']} cold items (`{out['cold_rule']}`), "
        f"all {n} test users",
        "",
        "Generated by `python benchmarks/coldstart.py` from the committed rows in "
        "`coldstart/rows/`. No interaction on a cold item is used before the test: not in "
        "training, not in validation choices or gates, not in counts or indexes. NDCG@10 over "
        f"the whole catalog for the {cold} cold-target users, the {n - cold} warm-target "
        "users and all users; the shelf ranks a cold target among the cold items only; "
        "NDCG@5 on 1 + 20 frozen candidates. Mean ± std over the seeds listed.",
        "",
        "| method | seeds | cold-target | warm-target | all | shelf | 1+20 cold | 1+20 all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in order:
        e = out["methods"][m]
        g = e["groups"]
        lines.append(f"| {m} | {','.join(map(str, e['seeds']))} | {_cell(g['cold'])} | "
                     f"{_cell(g['warm'])} | {_cell(g['all'])} | {_cell(g['shelf'])} | "
                     f"{_cell(g['sampled-cold'])} | {_cell(g['sampled-all'])} |")  # fmt: skip
    for method, pairs in out["paired"].items():
        lines += ["", f"## `{method}` against each reference (paired 95% intervals, NDCG@10; "
                  "1+20: NDCG@5)", "",
                  "| against | seeds | cold-target | warm-target | all | shelf | 1+20 all |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for against, p in pairs.items():
            lines.append(f"| {against} | {','.join(map(str, p['seeds']))} | "
                         f"{_interval(p['cold'])} | {_interval(p['warm'])} | "
                         f"{_interval(p['all'])} | {_interval(p['shelf'])} | "
                         f"{_interval(p['sampled-all'])} |")  # fmt: skip
    carries = out["what_carries_it"]
    lines += ["", "## What carries the choice of a new release (descriptive, test positions)", "",
              "Who: the share of new releases among a user's last 10 items predicts whether "
              "the next one is new.", "",
              "| share of new releases in the last 10 | users | next item is new |",
              "|---|---|---|"]  # fmt: skip
    for row in carries["who"]:
        lines.append(f"| {row['share']} | {row['users']} | {row['picks_new']:.0%} |")
    lines += ["", "Which: an oracle that ranks the new releases by their final number of "
              "interactions (known only after the test, so no model may use it) reaches shelf "
              f"NDCG@10 {carries['oracle_popularity_shelf_ndcg10']:.3f}; the methods above "
              "reach what their text says of it. `llm-fame`'s predicted popularity (the LLM's "
              "familiarity with the titles, fitted on the old items) has a Spearman "
              f"correlation of {carries['fame_spearman_new_releases']:.2f} with the new "
              "releases' final popularity."]  # fmt: skip
    lines += ["", "## Cost", "", "| method | fit s (mean) | full-catalog scoring s/user |",
              "|---|---|---|"]  # fmt: skip
    for m in order:
        e = out["methods"][m]
        lines.append(f"| {m} | {e['fit_s']:.0f} | {e['full_s_per_user']:.4f} |")
    gates = {m: out["methods"][m]["gates"][0] for m in order if out["methods"][m]["gates"]}
    if gates:
        lines += ["", "## Fitted gates (seed 0; validation only, cold targets left out)", ""]
        for m, gate in gates.items():
            parts = [f"{name}: " + ", ".join(f"{k} {v:+.3f}" for k, v in values.items())
                     for name, values in gate.items()]  # fmt: skip
            lines.append(f"- `{m}`: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    from mmsrarec.config import Settings, apply_offline_env

    settings = Settings(threads=args.threads)
    apply_offline_env(settings)
    import torch

    torch.set_num_threads(args.threads)
    dataset, trained_on_split = split(settings)
    if not args.report:
        for method, seed in plan(args.rows, args.seeds):
            path = row_path(method, seed)
            key = row_key(method, seed, dataset)
            if path.exists() and json.loads(path.read_text(encoding="utf-8")).get("key") == key:
                continue
            run_row(method, seed, dataset, trained_on_split)
    report(dataset)
    print((OUT / "RESULTS.md").read_text(encoding="utf-8"))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
