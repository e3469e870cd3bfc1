"""One step of the scale benchmark on one synthetic point, in its own process
(`benchmarks/scale.py` runs it, watches its memory and time, and records the result).

    python benchmarks/scale_steps.py STEP --items N --users M --work DIR --result FILE

Writes `{"seconds": ..., "peak_rss_gb": ..., "status": ..., ...}` to FILE. SYNTHETIC data
(`mmsrarec data synth`): these are costs, never accuracy.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
SEED = 0
SCORE_USERS = 200  # users timed one at a time by `score`
INDEX_QUERIES = 100  # knowledge-base queries timed by `index`
LLM_STEPS = 8  # LLM-recommender steps timed by `llm-epoch` (then projected to an epoch)


class TimeUp(Exception):
    """The step's time box ran out (raised between optimizer steps)."""


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Timed:
    """Wall time of a block and this process's resident memory during it (sampled every
    50 ms): `extra_rss_gb` = its peak minus the memory held when it began (the dataset...)."""

    def __enter__(self) -> Timed:
        self.process = psutil.Process()
        self.before = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.started = time.perf_counter()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    def report(self) -> dict:
        return {"seconds": self.seconds, "rss_before_gb": self.before / 2**30,
                "extra_rss_gb": (self.peak - self.before) / 2**30}  # fmt: skip


def paths(work: Path, items: int, users: int) -> tuple[Path, Path, Path]:
    """(synthetic source folder, prepared dataset folder, one-epoch SASRec weights)."""
    name = f"synthetic-u{users}-i{items}-s{SEED}"
    return work / "sources" / name, work / "data" / name, work / "models" / f"{name}-sasrec.pt"


def step_synth(items: int, users: int, work: Path, deadline: float) -> dict:
    from mmsrarec.data.synth import SynthConfig, synthesize

    started = time.perf_counter()
    synthesize(SynthConfig(users=users, items=items, seed=SEED), work / "sources")
    return {"seconds": time.perf_counter() - started}


def step_prepare(items: int, users: int, work: Path, deadline: float) -> dict:
    from mmsrarec.data import prepare_dataset

    source, _, _ = paths(work, items, users)
    with Timed() as timed:
        prepare_dataset(source, work / "data", force=True)
    lines = sum(1 for _ in (source / "interactions.jsonl").open("rb"))
    return {**timed.report(), "interactions": lines}


def _dataset(items: int, users: int, work: Path):
    from mmsrarec.data import load_dataset

    started = time.perf_counter()
    dataset = load_dataset(paths(work, items, users)[1])
    return dataset, {"load_seconds": time.perf_counter() - started, "load_rss_gb": peak_gb()}


def step_item_knn(items: int, users: int, work: Path, deadline: float) -> dict:
    from mmsrarec.recommenders.itemknn import ItemKNNRecommender

    dataset, extra = _dataset(items, users, work)
    knn = ItemKNNRecommender()
    with Timed() as timed:
        knn.fit(dataset, SEED)
    return {**timed.report(), "nnz": knn.similarity.nnz, **extra}


