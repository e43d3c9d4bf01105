"""Hand corrections as the viewer sees them: the partition's corrections previewed on its points (so a rename,
merge or move shows on the map at once, before any file moves), each correction's status (pending until a
``clusters`` run applied it), and the re-sort that applies them (``Resorter``: ``neural-sorter sort <source>``
in a subprocess, exactly as on the command line, so the output folder remembered by the source registry is
used and ``neural-sorter undo OUT`` reverts it).

Corrections are made and stored by ``neural_sorter.corrections`` (the one statement of their format); this
module only reads them for display and starts the re-sort.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from neural_sorter.corrections import COLUMN, KEEP_COLUMNS, apply_corrections, describe

#: The columns of the points a correction preview changes.
PREVIEWED = ("cluster_id", "cluster_name", "hier_code")


def preview(points: pd.DataFrame, corrections: list[dict[str, Any]]) -> pd.DataFrame:
    """``points`` with ``corrections`` applied to their clusters (ids, names, codes) and a ``correction``
    column; applying corrections a run already applied changes nothing, so all of them are always applied. A
    ``keep`` choice makes its file the representative of its duplicate group here too."""
    if COLUMN not in points:
        points = points.assign(**{COLUMN: None})
    if not corrections or "content_hash" not in points:
        return points
    copies = [c for c in ("relative_path", "duplicate_group", *KEEP_COLUMNS) if c in points]
    frame = points[["content_hash", *PREVIEWED, "distance_to_centroid", COLUMN, *copies]]
    corrected = apply_corrections(frame, corrections)
    out = points.copy()
    for column in (*PREVIEWED, COLUMN, *[c for c in KEEP_COLUMNS if c in points]):
        out[column] = corrected[column].to_numpy()
    return out


def created_at(correction: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(correction.get("created"))).timestamp()
    except ValueError:
        return 0.0


def is_pending(correction: dict[str, Any], clusters_written: float | None) -> bool:
    """Made after the last ``clusters`` materialization (so no run has applied it yet)."""
    return clusters_written is None or created_at(correction) > clusters_written


def neural_sorter_command() -> list[str]:
    """The ``neural-sorter`` command of this environment (the console script beside the interpreter)."""
    script = Path(sys.executable).with_name("neural-sorter")
    if script.exists():
        return [str(script)]
    found = shutil.which("neural-sorter")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from neural_sorter.cli import main; sys.exit(main())"]


@dataclass
class ResortState:
    """One re-sort of a partition started from the viewer."""

    key: str
    source: str
    state: str = "running"  # running | done | failed
    started: float = field(default_factory=time.time)
    ended: float | None = None
    message: str = ""
    summary: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "state": self.state,
            "message": self.message,
            "started": self.started,
            "ended": self.ended,
            "output": (self.summary or {}).get("output"),
            "undo": (self.summary or {}).get("undo"),
        }


class Resorter:
    """Runs ``neural-sorter sort <source> --json`` for a partition in a subprocess, one at a time per partition.

    The child gets the viewer's store (``NEURAL_SORTER_STORE``) and otherwise the viewer's environment (home,
    config file), so it sorts with the same settings and output folder as the command line would.
    """

    def __init__(self, store_root: str, command: list[str] | None = None, timeout: float = 3600) -> None:
        self.store_root = store_root
        self.command = command or neural_sorter_command()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._runs: dict[str, ResortState] = {}

    def status(self, key: str | None) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(key) if key else None
            return run.as_dict() if run else None

    def start(self, key: str, source: str) -> bool:
        """Starts the re-sort unless one is already running for ``key``; True when it started."""
        with self._lock:
            current = self._runs.get(key)
            if current is not None and current.state == "running":
                return False
            run = ResortState(key=key, source=source, message=f"Sorting {source}…")
            self._runs[key] = run
        threading.Thread(target=self._run, args=(run,), name=f"resort-{key}", daemon=True).start()
        return True

    def _run(self, run: ResortState) -> None:
        env = {**os.environ, "NEURAL_SORTER_STORE": self.store_root}
        try:
            done = subprocess.run(
                [*self.command, "sort", run.source, "--json"],
                capture_output=True,
                text=True,
                env=env,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self._finish(run, "failed", f"could not run the sort: {exc}")
            return
        summary = None
        for line in reversed(done.stdout.strip().splitlines()):
            try:
                summary = json.loads(line)
                break
            except ValueError:
                continue
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            self._finish(run, "failed", lines[-1] if lines else f"the sort exited with {done.returncode}")
            return
        run.summary = summary if isinstance(summary, dict) else None
        placed = ""
        if run.summary and run.summary.get("actions"):
            placed = ", ".join(f"{n} {a}" for a, n in sorted(run.summary["actions"].items()))
        message = "Applied: files re-sorted" + (f" ({placed})" if placed else "")
        if run.summary and run.summary.get("undo"):
            message += f". Undo with: {run.summary['undo']}"
        self._finish(run, "done", message)

    def _finish(self, run: ResortState, state: str, message: str) -> None:
        with self._lock:
            run.state, run.message, run.ended = state, message, time.time()


def correction_rows(corrections: list[dict[str, Any]], clusters_written: float | None) -> list[dict[str, Any]]:
    """What the corrections list shows: id, text, pending or applied, newest last."""
    return [
        {
            "id": str(c.get("id")),
            "text": describe(c),
            "pending": is_pending(c, clusters_written),
            "op": c.get("op"),
        }
        for c in corrections
    ]
