"""The summarizer's critic: verifiable rewards (also GRPO's) and the graph's `Critic`.

- `rewards.py`: `make_info_reward`, `make_recon_reward`, `length_reward`,
  `make_collab_reward` (TRL reward functions), `normalise`, `RewardWeights`,
  `weighted_total`, `make_total_reward`.
- `collab.py`: `CollabTargets`, what an item's audience shares (training interactions only).
- `critic.py`: `RewardCritic`, which judges drafts with exactly those functions.
"""

from mmsrarec.critic.collab import CollabTargets
from mmsrarec.critic.critic import RewardCritic
from mmsrarec.critic.rewards import (
    RewardWeights,
    completion_text,
    length_reward,
    make_collab_reward,
    make_info_reward,
    make_recon_reward,
    make_total_reward,
    normalise,
    weighted_total,
)

__all__ = [
    "CollabTargets",
    "RewardCritic",
    "RewardWeights",
    "completion_text",
    "length_reward",
    "make_collab_reward",
    "make_info_reward",
    "make_recon_reward",
    "make_total_reward",
    "normalise",
    "weighted_total",
]