def step_item_knn_dense(items: int, users: int, work: Path, deadline: float) -> dict:
    """The first, dense item-kNN (kept in tests/test_itemknn.py): the O(n_items^2) before."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_itemknn import DenseItemKNN

    dataset, extra = _dataset(items, users, work)
    with Timed() as timed:
        DenseItemKNN().fit(dataset, SEED)
    return {**timed.report(), **extra}


def _sasrec(dataset, work: Path, items: int, users: int, trained: bool):
    """A `SASRecRecommender` around the one-epoch weights of `sasrec-epoch` (or fresh ones)."""
    import torch

    from mmsrarec.models.sasrec import SASRec, SASRecConfig
    from mmsrarec.recommenders.sasrec import SASRecRecommender

    config = SASRecConfig(loss="auto")
    recommender = SASRecRecommender(config, progress=False)
    torch.manual_seed(SEED)
    recommender.model = SASRec(dataset.n_items, config).eval()
    weights = paths(work, items, users)[2]
    if trained and weights.exists():
        recommender.model.load_state_dict(torch.load(weights, weights_only=True))
    recommender.meta = {"seed": SEED, "weights": "one epoch" if weights.exists() else "untrained"}
    return recommender


def step_sasrec_epoch(items: int, users: int, work: Path, deadline: float) -> dict:
    import torch

    from mmsrarec.training.sasrec_trainer import EpochSetup, train_epoch

    dataset, extra = _dataset(items, users, work)
    recommender = _sasrec(dataset, work, items, users, trained=False)
    model, config = recommender.model, recommender.config
    setup = EpochSetup.for_dataset(dataset, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(SEED)
    batches = -(-len(setup.windows) // config.batch_size)
    done = [0]

    def count() -> None:
        done[0] += 1
        if time.perf_counter() > deadline:
            raise TimeUp

    status = "ok"
    with Timed() as timed:
        try:
            train_epoch(model, setup, optimizer, config, generator, step=count)
        except TimeUp:
            status = f"partial: {done[0]} of {batches} steps in the time box (projected)"
    seconds = timed.seconds
    weights = paths(work, items, users)[2]
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    windows_done = len(setup.windows) * done[0] / batches
    return {**timed.report(), "status": status, "loss": setup.loss,
            "sequences": len(setup.windows), "sequences_per_s": windows_done / seconds,
            "epoch_seconds_projected": seconds * batches / max(done[0], 1), **extra}  # fmt: skip


def step_llm_epoch(items: int, users: int, work: Path, deadline: float) -> dict:
    """`LLM_STEPS` optimizer steps of the LLM recommender (ID item tokens: its text features
    are a separate one-off pass over the catalog), projected to one epoch."""
    import torch

    from mmsrarec.config import load_settings
    from mmsrarec.models.item_lm import ItemLM, ItemLMConfig, add_lora, truncated_backbone
    from mmsrarec.models.llm import load_llm
    from mmsrarec.training.item_lm_trainer import _batch_loss, user_windows

    dataset, extra = _dataset(items, users, work)
    config = ItemLMConfig(item_tokens="id")
    llm = load_llm(load_settings().model, load_settings())
    sasrec = _sasrec(dataset, work, items, users, trained=True)
    torch.manual_seed(SEED)
    backbone = add_lora(truncated_backbone(llm.model, config.layers, config.backbone),
                        config.lora_rank)  # fmt: skip
    model = ItemLM(backbone, llm.model.config.hidden_size,
                   sasrec.model.item_embedding.weight.detach(), None, config.item_tokens,
                   config.dropout, config.text_init)  # fmt: skip
    windows = user_windows(dataset.train_sequences(), config.max_len)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    order = np.random.default_rng(SEED).permutation(len(windows))
    model.train()
    started, steps = time.perf_counter(), 0
    for steps in range(1, LLM_STEPS + 1):
        chosen = [windows[i] for i in order[(steps - 1) * config.batch_size :][: config.batch_size]]
        loss, _ = _batch_loss(model, chosen, config.bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - started
    batches = -(-len(windows) // config.batch_size)
    per_step = seconds / steps
    return {"seconds": per_step * batches, "status": "ok", "projected_from_steps": steps,
            "sequences": len(windows), "sequences_per_s": config.batch_size / per_step,
            **extra}  # fmt: skip


class Frozen:
    """A fitted recommender whose `fit` does nothing: `gate` times the gate alone."""

    def __init__(self, member) -> None:
        self.member, self.name = member, member.name
        self.reads_text = member.reads_text

    def fit(self, dataset, seed: int) -> None:
        pass

    def score_catalog(self, queries):
        return self.member.score_catalog(queries)


def step_gate(items: int, users: int, work: Path, deadline: float) -> dict:
    from mmsrarec.recommenders.fusion import FusionRecommender
    from mmsrarec.recommenders.itemknn import ItemKNNRecommender

    dataset, extra = _dataset(items, users, work)
    knn = ItemKNNRecommender()
    knn.fit(dataset, SEED)
    sasrec = _sasrec(dataset, work, items, users, trained=True)
    fusion = FusionRecommender({"sasrec": Frozen(sasrec), "item-knn": Frozen(knn)})
    with Timed() as timed:
        fusion.fit(dataset, SEED)
    return {**timed.report(), **extra}


def step_index(items: int, users: int, work: Path, deadline: float) -> dict:
    """The similar-users knowledge base (Chroma): build, then one query's latency."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from mmsrarec.tools.index import CollaborativeIndex, normalize

    dataset, extra = _dataset(items, users, work)
    sasrec = _sasrec(dataset, work, items, users, trained=True)
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    with Timed() as timed:
        report = CollaborativeIndex(client=client).build(dataset, sasrec)
    collection = CollaborativeIndex(client=client).open(dataset, sasrec)
    users_ = np.random.default_rng(SEED).choice(dataset.users, INDEX_QUERIES)
    latencies = []
    for user in users_:
        vector = normalize(sasrec.embed_histories([dataset.sequence(user)]))
        begun = time.perf_counter()
        collection.query(query_embeddings=vector, n_results=3, include=["metadatas"])
        latencies.append(time.perf_counter() - begun)
    return {**timed.report(), "entries": report.entries,
            "query_p50_ms": 1000 * float(np.median(latencies)), **extra}  # fmt: skip


