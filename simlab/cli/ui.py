"""``simlab ui [RUN_DIR_OR_SWEEP …]``: the run browser on 127.0.0.1 (``docs/ui.md``)."""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
from pathlib import Path

INSTALL = "pip install -e '.[ui]'"
NEEDS = ("starlette", "uvicorn")


def missing() -> str | None:
    """The error naming the install, if the ``ui`` extra is not installed."""
    lacking = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if lacking:
        return (f"simlab ui needs an optional extra that is not installed "
                f"({', '.join(lacking)}): {INSTALL}")
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="simlab ui", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["runs"],
                        help="run directories, or folders holding runs (default: runs)")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--host", default="127.0.0.1",
                        help="default 127.0.0.1; anything else exposes your runs")
    args = parser.parse_args(argv)
    if (message := missing()) is not None:
        print(f"simlab: error: {message}", file=sys.stderr)
        return 2
    missing_paths = [p for p in args.paths if not Path(p).exists()]
    if missing_paths:
        print(f"simlab ui: {missing_paths[0]}: no such directory (give run directories, "
              f"or folders that hold them)", file=sys.stderr)
        return 2
    import uvicorn

    from simlab.ui.app import make_app

    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as exc:
        print(f"simlab ui: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    print(f"simlab ui: http://{args.host}:{port}/  (Ctrl-C stops it)", flush=True)
    # served under these Host names only, so a web page elsewhere cannot reach it by DNS
    # rebinding; another --host is served under its own name too
    hosts = ["127.0.0.1", "localhost", "::1", args.host]
    config = uvicorn.Config(make_app(args.paths, allowed_hosts=hosts), log_level="warning",
                            access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
