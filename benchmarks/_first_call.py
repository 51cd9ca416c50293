"""The slowed test mock, noting when its first call came (``SIMLAB_FIRST_CALL``): what
``bench_checkpoint.py`` times a resumed run by."""

from __future__ import annotations

import os
import time
from pathlib import Path

from _slow_backend import SlowMock


class FirstCallMock(SlowMock):
    def generate(self, requests):
        mark = Path(os.environ["SIMLAB_FIRST_CALL"])
        if not mark.exists():
            mark.write_text(repr(time.time()))
        return super().generate(requests)
