"""The episode store: one directory per run, one atomically committed folder per episode.

See ``simlab.store.episodes`` for the on-disk layout and why it survives a killed run.
"""

from simlab.store.episodes import RunStore, RunTables, is_run_dir, load_run, read_calls
from simlab.store.manifest import REDACTED, StoreError, build_manifest, redact_secrets
from simlab.store.transcript import format_transcripts

__all__ = [
    "REDACTED",
    "RunStore",
    "RunTables",
    "StoreError",
    "build_manifest",
    "format_transcripts",
    "is_run_dir",
    "load_run",
    "read_calls",
    "redact_secrets",
]
