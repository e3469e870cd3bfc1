"""Evaluation: metrics, the sampled and full-ranking protocols, the multi-seed harness."""
