"""Approximate maximum-inner-product search over item vectors: a `VectorIndex` (`types.py`).

faiss's inverted-file index (`IndexIVFFlat`, inner product): k-means cuts the catalog into
about sqrt(n) cells; a query reads the `probe` cells whose centroids score highest and ranks
their items by their exact inner products. Work per query: about `probe / cells` of the
catalog.

Why faiss and not Chroma's HNSW (the knowledge base's store, `tools/index.py`): on 10^5
clustered item vectors (50 topics) Chroma's graph search left some queries in the wrong
cluster (recall@100 of 0 for 1 query in 100, 0.94-0.99 on average whatever `ef_search`,
also with the norm-augmentation that turns inner product into L2), where this index found
every one of the exact top 100 at 0.2 ms a query (`benchmarks/scale/README.md`).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from mmsrarec.errors import ConfigError

TRAIN_PER_CELL = 64  # k-means training points per cell (faiss warns below 39)


class FaissItemIndex:
    """An IVF inner-product index over `vectors` [n, d]; `search` returns row positions.

    Args:
        vectors: one row per item (float32 [n, d]).
        cells: k-means cells; default about sqrt(n), fewer where n is small.
        probe: cells read per query (more: higher recall, slower).
        seed: seed of the k-means training sample.
    """

    def __init__(
        self, vectors: np.ndarray, cells: int | None = None, probe: int = 16, seed: int = 0
    ) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ConfigError("the ANN index needs a non-empty [n, d] array of item vectors")
        n, dim = vectors.shape
        cells = cells or max(1, min(int(math.sqrt(n)), n // TRAIN_PER_CELL))
        if probe < 1:
            raise ConfigError(f"ANN `probe` must be at least 1, got {probe}")
        self.index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, min(n, TRAIN_PER_CELL * cells), replace=False)]
        self.index.train(sample)
        self.index.add(vectors)
        self.index.nprobe = min(probe, cells)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Row positions [len(queries), k] of the approximately largest inner products, best
        first; -1 where fewer than k were found."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, positions = self.index.search(queries, min(k, len(self)))
        if positions.shape[1] < k:
            pad = np.full((len(queries), k - positions.shape[1]), -1, dtype=positions.dtype)
            positions = np.hstack([positions, pad])
        return positions
