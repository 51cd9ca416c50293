"""Space held back while a run is open, so a full disk cannot hide why it stopped.

A run that fills the disk must still record its end state (``failed``, and the cause).
The store writes ``RUN/.reserve`` when it opens; the runner frees it and writes the end
state again when that write finds the disk full; the store removes it when it closes.
"""

from __future__ import annotations

from pathlib import Path

RESERVE_FILE = ".reserve"
#: A manifest is 4-8 KiB; its atomic write needs that much free beside the old one.
RESERVE_BYTES = 32 * 1024


def hold_reserve(run_dir: Path) -> Path:
    """Write the reserve file (quietly none where even that does not fit)."""
    reserve = run_dir / RESERVE_FILE
    try:
        reserve.write_bytes(b"\0" * RESERVE_BYTES)
    except OSError:
        reserve.unlink(missing_ok=True)
    return reserve


def release(reserve: Path | None) -> bool:
    """Remove the reserve; whether there was one to free."""
    if reserve is None or not reserve.exists():
        return False
    reserve.unlink(missing_ok=True)
    return True
