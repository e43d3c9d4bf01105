"""``file_manifest``: every file below a source folder, with its kind (or why it is not used) and content hash."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from neural_sorter.inventory import build_file_manifest as inventory
from neural_sorter.stages import Markdown, StageError, StageReport


def build_file_manifest(
    root: Path, previous: pd.DataFrame | None, exclude: list[Path] | None = None
) -> tuple[pd.DataFrame, StageReport]:
    """Inventories ``root``; files whose size and mtime match ``previous`` keep its hash (no re-read).

    ``exclude`` holds the output folder when it lies inside the source, so a sort never ingests its own output.
    """
    if not root.exists():
        raise StageError(f"source folder {root} does not exist (moved or deleted?); its outputs are kept")
    if not root.is_dir():
        raise StageError(f"source {root} is a file, not a folder")
    started = time.perf_counter()
    table = inventory(root, exclude=exclude, previous=previous)
    kinds = table["kind"].value_counts().to_dict()
    unsupported = table[table["kind"] == "unsupported"]
    report = StageReport(
        metadata={
            "source": Path(root),
            "files": len(table),
            "images": int(kinds.get("image", 0)),
            "videos": int(kinds.get("video", 0)),
            "unsupported": int(kinds.get("unsupported", 0)),
            "bytes": int(table["size"].fillna(0).sum()),
            "seconds": round(time.perf_counter() - started, 3),
            "unsupported_reasons": Markdown(
                unsupported[["relative_path", "reason"]].head(50).to_markdown(index=False)
                if len(unsupported)
                else "none"
            ),
        },
        notes=[f"{len(table)} entries in {root}: {kinds}"],
    )
    return table, report
