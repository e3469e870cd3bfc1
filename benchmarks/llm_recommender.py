"""The LLM-recommender table: the hybrid-token LLM, the fused system, the collaborative
ensemble, the controls and the baselines, on all test users, both protocols.

    python benchmarks/llm_recommender.py                     # every row (resumes)
    python benchmarks/llm_recommender.py --rows main         # the main rows, 3 seeds
    python benchmarks/llm_recommender.py --rows controls     # the controls, seed 0
    python benchmarks/llm_recommender.py --report            # tables from committed rows only

Each finished (method, seed) is committed as `llm/rows/<method>.seed<k>.json` (metrics of
both protocols, per-user target ranks, fit and scoring seconds, the training log or the fitted
gate) with a key over the method's settings, the data and `ROW_VERSION`; a row whose key
matches is skipped, so a killed run resumes and an unchanged row is never recomputed. Seed 0
also writes the rankings exports `accuracy/rankings/{sampled,full}.<method>.jsonl.gz`.
A row whose scoring costs more than 0.5 s per user (`SAMPLED`: the yes/no prompt scorer)
runs on a seeded sample of test users, and its intervals pair it with the references on
exactly those users.
Afterwards `llm/results.json` and `llm/RESULTS.md` hold the tables: mean ± std over seeds,
paired 95% bootstrap intervals over users against SASRec and against the collaborative
ensemble, and the split by target popularity. Prerequisite: `mmsrarec data prepare`.
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
OUT = HERE / "llm"
RANKINGS = HERE / "accuracy" / "rankings"
ROW_VERSION = 1  # bump when the evaluation or a method's code changes its numbers
MAIN = ["random", "most-popular", "item-knn", "sasrec", "cf-ensemble", "llm-recommender",
        "mmsrarec"]  # fmt: skip
# Keyword sources (the critic's effect), then controls of the design (on the items' own text,
# as `llm-recommender-item-text`).
KEYWORDS = ["llm-recommender-base-keywords", "llm-recommender-tuned-no-collab",
            "llm-recommender-item-text"]  # fmt: skip
# Fusions that ask what the LLM adds beyond a second collaborative model (3 seeds: the
# differences are small).
FUSION_CONTROLS = ["cf-ensemble-two-sasrec", "mmsrarec-four-texts"]
SEVERAL_SEEDS = [*MAIN, *KEYWORDS, *FUSION_CONTROLS]
# Models that score items from their text (the new-releases work, benchmarks/coldstart.py):
# here on warm items, for their rare-target bucket.
TEXT_MODELS = ["sasrec-text", "content-knn", "llm-fame", "llm-i2i", "latest", "genre-profile",
               "llm-recommender-item-text-id-dropout"]  # fmt: skip
CONTROLS = [*KEYWORDS, *FUSION_CONTROLS, *TEXT_MODELS, "llm-recommender-id-only",
            "llm-recommender-text-only",
            "llm-recommender-permuted-text", "llm-recommender-random-init",
            "llm-recommender-minilm", "llm-recommender-retrieval",
            "llm-recommender-text-init-normal", "mmsrarec-id-only", "llm-yes-no"]  # fmt: skip
# Rows on a seeded sample of test users (method -> users): the yes/no scorer needs a prompt
# of 1 + 20 candidates per user (about 1.7 s on 2 cores), and 50 for full ranking.
SAMPLED = {"llm-yes-no": 200}
REFERENCES = ("sasrec", "cf-ensemble")
# The critic's effect on recommendations: (row, against) on the seeds both have.
KEYWORD_PAIRS = [("llm-recommender", "llm-recommender-base-keywords"),
                 ("llm-recommender-tuned-no-collab", "llm-recommender-base-keywords"),
                 ("llm-recommender", "llm-recommender-tuned-no-collab"),
                 ("llm-recommender", "llm-recommender-item-text"),
                 ("llm-recommender-base-keywords", "llm-recommender-item-text")]  # fmt: skip
# What the LLM adds to the fusion, against what a second SASRec run adds.
ADDED_VALUE_PAIRS = [("mmsrarec", "cf-ensemble-two-sasrec"),
                     ("mmsrarec-four-texts", "cf-ensemble-two-sasrec"),
                     ("cf-ensemble-two-sasrec", "cf-ensemble")]  # fmt: skip
RARE = 20  # a target with at most this many training interactions counts as rare
DRAWS = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="main,controls",
        help="`main`, `controls`, or method names (comma-separated).",
    )
    parser.add_argument("--seeds", type=int, default=3, help="Seeds of the main rows.")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    parser.add_argument("--report", action="store_true", help="Only rebuild the tables.")
    return parser.parse_args()  # fmt: skip


def plan(rows: str, seeds: int) -> list[tuple[str, int]]:
    """(method, seed) pairs: main and keyword rows over `seeds` seeds, other controls on 0."""
    out = []
    for part in filter(None, rows.split(",")):
        if part == "main":
            out += [(m, s) for s in range(seeds) for m in MAIN]
        elif part == "controls":
            out += [(m, s) for m in CONTROLS
                    for s in (range(seeds) if m in SEVERAL_SEEDS else [0])]  # fmt: skip
        else:
            out += [(part, s) for s in (range(seeds) if part in SEVERAL_SEEDS else [0])]
    return list(dict.fromkeys(out))


def item_keywords(method: str, dataset, settings) -> dict:
    """LLM member -> its `KeywordSource`, as its `fit` will read it."""
    from mmsrarec.recommenders.methods import FUSIONS, KEYWORD_SOURCES, LLM_VARIANTS
    from mmsrarec.summarization.keywords import resolve_keywords

    members = [m for m in FUSIONS.get(method, (method,)) if m in LLM_VARIANTS]
    return {m: resolve_keywords(settings, dataset, KEYWORD_SOURCES.get(m, "none"))
            for m in members}  # fmt: skip


def row_users(method: str, dataset) -> list[str]:
    """The test users of `method`'s row: all, or its seeded `SAMPLED` sample."""
    import random

    users = sorted(dataset.eval_users)
    if method in SAMPLED:
        users = sorted(random.Random(0).sample(users, min(SAMPLED[method], len(users))))
    return users


