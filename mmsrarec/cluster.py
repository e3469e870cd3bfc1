"""Joining a Ray cluster: one place for `ray_address` and `ray_workers`, used by every fan-out
(evaluation and batch scoring, catalogue summarisation).

Ray is optional (`pip install -e '.[ray]'`) and imported only when asked for.
"""

from __future__ import annotations

import socket
from typing import Any

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError


def connect(address: str) -> Any:
    """Import Ray and join (or, for `local`, start) a cluster; an initialized Ray is kept.

    Raises:
        ConfigError: Ray is not installed, or the cluster at `address` cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"`--ray {address}` needs Ray: pip install -e '.[ray]' (or drop `--ray`)"
        ) from None
    if not ray.is_initialized():
        _check_reachable(address)
        try:
            ray.init(
                address=None if address == "local" else address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"`ray_address` {address!r}: cannot join the Ray cluster ({first}); start one "
                "with `ray start --head`, or use `local`"
            ) from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds on a `host:port` / `ray://host:port` nobody answers at (Ray itself
    retries for minutes)."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except ValueError:
        problem = "not `host:port`"
    except OSError as exc:
        problem = f"nothing answers there ({exc.__class__.__name__})"
    raise ConfigError(
        f"`ray_address` {address!r}: {problem}; start a cluster with `ray start --head`, "
        "or use `local`"
    )


def worker_count(ray: Any, settings: Settings) -> int:
    """`settings.ray_workers`, else as many actors as the cluster has CPUs for (at least 1).

    Raises:
        ConfigError: the cluster has too few CPUs for the actors to run side by side (each
            asks for `threads` CPUs); waiting for them would never end.
    """
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if settings.ray_workers is None:
        return max(1, cpus // settings.threads)
    if settings.ray_workers * settings.threads > cpus:
        raise ConfigError(
            f"{settings.ray_workers} Ray workers x `threads` {settings.threads} need "
            f"{settings.ray_workers * settings.threads} CPUs; the cluster has {cpus}: lower "
            "`--workers` or `threads` (MMSRAREC_THREADS)"
        )
    return settings.ray_workers
