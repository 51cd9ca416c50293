"""Helper for the kill test: commit episode 0, stage episode 1, then hang until killed.

Run as ``python _store_killer.py RUN_DIR READY_FILE``. It patches ``os.rename`` so that
the commit of episode 1 blocks after every staging file is written and fsynced: the exact
moment a real run is most exposed to being killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from simlab.events import EventLog
from simlab.store import RunStore


def episode(index: int) -> tuple[str, list[dict], list[dict], dict]:
    ep_id = f"ep-{index:03d}"
    log = EventLog(ep_id)
    log.append(step=0, speaker="a", audience=["b"], kind="utterance", content=f"hi {index}")
    agents = [{"agent_id": "a", "name": "Ann", "role": "client", "persona_id": "p-a"}]
    return ep_id, log.rows(), agents, {"episode_index": index, "n_events": 1}


def main(run_dir: str, ready_file: str) -> None:
    store = RunStore(run_dir)
    store.write_manifest({"seed": 7})
    store.write_episode(*episode(0))

    def hang(src: object, dst: object) -> None:
        Path(ready_file).write_text(str(src))
        while True:
            time.sleep(1)

    os.rename = hang  # type: ignore[assignment]
    store.write_episode(*episode(1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
