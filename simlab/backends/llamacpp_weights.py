"""Which weight file llama.cpp loads: the GGUF as shipped, or a Q8_0 copy made from it.

llama.cpp's CPU matrix kernels for Q4_1, the type of the bundled SmolLM2 GGUF, have no
tiled (llamafile) or repacked form, while Q8_0's do. A Q8_0 copy of the same weights,
made once with llama.cpp's own quantizer (about 0.5 s) and kept in a user cache, evaluates
prompts 1.8x faster here (``benchmarks/bench_batch.py``). Q8_0 holds Q4_1's 16 levels per
block closely but not exactly: over 20 prompts the next-token distributions differ by a
mean KL of 0.009 nats and the top token agrees 95% of the time (``docs/backends.md``).

``weights=auto`` makes the copy only for Q4_1 files, ``q8_0`` for any file, ``shipped``
never. The copy's name carries the source's identity, so a changed source gets a new one.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from simlab.backends.fingerprint import file_identity

SETTINGS = ("auto", "shipped", "q8_0")
_Q4_1 = "3"  # llama_ftype LLAMA_FTYPE_MOSTLY_Q4_1, as general.file_type holds it


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/simlab/weights`` (``~/.cache/simlab/weights``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simlab" / "weights"


def file_type(llama_cpp: Any, path: Path) -> str | None:
    """The GGUF's ``general.file_type`` (llama.cpp's ftype number as text), read by
    loading only its vocabulary; once per file identity, not per backend built."""
    return _file_type(llama_cpp, str(path), file_identity(path))


@functools.lru_cache(maxsize=16)
def _file_type(llama_cpp: Any, path: str, identity: str | None) -> str | None:
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        return None
    try:
        buf = ctypes.create_string_buffer(32)
        n = llama_cpp.llama_model_meta_val_str(model, b"general.file_type", buf, len(buf))
        return buf.value.decode() if n >= 0 else None
    finally:
        llama_cpp.llama_model_free(model)


def weights_for(llama_cpp: Any, path: Path, setting: str, cache_dir: Path | None) -> Path:
    """The file to load for ``path`` under ``setting`` (making the Q8_0 copy if due)."""
    if setting not in SETTINGS:
        raise ValueError(f"backend.weights: expected one of {list(SETTINGS)}, got {setting!r}")
    if setting == "shipped" or (setting == "auto" and file_type(llama_cpp, path) != _Q4_1):
        return path
    folder = cache_dir or default_dir()
    identity = (file_identity(path) or path.name).replace(":", "-")
    target = folder / f"{path.stem}.{identity}.q8_0.gguf"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not target.is_file():
            _quantize(llama_cpp, path, target)
    return target


def _quantize(llama_cpp: Any, source: Path, target: Path) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    partial = target.with_suffix(f".{os.getpid()}.part")
    try:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(),
                                            ctypes.byref(params))
        if rc != 0 or not partial.is_file():
            raise RuntimeError(f"llama.cpp could not make a Q8_0 copy of {source} "
                               f"(code {rc}); set backend.weights=shipped")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
