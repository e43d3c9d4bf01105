"""``python -m dash_viewer [--home DIR] [--store DIR] [--host 127.0.0.1] [--port 8050]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dash_viewer", description="The neural-sorter 3D viewer.")
    parser.add_argument("--home", help="neural-sorter home (default $NEURAL_SORTER_HOME or ~/.neural-sorter)")
    parser.add_argument("--store", help="store root (default $NEURAL_SORTER_STORE or HOME/store)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: localhost only)")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--debug", action="store_true", help="Dash debug mode (dev tools, reloader off)")
    args = parser.parse_args(argv)
    if args.home:
        # Set before anything reads settings, exactly like `neural-sorter view --home`.
        os.environ["NEURAL_SORTER_HOME"] = str(Path(args.home).expanduser().resolve())
    from dash_viewer.app import run

    run(host=args.host, port=args.port, store=args.store, debug=args.debug)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
