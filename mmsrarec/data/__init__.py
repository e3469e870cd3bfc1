"""Datasets: readers for ML-100K, RecBole atomic files and JSONL; preparation; the split."""

from mmsrarec.data.dataset import Dataset, Item, Stage, load_dataset
from mmsrarec.data.prepare import prepare_dataset

__all__ = ["Dataset", "Item", "Stage", "load_dataset", "prepare_dataset"]
