"""Identity of a model file, for backend fingerprints (and so for response-cache keys).

Two GGUF files with the same name (another quantisation, a fine-tune saved over the old
one) must not share cached replies. Hashing a whole multi-GB file on every start is too
slow, so the identity is the size plus a hash of the first and last MiB, where GGUF keeps
its metadata and the final tensors; it does not depend on where the file lives.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

_SPAN = 1 << 20


@functools.lru_cache(maxsize=64)
def _identity(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        digest.update(fh.read(_SPAN))
        if size > 2 * _SPAN:
            fh.seek(size - _SPAN)
        digest.update(fh.read(_SPAN))
    return f"{size}:{digest.hexdigest()}"


def file_identity(path: str | os.PathLike[str] | None) -> str | None:
    """``"<size>:<hash>"`` of a model file; a directory or missing path gives its name."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return str(path)
    st = p.stat()
    return _identity(str(p.resolve()), st.st_size, st.st_mtime_ns)
