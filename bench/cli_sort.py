"""One ``neural-sorter sort --json`` run for the benches that time the real CLI (distributed.py, resort.py)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

CLI = str(Path(sys.executable).parent / "neural-sorter")


def sort(env: dict[str, str], folder: Path, out: Path, extra: Sequence[str] = ()) -> tuple[float, dict]:
    """(wall seconds, summary) of a cnn sort of ``folder`` into ``out``; the CLI's CPU seconds (user + system)
    are added to the summary as ``_cpu``. A failed sort ends the bench with the CLI's own last lines."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [CLI, "sort", str(folder), "--out", str(out), "--backend", "cnn", "--json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    seconds = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"sort failed ({done.returncode}): {done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, json.loads(done.stdout.strip().splitlines()[-1]) | {"_cpu": cpu}
