"""The CSV of chosen points (lasso selection or search results)."""

from __future__ import annotations

import csv
import io

import numpy as np

from dash_viewer.data.partition import PartitionData

CSV_COLUMNS = ("path", "relative_path", "cluster_id", "cluster_name", "top_category", "x", "y", "z")


def selection_csv(data: PartitionData, ids: list[int] | np.ndarray) -> str:
    """CSV of the chosen points: full path first (what a user pastes into a file manager or script)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    seen: set[int] = set()
    points = data.points
    for raw in ids:
        idx = data.valid_id(raw)
        if idx is None or idx in seen:
            continue
        seen.add(idx)
        row = points.iloc[idx]
        writer.writerow(
            [
                row["path"],
                row["relative_path"],
                int(row["cluster_id"]),
                row["cluster_name"],
                row["top_category"] or "",
                f"{float(row['x']):.5g}",
                f"{float(row['y']):.5g}",
                f"{float(row['z']):.5g}",
            ]
        )
    return out.getvalue()