def row_key(method: str, seed: int, dataset, settings) -> str:
    from mmsrarec.data.dataset import split_json
    from mmsrarec.evaluation.methods import resume_key
    from mmsrarec.models.item_lm import ItemLMConfig
    from mmsrarec.recommenders.methods import FUSIONS, LLM_VARIANTS

    members = FUSIONS.get(method, (method,))
    llm = {m: ItemLMConfig(**LLM_VARIANTS[m]).to_dict() for m in members if m in LLM_VARIANTS}
    keywords = {m: hashlib.sha256(json.dumps(source.keywords, sort_keys=True).encode()).hexdigest()
                for m, source in item_keywords(method, dataset, settings).items()}  # fmt: skip
    parts = {
        "version": ROW_VERSION, "method": method, "seed": seed, "llm": llm,
        "keywords": keywords,
        "model": settings.model, "members": members, "dataset": dataset.name,
        "data": hashlib.sha256(split_json(dataset).encode()).hexdigest(),
    }  # fmt: skip
    if method in SAMPLED:  # only then: the keys of rows on all users stay as committed
        parts["users"] = row_users(method, dataset)
    trained = resume_key(method, settings, dataset)  # the trained yes/no scorer's manifest
    if trained is not None:
        parts["trained"] = trained(seed)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def row_path(method: str, seed: int) -> Path:
    return OUT / "rows" / f"{method}.seed{seed}.json"


