"""Dataset statistics: counts and the sequence-length distribution."""

from __future__ import annotations

import numpy as np

from mmsrarec.data.dataset import Dataset


def dataset_stats(dataset: Dataset) -> dict[str, float | int]:
    lengths = np.array([len(seq) for seq in dataset.sequences.values()])
    n_inter = int(lengths.sum())
    return {
        "users": len(dataset.users),
        "evaluable_users": len(dataset.eval_users),
        "items": dataset.n_items,
        "interactions": n_inter,
        "density": n_inter / (len(dataset.users) * dataset.n_items),
        "items_with_images": sum(item.image is not None for item in dataset.items),
        "seq_len_min": int(lengths.min()),
        "seq_len_p25": float(np.percentile(lengths, 25)),
        "seq_len_median": float(np.median(lengths)),
        "seq_len_mean": float(lengths.mean()),
        "seq_len_p75": float(np.percentile(lengths, 75)),
        "seq_len_p95": float(np.percentile(lengths, 95)),
        "seq_len_max": int(lengths.max()),
    }