def step_score(items: int, users: int, work: Path, deadline: float) -> dict:
    """One user at a time, top 100 of the catalog: SASRec + ANN (faiss IVF, exact rescoring)
    against SASRec's exact `top_k`; `seconds` is the ANN path's p50 per user."""
    from mmsrarec.recommenders.ann import ANNRecommender
    from mmsrarec.recommenders.base import Query
    from mmsrarec.tools.ann import FaissItemIndex

    dataset, extra = _dataset(items, users, work)
    sasrec = _sasrec(dataset, work, items, users, trained=True)
    ann = ANNRecommender(sasrec, FaissItemIndex)
    begun = time.perf_counter()
    ann.build()
    build = time.perf_counter() - begun
    chosen = np.random.default_rng(SEED).choice(dataset.users, SCORE_USERS)
    queries = [Query(u, tuple(dataset.sequence(u))) for u in chosen]
    timed: dict[str, list[float]] = {"ann": [], "exact": []}
    recall = []
    for query in queries:
        found = {}
        for name, method in (("ann", ann), ("exact", sasrec)):
            begun = time.perf_counter()
            found[name] = method.top_k([query], 100)[0].items
            timed[name].append(time.perf_counter() - begun)
        recall.append(len(set(found["ann"]) & set(found["exact"])) / max(len(found["exact"]), 1))
    p = {f"{name}_{q}_ms": 1000 * float(np.percentile(values, q))
         for name, values in timed.items() for q in (50, 99)}  # fmt: skip
    return {"seconds": float(np.median(timed["ann"])), "recall_at_100": float(np.mean(recall)),
            "index_build_seconds": build, "weights": sasrec.meta["weights"], **p,
            "probe_sweep": _probe_sweep(ann, queries), **extra}  # fmt: skip


def _probe_sweep(ann, queries) -> dict[str, dict[str, float]]:
    """Recall@100 against exact and p50 latency of the faiss index for more cells probed:
    how much of the catalogue the learned vectors let the index skip."""
    embedded = ann.scorer.embed_histories([q.history for q in queries]).astype(np.float32)
    exact = np.argsort(-(embedded @ ann.vectors[1:].T), axis=1)[:, :100]
    index = ann.index.index
    out = {}
    for probe in (16, 64, 256):
        index.nprobe = min(probe, index.nlist)
        begun = time.perf_counter()
        found = [index.search(row[None], 100)[1][0] for row in embedded]
        seconds = (time.perf_counter() - begun) / len(queries)
        recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(found, exact, strict=True)])
        out[str(probe)] = {"recall_at_100": float(recall), "search_ms": 1000 * seconds,
                           "cells": int(index.nlist)}  # fmt: skip
    return out


STEPS: dict[str, Callable[[int, int, Path, float], dict]] = {
    "synth": step_synth,
    "prepare": step_prepare,
    "item-knn": step_item_knn,
    "item-knn-dense": step_item_knn_dense,
    "sasrec-epoch": step_sasrec_epoch,
    "llm-epoch": step_llm_epoch,
    "gate": step_gate,
    "index": step_index,
    "score": step_score,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--limit-s", type=float, default=600.0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    deadline = time.perf_counter() + args.limit_s
    try:
        out = STEPS[args.step](args.items, args.users, args.work, deadline)
    except MemoryError:
        out = {"seconds": None, "status": "oom"}
    out.setdefault("status", "ok")
    out["peak_rss_gb"] = peak_gb()
    args.result.write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