def run_row(method: str, seed: int, dataset, settings) -> None:
    """Fit once, evaluate both protocols on every test user, commit the row."""
    import torch

    from mmsrarec.evaluation.methods import build_method
    from mmsrarec.evaluation.protocols import evaluate_full, evaluate_sampled
    from mmsrarec.storage import atomic_write_json

    for member, source in item_keywords(method, dataset, settings).items():
        if source.fallback and member == "llm-recommender":
            raise SystemExit(f"error: `{member}` would run without its tuned keywords: "
                             f"{source.description}")  # fmt: skip
    recommender = build_method(method, settings)
    started = time.perf_counter()
    recommender.fit(dataset, seed)
    fitted = time.perf_counter()
    users = row_users(method, dataset)
    sampled = evaluate_sampled(recommender, dataset, "test", users)
    scored = time.perf_counter()
    full = evaluate_full(recommender, dataset, "test", users)
    row = {
        "key": row_key(method, seed, dataset, settings), "method": method, "seed": seed,
        "fit_s": fitted - started, "sampled_s": scored - fitted,
        "full_s": time.perf_counter() - scored, "users": sampled.users,
        "sampled": {"metrics": sampled.metrics, "ranks": sampled.ranks.tolist()},
        "full": {"metrics": full.metrics, "ranks": full.ranks.tolist(),
                 "users": full.users},
    }  # fmt: skip
    meta = getattr(recommender, "meta", None)
    if isinstance(meta, dict) and "log" in meta:
        row["training"] = {k: meta[k] for k in ("log", "best_epoch", "train_seconds", "keywords")
                           if k in meta}  # fmt: skip
    row["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(meta, dict) and "best_examples" in meta:  # the yes/no scorer
        row["training"] = {k: meta[k] for k in ("log", "best_examples", "best_valid_ndcg5",
                                                "train_seconds")}  # fmt: skip
    if hasattr(recommender, "describe_gate"):
        row["gate"] = recommender.describe_gate()
    if seed == 0:
        for result in (sampled, full):
            write_export(RANKINGS, method, result, dataset)
    atomic_write_json(row_path(method, seed), row)
    print(f"{method} seed {seed}: NDCG@5 {sampled.metrics['NDCG@5']:.4f}, full NDCG@10 "
          f"{full.metrics['NDCG@10']:.4f}, fit {row['fit_s']:.0f} s", flush=True)  # fmt: skip


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of a - b with a 95% bootstrap interval over users."""
    from mmsrarec.metrics import paired_interval

    return paired_interval(a, b, draws=DRAWS)


def report(dataset) -> dict:
    """Tables from the committed rows: `llm/results.json` and `llm/RESULTS.md`."""
    rows = load_rows(OUT / "rows")
    users = sorted(dataset.eval_users)
    popularity = dataset.train_popularity()
    rare = np.array([popularity[dataset.target(u, "test")] <= RARE for u in users])
    out: dict = {"n_users": len(users), "rare_threshold": RARE, "rare_users": int(rare.sum()),
                 "methods": {}}  # fmt: skip
    for method, method_rows in rows.items():
        entry = {"seeds": [r["seed"] for r in method_rows], "per_seed": {}, "paired": {}}
        mine_users = sorted(method_rows[0]["users"])  # all, or the row's sample
        mine_rare = np.array([popularity[dataset.target(u, "test")] <= RARE for u in mine_users])
        entry["users"] = len(mine_users)
        for protocol in ("sampled", "full"):
            metrics = [r[protocol]["metrics"] for r in method_rows]
            entry[protocol] = {k: {"mean": float(np.mean([m[k] for m in metrics])),
                                   "std": float(np.std([m[k] for m in metrics], ddof=1))
                                   if len(metrics) > 1 else 0.0} for k in metrics[0]}  # fmt: skip
            values = per_user(method_rows, protocol, mine_users)
            entry[protocol]["rare"] = float(values[mine_rare].mean())
            entry[protocol]["frequent"] = float(values[~mine_rare].mean())
            for reference in REFERENCES:
                if reference not in rows or reference == method:
                    continue
                seeds = {r["seed"] for r in method_rows} & {r["seed"] for r in rows[reference]}
                mine = [r for r in method_rows if r["seed"] in seeds]
                theirs = [r for r in rows[reference] if r["seed"] in seeds]
                if mine:
                    entry["paired"].setdefault(protocol, {})[reference] = paired(
                        per_user(mine, protocol, mine_users),
                        per_user(theirs, protocol, mine_users),
                    ) | {"seeds": sorted(seeds)}
        entry["devices"] = sorted({r.get("device", "cpu") for r in method_rows})
        entry["fit_s"] = float(np.mean([r["fit_s"] for r in method_rows]))
        entry["full_s_per_user"] = float(np.mean([r["full_s"] for r in method_rows])) / len(
            mine_users
        )
        entry["sampled_s_per_user"] = float(np.mean([r["sampled_s"] for r in method_rows])) / len(
            mine_users
        )
        entry["gates"] = [r["gate"] for r in method_rows if "gate" in r]
        entry["training"] = [r["training"] for r in method_rows if "training" in r]
        out["methods"][method] = entry
    out["keyword_pairs"] = pairs(rows, KEYWORD_PAIRS, users)
    out["added_value_pairs"] = pairs(rows, ADDED_VALUE_PAIRS, users)
    from mmsrarec.storage import atomic_write_json, atomic_write_text

    atomic_write_json(OUT / "results.json", out)
    atomic_write_text(OUT / "RESULTS.md", markdown(out))
    return out


def pairs(rows: dict[str, list[dict]], wanted: list[tuple[str, str]], users: list[str]) -> list:
    """Paired intervals of (row, against) on the seeds both have, for rows both committed."""
    out = []
    for a, b in wanted:
        if a not in rows or b not in rows:
            continue
        seeds = {r["seed"] for r in rows[a]} & {r["seed"] for r in rows[b]}
        pair = {"method": a, "against": b, "seeds": sorted(seeds)}
        for protocol in ("sampled", "full"):
            pair[protocol] = paired(
                per_user([r for r in rows[a] if r["seed"] in seeds], protocol, users),
                per_user([r for r in rows[b] if r["seed"] in seeds], protocol, users),
            )
        out.append(pair)
    return out


def _cell(entry: dict, protocol: str, metric: str) -> str:
    value = entry[protocol][metric]
    if value["std"] < 5e-4:  # deterministic methods: float noise across seeds only
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} ± {value['std']:.3f}"


def _interval(entry: dict, protocol: str, reference: str) -> str:
    p = entry["paired"].get(protocol, {}).get(reference)
    return "—" if p is None else f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"


def _label(method: str, entry: dict, out: dict) -> str:
    """The method's name, with its user count when it ran on a sample (`SAMPLED`)."""
    users = entry.get("users", out["n_users"])
    return method if users == out["n_users"] else f"{method} ({users} users)"


def markdown(out: dict) -> str:
    order = [m for m in [*MAIN, *CONTROLS] if m in out["methods"]]
    order += [m for m in out["methods"] if m not in order]
    lines = [
        f"# LLM recommender on ML-100K: all {out['n_users']} test users",
        "",
        "Generated by `python benchmarks/llm_recommender.py` from the committed rows in "
        "`llm/rows/` (see the script's docstring). Mean ± std over the seeds listed; "
        "intervals are paired 95% bootstrap intervals over users of the per-user metric "
        "(averaged over the seeds both rows share).",
        "",
        "| method | seeds | HR@1 | NDCG@5 (1+20) | full NDCG@10 | NDCG@5 − SASRec | "
        "NDCG@5 − cf-ensemble | NDCG@10 − SASRec | NDCG@10 − cf-ensemble |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in order:
        e = out["methods"][m]
        lines.append(
            f"| {_label(m, e, out)} | {','.join(map(str, e['seeds']))} | "
            f"{_cell(e, 'sampled', 'HR@1')} | "
            f"{_cell(e, 'sampled', 'NDCG@5')} | {_cell(e, 'full', 'NDCG@10')} | "
            f"{_interval(e, 'sampled', 'sasrec')} | {_interval(e, 'sampled', 'cf-ensemble')} | "
            f"{_interval(e, 'full', 'sasrec')} | {_interval(e, 'full', 'cf-ensemble')} |"
        )
    lines += [
        "",
        f"## By target popularity (≤ {out['rare_threshold']} training interactions: "
        f"{out['rare_users']} users; the rest: {out['n_users'] - out['rare_users']})",
        "",
        "| method | NDCG@5 rare | NDCG@5 frequent | NDCG@10 rare | NDCG@10 frequent |",
        "|---|---|---|---|---|",
    ]
    for m in order:
        e = out["methods"][m]
        lines.append(f"| {_label(m, e, out)} | {e['sampled']['rare']:.3f} | "
                     f"{e['sampled']['frequent']:.3f} | "
                     f"{e['full']['rare']:.3f} | {e['full']['frequent']:.3f} |")  # fmt: skip
    for key, title in (
        ("keyword_pairs", "Keyword sources: the critic's effect on recommendations"),
        ("added_value_pairs", "What the LLM adds: against a second SASRec run"),
    ):
        if not out.get(key):
            continue
        lines += ["", f"## {title}", "",
                  "| method | against | seeds | NDCG@5 difference | NDCG@10 difference |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for p in out[key]:
            cells = [f"{p[k]['diff']:+.3f} [{p[k]['low']:+.3f}, {p[k]['high']:+.3f}]"
                     for k in ("sampled", "full")]  # fmt: skip
            seeds = ",".join(map(str, p["seeds"]))
            lines.append(f"| {p['method']} | {p['against']} | {seeds} | {cells[0]} | {cells[1]} |")
    lines += ["", "## Cost (where each row ran: `cuda` rows reloaded a model trained there, "
              "so their fit is a reload)", "",
              "| method | device | fit s (mean) | 1+20 scoring s/user | "
              "full-catalog scoring s/user |",
              "|---|---|---|---|---|"]  # fmt: skip
    for m in order:
        e = out["methods"][m]
        lines.append(f"| {_label(m, e, out)} | {','.join(e.get('devices', ['cpu']))} | "
                     f"{e['fit_s']:.0f} | {e['sampled_s_per_user']:.4f} | "
                     f"{e['full_s_per_user']:.4f} |")  # fmt: skip
    gates = {m: out["methods"][m]["gates"] for m in order if out["methods"][m]["gates"]}
    if gates:
        lines += ["", "## Fitted gates (validation position only; seed 0)", ""]
        for m, g in gates.items():
            parts = [
                f"{name}: weight {v['weight']:+.3f}, × history length "
                f"{v['x_history_length']:+.3f}, × popularity {v['x_popularity']:+.3f}"
                for name, v in g[0].items()
            ]
            lines.append(f"- `{m}`: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    from mmsrarec.config import Settings, apply_offline_env

    settings = Settings(threads=args.threads)
    apply_offline_env(settings)
    import torch

    torch.set_num_threads(args.threads)
    from mmsrarec.data import load_dataset

    dataset = load_dataset(settings.dataset_dir)
    if not args.report:
        for method, seed in plan(args.rows, args.seeds):
            path = row_path(method, seed)
            key = row_key(method, seed, dataset, settings)
            if path.exists() and json.loads(path.read_text(encoding="utf-8")).get("key") == key:
                continue
            run_row(method, seed, dataset, settings)
    report(dataset)
    print((OUT / "RESULTS.md").read_text(encoding="utf-8"))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
