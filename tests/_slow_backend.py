"""A mock backend that takes a little time per call, so a test can kill a run mid-episode."""

from __future__ import annotations

import time

from simlab.backends.mock import MockBackend


class SlowMock(MockBackend):
    def generate(self, requests):
        time.sleep(0.05 * len(requests))
        return super().generate(requests)
