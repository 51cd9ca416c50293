"""A mock backend that takes a little time per call, so a test can kill a run mid-episode.

With ``SIMLAB_TEST_HOLD`` naming a file, every call also waits while that file exists, so
a test can keep a run alive for exactly as long as its checks take, however slow the
machine (a fixed episode count once finished early on a loaded CI host).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from simlab.backends.mock import MockBackend


class SlowMock(MockBackend):
    def generate(self, requests):
        time.sleep(0.05 * len(requests))
        hold = os.environ.get("SIMLAB_TEST_HOLD")
        while hold and Path(hold).exists():
            time.sleep(0.05)
        return super().generate(requests)
