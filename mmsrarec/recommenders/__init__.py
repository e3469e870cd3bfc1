"""Recommenders: one interface shared by baselines, SASRec, the LLM recommender and evaluation."""

from mmsrarec.recommenders.base import Query, Recommender

__all__ = ["Query", "Recommender"]
