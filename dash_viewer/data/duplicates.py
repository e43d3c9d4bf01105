"""Copies and quality flags as the viewer shows them: one picture per duplicate group in galleries and
searches, the duplicate groups for the side-by-side review, the flag filter's entries, and a file's flag
scores for the detail panel.

The groups, representatives and flags come from the ``clusters`` table (``neural_sorter.duplicates``,
``neural_sorter.quality_flags``); a ``keep`` choice made in the viewer is previewed on the points like every
hand correction (``dash_viewer.data.corrections.preview``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dash_viewer.data.partition import PartitionData
from neural_sorter.quality_flags import FLAG_NAMES, QualityOptions, pixel_scores

#: How each flag's score compares with its threshold: ">" flags a score above it, "<" below it.
FLAG_RULES: dict[str, tuple[str, str, str]] = {
    # flag: (option holding the threshold, direction, what the score is)
    "low_information": ("low_information_threshold", "<", "coarse variation"),
    "too_dark": ("dark_threshold", "<", "brightest tones"),
    "too_bright": ("bright_threshold", ">", "darkest tones"),
    "blurry": ("blur_threshold", ">", "blur effect"),
    "tiny": ("tiny_side", "<", "short side, px"),
    "extreme_aspect": ("max_aspect", ">", "long / short side"),
}


def distinct_ids(data: PartitionData, mask: np.ndarray | None = None) -> np.ndarray:
    """Point ids that pass ``mask`` with one picture per duplicate group: the representative when it passes,
    else the group's first member that does; ungrouped files all pass. Ascending ids."""
    points = data.points
    passing = np.ones(len(points), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    ids = np.flatnonzero(passing)
    if "duplicate_group" not in points or not len(ids):
        return ids
    group = points["duplicate_group"].to_numpy(dtype=object)[ids]
    grouped = np.array([isinstance(g, str) and bool(g) for g in group], dtype=bool)
    if not grouped.any():
        return ids
    rep = points["is_representative"].to_numpy(dtype=bool)[ids] if "is_representative" in points else grouped
    frame = pd.DataFrame({"id": ids[grouped], "group": group[grouped], "later": ~rep[grouped]})
    chosen = frame.sort_values(["later", "id"]).drop_duplicates("group")["id"].to_numpy()
    return np.sort(np.concatenate([ids[~grouped], chosen]))


def distinct_mask(data: PartitionData, mask: np.ndarray | None = None) -> np.ndarray:
    """``distinct_ids`` as a boolean mask over the points."""
    out = np.zeros(len(data.points), dtype=bool)
    out[distinct_ids(data, mask)] = True
    return out


def group_members(data: PartitionData, idx: int) -> np.ndarray:
    """The point ids of the duplicate group of point ``idx`` (just ``idx`` when it has no copies)."""
    group = data.points["duplicate_group"].iat[idx] if "duplicate_group" in data.points else None
    if not isinstance(group, str) or not group:
        return np.array([idx], dtype=np.int64)
    return np.flatnonzero(data.points["duplicate_group"].to_numpy(dtype=object) == group)


def copies_of(data: PartitionData, idx: int) -> int:
    """Files in point ``idx``'s duplicate group (1 when none), as the "N copies" badge counts them."""
    return len(group_members(data, idx))


@dataclass(frozen=True)
class DuplicateGroup:
    """One group for the review: its id, tier and member point ids (representative first)."""

    key: str
    tier: str
    ids: np.ndarray


def duplicate_groups(data: PartitionData, mask: np.ndarray | None = None) -> list[DuplicateGroup]:
    """Groups with a member passing ``mask``, largest first (then by id); members representative first, then
    by similarity to it, then by path."""
    points = data.points
    if "duplicate_group" not in points or not len(points):
        return []
    group = points["duplicate_group"].to_numpy(dtype=object)
    grouped = np.array([isinstance(g, str) and bool(g) for g in group], dtype=bool)
    if not grouped.any():
        return []
    passing = grouped if mask is None else grouped & np.asarray(mask, dtype=bool)
    wanted = set(group[passing].tolist())
    frame = pd.DataFrame(
        {
            "id": np.arange(len(points)),
            "group": group,
            "later": ~points["is_representative"].to_numpy(dtype=bool),
            "similarity": -pd.to_numeric(points["similarity"], errors="coerce").fillna(0).to_numpy(),
            "path": points["relative_path"].to_numpy(dtype=object),
        }
    )[grouped]
    frame = frame[frame["group"].isin(wanted)].sort_values(["group", "later", "similarity", "path"])
    tiers = points["duplicate_tier"].to_numpy(dtype=object)
    out = []
    for key, members in frame.groupby("group", sort=False):
        ids = members["id"].to_numpy(dtype=np.int64)
        kinds = {str(t) for t in tiers[ids] if isinstance(t, str)}
        out.append(DuplicateGroup(str(key), "near" if "near" in kinds else "exact", ids))
    return sorted(out, key=lambda g: (-len(g.ids), g.key))


def flag_counts(data: PartitionData | None) -> list[tuple[str, int]]:
    """(flag, files with it) for every flag some file has, in the review order of ``FLAG_NAMES``."""
    if data is None or "flags" not in data.points:
        return []
    counts: dict[str, int] = {}
    for value in data.points["flags"].fillna(""):
        for flag in str(value).split(","):
            if flag:
                counts[flag] = counts.get(flag, 0) + 1
    order = {f: i for i, f in enumerate(FLAG_NAMES)}
    return sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def file_format(relative_path: str) -> str:
    """The format as the extension says: 'PNG', 'JPEG', ... ('?' without one)."""
    ext = os.path.splitext(str(relative_path))[1].lstrip(".").upper()
    return {"JPG": "JPEG", "JPE": "JPEG", "TIF": "TIFF"}.get(ext, ext or "?")


def human_size(size: float) -> str:
    if not np.isfinite(size) or size < 0:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def quality_scores(
    data: PartitionData, idx: int, thumbnail: bytes | None, options: QualityOptions | None = None
) -> list[dict[str, object]]:
    """Every flag's score for point ``idx``: the pixel scores from its stored thumbnail (as the pipeline
    computes them), size and shape from the manifest; with the default threshold, its direction and whether
    the file carries the flag in the clusters table."""
    options = options or QualityOptions()
    scores: dict[str, float] = {}
    if thumbnail:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(thumbnail)) as image:
                scores.update(pixel_scores(np.asarray(image.convert("RGB"))))
        except Exception:
            pass
    width = float(data.points["width"].iat[idx]) if "width" in data.points else float("nan")
    height = float(data.points["height"].iat[idx]) if "height" in data.points else float("nan")
    if np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0:
        scores["tiny"] = min(width, height)
        scores["extreme_aspect"] = max(width, height) / min(width, height)
    flagged = set(str(data.points["flags"].iat[idx] or "").split(",")) if "flags" in data.points else set()
    rows = []
    for flag in FLAG_NAMES:
        option, direction, meaning = FLAG_RULES[flag]
        score = scores.get(flag, float("nan"))
        rows.append(
            {
                "flag": flag,
                "score": float(score),
                "threshold": float(getattr(options, option)),
                "direction": direction,
                "meaning": meaning,
                "flagged": flag in flagged,
            }
        )
    return rows
