"""One partition's latest materialization, aligned on the rows (point ids) of its ``3d_projection``, and the
sidebar filters over it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

NO_CATEGORY = "(no category)"
UNCLUSTERED = "(no cluster)"


@dataclass
class PartitionData:
    """One partition's latest materialization, aligned on the rows (point ids) of its ``3d_projection``."""

    key: str
    version: str
    source: str | None
    updated: datetime
    points: pd.DataFrame
    categories: list[str]
    category_probs: np.ndarray | None
    backend: str | None
    model_id: str | None
    method: str | None
    #: ``ViewerStore.tables_version`` of the tables this was read from (the corrections aside).
    tables_version: str = ""
    #: Reads the embedding vectors aligned on ``points`` when first needed: the map does not need them, and
    #: at 50,000 x 512 they are most of the bytes to read and decompress.
    vector_loader: Callable[[], tuple[np.ndarray | None, np.ndarray]] | None = field(default=None, repr=False)
    _vectors: tuple[np.ndarray | None, np.ndarray] | None = field(default=None, repr=False)
    _quantized: np.ndarray | None = field(default=None, repr=False)
    #: Small derived values (e.g. the id order of a drawn figure), dropped with the data when files change.
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.points)

    def _vector_pair(self) -> tuple[np.ndarray | None, np.ndarray]:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    loaded = self.vector_loader() if self.vector_loader else None
                    self._vectors = loaded or (None, np.zeros(len(self.points), dtype=bool))
        return self._vectors

    @property
    def vectors(self) -> np.ndarray | None:
        """(n, d) L2-normalised float32 rows (zeros where a file has no vector), or None without embeddings."""
        return self._vector_pair()[0]

    @property
    def has_vector(self) -> np.ndarray:
        return self._vector_pair()[1]

    @property
    def cluster_count(self) -> int:
        ids = self.points["cluster_id"].to_numpy()
        return len(np.unique(ids[ids >= 0]))

    @property
    def has_categories(self) -> bool:
        return bool(self.points["top_category"].notna().any())

    def quantized(self) -> np.ndarray:
        """(n, 3) uint16 coordinates on one shared scale: half the bytes of float32 with no visible loss.

        One scale for all three axes keeps the projection's proportions; non-finite coordinates become 0.
        """
        if self._quantized is None:
            coords = self.points[["x", "y", "z"]].to_numpy(dtype=np.float64)
            finite = np.isfinite(coords)
            coords = np.where(finite, coords, np.nan)
            if not finite.any():
                self._quantized = np.zeros(coords.shape, dtype=np.uint16)
            else:
                low = np.nanmin(coords, axis=0)
                span = float(np.nanmax(np.nanmax(coords, axis=0) - low)) or 1.0
                scaled = np.rint((coords - low) / span * 65535.0)
                self._quantized = np.nan_to_num(scaled, nan=0.0).clip(0, 65535).astype(np.uint16)
        return self._quantized

    def index_of(self, relative_path: str) -> int | None:
        """The point id of a file in this version (ids change between materializations, paths do not)."""
        hits = np.flatnonzero(self.points["relative_path"].to_numpy() == relative_path)
        return int(hits[0]) if len(hits) else None

    def valid_id(self, idx: object) -> int | None:
        """``idx`` as a point id when it is an in-range integer, else None (client input is never trusted)."""
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer, float)):
            return None
        if isinstance(idx, float) and not idx.is_integer():
            return None
        value = int(idx)
        return value if 0 <= value < len(self.points) else None


@dataclass(frozen=True)
class Materialization:
    """What the header says about the data on screen, so nobody wonders which run they are looking at."""

    partition: str
    source: str | None
    updated: datetime
    files: int
    clusters: int
    backend: str | None
    model_id: str | None
    method: str | None
    run_id: str | None
    version: str


def filter_mask(
    data: PartitionData,
    clusters: list[int] | None = None,
    categories: list[str] | None = None,
    name: str | None = None,
    flags: list[str] | None = None,
) -> np.ndarray:
    """Points that pass the sidebar filters (empty filter = everything); file name match is case-insensitive;
    ``flags``: files with any of these quality flags."""
    points = data.points
    mask = np.ones(len(points), dtype=bool)
    if clusters:
        wanted = {int(c) for c in clusters if isinstance(c, (int, float, str)) and str(c).lstrip("-").isdigit()}
        mask &= points["cluster_id"].isin(wanted).to_numpy()
    if categories:
        values = points["top_category"].fillna(NO_CATEGORY).to_numpy()
        mask &= np.isin(values, list(categories))
    if name and name.strip():
        needle = name.strip().lower()
        mask &= points["relative_path"].str.lower().str.contains(needle, regex=False).to_numpy()
    if flags and "flags" in points:
        wanted = {str(f) for f in flags}
        mask &= np.fromiter(
            (bool(wanted & set(str(v).split(","))) for v in points["flags"].fillna("")), dtype=bool, count=len(points)
        )
    return mask


def top_categories(data: PartitionData, idx: int, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable zero-shot categories of a file (empty without CLIP categories)."""
    if data.category_probs is None or data.valid_id(idx) is None:
        return []
    row = data.category_probs[idx]
    if not np.isfinite(row).any():
        return []
    order = np.argsort(-np.nan_to_num(row, nan=-1.0))[:k]
    return [(data.categories[i], float(row[i])) for i in order if np.isfinite(row[i])]
