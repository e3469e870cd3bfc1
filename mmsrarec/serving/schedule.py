"""What a server does on a timer: take in what other processes stored, and retrain.

- every `server.sync_every_s`: `RecommendationService.sync` (live items added elsewhere, a
  newer published model version);
- every `server.retrain_every_minutes` (when set): `mmsrarec train --from-store` in a child
  process with this server's settings, so a crash or a kill of the retrainer never touches
  the server; once it exits, the next sync loads the version it published.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

from mmsrarec.config import Settings
from mmsrarec.serving.service import RecommendationService

logger = logging.getLogger(__name__)


def settings_env(settings: Settings) -> dict[str, str]:
    """`MMSRAREC_<FIELD>` for every set field, so a child process has these settings."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif hasattr(value, "model_dump"):
            value = json.dumps(value.model_dump())
        elif isinstance(value, list | bool):
            value = json.dumps(value)
        env[f"MMSRAREC_{name.upper()}"] = str(value)
    return env


class Timers:
    """The sync loop and, with `retrain_every_minutes`, the retraining loop."""

    def __init__(self, service: RecommendationService) -> None:
        self.service = service
        self.server = service.settings.server
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sync, name="sync", daemon=True)]
        if self.server.retrain_every_minutes is not None:
            self._threads.append(threading.Thread(target=self._retrain, name="retrain",
                                                  daemon=True))  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _sync(self) -> None:
        while not self._stop.wait(self.server.sync_every_s):
            try:
                self.service.sync()
            except Exception:  # a database hiccup: try again at the next tick
                logger.exception("sync failed")

    def _retrain(self) -> None:
        every_s = self.server.retrain_every_minutes * 60
        while not self._stop.wait(every_s):
            started = time.perf_counter()
            code = retrain_in_child(self.service.settings, self.service.scorer)
            logger.info("retraining exited with %d after %.0f s", code,
                        time.perf_counter() - started)  # fmt: skip
            if code == 0:
                self.service.sync()

    def close(self) -> None:
        self._stop.set()


def retrain_in_child(settings: Settings, scorer: str) -> int:
    """Run `mmsrarec train --from-store --scorer SCORER` with `settings`; its exit code."""
    import os

    entry = "from mmsrarec.cli import main; raise SystemExit(main())"
    command = [sys.executable, "-c", entry, "train", "--from-store", "--scorer", scorer]
    return subprocess.call(command, env={**os.environ, **settings_env(settings)})
