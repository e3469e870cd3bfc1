"""Where models run (`Settings.device`)."""

from __future__ import annotations

import torch

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError


def model_device(settings: Settings) -> torch.device:
    """`auto`: the first GPU when CUDA has one, else the CPU."""
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"`device` is `{settings.device}` but CUDA has no GPU here: use `cpu`")
    return torch.device(settings.device)
