"""Everything the viewer knows about the store: which partitions exist, their tables, thumbnails and searches.

The viewer only ever reads ``<store>/<asset>/<partition>.parquet`` files and ``<store>/sources.json``; it never
opens the user's original files, so it works on a copy of the store or on ``s3://`` just the same. Tables are
cached per partition and keyed by the (mtime, size) of every file they came from, so a newer materialization
is picked up by the next request without a restart and an unchanged one is never parsed twice.

Point ids are row positions in the partition's ``3d_projection`` table. They are the only thing the browser
ever sends back (hover, click, lasso, thumbnail URLs); paths stay on the server.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

log = logging.getLogger(__name__)

PROJECTION = "3d_projection"
#: The assets one partition's view is built from (``decoded_frames`` is read separately, and only on demand).
VIEW_ASSETS = (PROJECTION, "embeddings", "clusters", "clip_model", "file_manifest")
THUMBNAILS = "decoded_frames"
NO_CATEGORY = "(no category)"
UNCLUSTERED = "(no cluster)"
#: Longest side of the "small" thumbnail variant used by grids; the stored ones have a short side of ~256 px.
SMALL_THUMBNAIL = 192


class TextSearchUnavailable(RuntimeError):
    """Text search cannot run for this partition; the message says why in words a user can act on."""


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


class _StaleFile(RuntimeError):
    """The file changed while it was being read; the caller re-indexes it."""


class _Thumbnails:
    """Where the first good frame of every file sits in one ``decoded_frames`` file, and its JPEG on demand.

    Only the small columns are read up front. Thumbnail bytes are read one Parquet row group at a time and the
    most recent groups are kept up to ``max_bytes``, so with row groups of a few thousand rows a 50,000-file
    partition never has all its thumbnails in memory (a file written as one row group, pyarrow's default
    below a million rows, is read whole once). The file is re-opened for each group, never held open, so the
    pipeline can always replace it; the file's stamp is checked around every read instead.
    """

    def __init__(self, path: UPath, stamp: tuple[int, int] | None, max_bytes: int = 256 * 2**20) -> None:
        self.path = path
        self.stamp = stamp
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._groups: OrderedDict[int, pa.Array] = OrderedDict()
        self._held = 0
        self._rows: dict[str, int] = {}
        self._starts = np.zeros(1, dtype=np.int64)
        if stamp is None:
            return
        self._check()
        with path.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            if not {"relative_path", "thumbnail"} <= names:
                return
            index = parquet.read(columns=[c for c in ("relative_path", "frame_index", "error") if c in names])
            sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
        self._check()
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        paths = index.column("relative_path").to_pylist()
        good = index.column("error").is_null().to_pylist() if "error" in names else [True] * len(paths)
        frames = index.column("frame_index").to_pylist() if "frame_index" in names else [0] * len(paths)
        best: dict[str, tuple[int, int]] = {}
        for row, (path_value, ok, frame) in enumerate(zip(paths, good, frames)):
            if not ok:
                continue
            frame = frame if frame is not None else 0
            if path_value not in best or frame < best[path_value][0]:
                best[path_value] = (frame, row)
        self._rows = {p: row for p, (_, row) in best.items()}

    def _check(self) -> None:
        if file_stamp(self.path) != self.stamp:
            raise _StaleFile(str(self.path))

    def get(self, relative_path: str) -> bytes | None:
        row = self._rows.get(relative_path)
        if row is None:
            return None
        group = int(np.searchsorted(self._starts, row, side="right")) - 1
        value = self._group(group)[row - int(self._starts[group])]
        return value.as_py() if value.is_valid else None

    @property
    def groups_held(self) -> int:
        return len(self._groups)

    def _group(self, group: int) -> pa.Array:
        with self._lock:
            hit = self._groups.get(group)
            if hit is not None:
                self._groups.move_to_end(group)
                return hit
            self._check()
            with self.path.open("rb") as handle:
                data = pq.ParquetFile(handle).read_row_group(group, columns=["thumbnail"]).column(0).combine_chunks()
            self._check()
            self._groups[group] = data
            self._held += data.nbytes
            while self._held > self.max_bytes and len(self._groups) > 1:
                _, dropped = self._groups.popitem(last=False)
                self._held -= dropped.nbytes
            return data


class ViewerStore:
    """Read-only access to a neural-sorter store for the viewer, with caches keyed by file stamps.

    ``stat_ttl`` bounds how often file stamps are re-read (one ``stat`` per asset per second at most), which
    keeps hundreds of thumbnail requests cheap even on an object store.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | UPath | None = None,
        *,
        stat_ttl: float = 1.0,
        run_lookup: bool = True,
        max_partitions: int = 3,
        prefetch_vectors: bool = True,
    ) -> None:
        if store is None:
            from neural_sorter import settings

            store = settings.store_root()
        self.root = UPath(store)
        self.stat_ttl = stat_ttl
        self.run_lookup = run_lookup
        self.max_partitions = max_partitions
        self.prefetch_vectors = prefetch_vectors
        self._lock = threading.RLock()
        self._stats: dict[str, tuple[float, tuple[int, int] | None]] = {}
        self._listing: tuple[float, list[str]] | None = None
        self._data: OrderedDict[str, PartitionData] = OrderedDict()
        self._thumbs: OrderedDict[str, _Thumbnails] = OrderedDict()
        self._small: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._runs: dict[tuple[str, str], str | None] = {}
        self._instance: Any = None
        self._instance_checked = False

    # ------------------------------------------------------------------ files and stamps

    def asset_path(self, asset: str, key: str) -> UPath:
        return self.root / asset / f"{key}.parquet"

    def _stamp(self, path: UPath) -> tuple[int, int] | None:
        """(mtime_ns, size) of a file, or None when it does not exist; cached for ``stat_ttl`` seconds."""
        name = str(path)
        now = time.monotonic()
        cached = self._stats.get(name)
        if cached is not None and now - cached[0] < self.stat_ttl:
            return cached[1]
        value = file_stamp(path)
        self._stats[name] = (now, value)
        return value

    def partitions(self) -> list[str]:
        """Partition keys that have a ``3d_projection``, most recently materialized first."""
        now = time.monotonic()
        if self._listing is not None and now - self._listing[0] < self.stat_ttl:
            return list(self._listing[1])
        folder = self.root / PROJECTION
        keys: list[str] = []
        try:
            if folder.exists():
                keys = [p.name[: -len(".parquet")] for p in folder.iterdir() if p.name.endswith(".parquet")]
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
        stamps = {k: self._stamp(self.asset_path(PROJECTION, k)) for k in keys}
        keys = sorted((k for k in keys if stamps[k] is not None), key=lambda k: (-stamps[k][0], k))  # type: ignore[index]
        self._listing = (now, keys)
        return list(keys)

    def is_partition(self, key: object) -> bool:
        """Only keys found in the store are ever turned into paths (no traversal through a crafted key)."""
        return isinstance(key, str) and key in self.partitions()

    def sources(self) -> dict[str, str]:
        """Partition key -> source folder, from ``sources.json`` (display only; never opened)."""
        try:
            path = self.root / "sources.json"
            if not path.exists():
                return {}
            entries = json.loads(path.read_text())
            return {str(k): str(v) for k, v in entries.items()} if isinstance(entries, dict) else {}
        except (OSError, ValueError) as exc:
            log.warning("cannot read sources.json: %s", exc)
            return {}

    def fingerprint(self, key: str) -> tuple[tuple[int, int] | None, ...]:
        return tuple(self._stamp(self.asset_path(asset, key)) for asset in VIEW_ASSETS)

    def version(self, key: str) -> str:
        """A short token that changes whenever any file behind the partition's view changes."""
        return _version_of(self.fingerprint(key))

    # ------------------------------------------------------------------ tables

    def _read(self, asset: str, key: str, columns: list[str]) -> pa.Table | None:
        path = self.asset_path(asset, key)
        try:
            with path.open("rb") as handle:
                parquet = pq.ParquetFile(handle)
                present = set(parquet.schema_arrow.names)
                return parquet.read(columns=[c for c in columns if c in present])
        except FileNotFoundError:
            return None

    def load(self, key: str) -> PartitionData:
        """The partition's data, re-read only when one of its files changed since the cached copy."""
        if not self.is_partition(key):
            raise KeyError(key)
        with self._lock:
            version = self.version(key)
            cached = self._data.get(key)
            if cached is not None and cached.version == version:
                self._data.move_to_end(key)
                return cached
            data = self._build(key, version)
            if self.prefetch_vectors:  # ready by the time someone clicks, without delaying the first paint
                threading.Thread(target=data._vector_pair, name=f"vectors-{key}", daemon=True).start()
            self._data[key] = data
            self._data.move_to_end(key)
            while len(self._data) > self.max_partitions:
                self._data.popitem(last=False)
            return data

    def _build(self, key: str, version: str) -> PartitionData:
        """Reads and aligns the tables on the projection's rows; Arrow columns go to Python lists or NumPy
        directly (iterating pandas' Arrow-backed strings is an order of magnitude slower at 50,000 rows)."""
        projection = self._read(
            PROJECTION, key, ["relative_path", "x", "y", "z", "cluster_id", "cluster_name", "method"]
        )
        if projection is None or "relative_path" not in projection.column_names:
            raise KeyError(key)
        rel = [str(p) for p in projection.column("relative_path").to_pylist()]
        n = len(rel)
        columns: dict[str, Any] = {"relative_path": rel}
        for axis in ("x", "y", "z"):
            columns[axis] = _floats(projection, axis, n)
        cluster_ids = _floats(projection, "cluster_id", n, fill=-1.0).astype(np.int64)
        columns["cluster_id"] = cluster_ids
        names = _strings(projection, "cluster_name", n)
        columns["cluster_name"] = [
            name if name else (f"cluster-{cid:02d}" if cid >= 0 else UNCLUSTERED)
            for name, cid in zip(names, cluster_ids.tolist())
        ]
        method = _first(_strings(projection, "method", n))
        columns["name"] = [p.replace("\\", "/").rsplit("/", 1)[-1] for p in rel]

        clusters = self._read(
            "clusters", key,
            ["relative_path", "cluster_category", "hier_code", "distance_to_centroid", "duplicate_group"],
        )
        rows = _rows_for(clusters, rel)
        for column in ("hier_code", "duplicate_group", "cluster_category"):
            columns[column] = _take(_strings(clusters, column, _len(clusters)), rows)
        columns["distance_to_centroid"] = _take_floats(_floats(clusters, "distance_to_centroid", _len(clusters)), rows)

        embeddings = self._read(
            "embeddings", key,
            ["relative_path", "kind", "backend", "model_id", "category_probs", "top_category", "top_probability"],
        )
        rows = _rows_for(embeddings, rel)
        probs = None

        def load_vectors() -> tuple[np.ndarray | None, np.ndarray]:
            return _aligned_vectors(self._read("embeddings", key, ["relative_path", "vector"]), rel)

        if embeddings is not None and "category_probs" in embeddings.column_names:
            matrix, ok = _list_matrix(embeddings.column("category_probs"))
            if matrix is not None and ok.any():
                take = (rows >= 0) & np.where(rows >= 0, ok[np.maximum(rows, 0)], False)
                probs = np.full((n, matrix.shape[1]), np.nan, dtype=np.float32)
                probs[take] = matrix[rows[take]]
        size = _len(embeddings)
        columns["top_category"] = [c or None for c in _take(_strings(embeddings, "top_category", size), rows)]
        columns["top_probability"] = _take_floats(_floats(embeddings, "top_probability", size), rows)
        columns["kind"] = _take(_strings(embeddings, "kind", size), rows)
        backend = _first(_strings(embeddings, "backend", size))
        model_id = _first(_strings(embeddings, "model_id", size))

        clip = self._read("clip_model", key, ["category"])
        categories = [c for c in _strings(clip, "category", _len(clip)) if c]
        if probs is not None and probs.shape[1] != len(categories):
            categories = [f"category {i + 1}" for i in range(probs.shape[1])]

        source = self.sources().get(key)
        manifest = self._read("file_manifest", key, ["relative_path", "path"])
        full = _take(_strings(manifest, "path", _len(manifest)), _rows_for(manifest, rel))
        columns["path"] = [f or (os.path.join(source, r) if source else r) for f, r in zip(full, rel)]
        stamp = self._stamp(self.asset_path(PROJECTION, key))
        updated = datetime.fromtimestamp((stamp[0] if stamp else 0) / 1e9, tz=timezone.utc)
        return PartitionData(
            key=key,
            version=version,
            source=source,
            updated=updated,
            points=pd.DataFrame(columns),
            vector_loader=load_vectors,
            categories=categories,
            category_probs=probs,
            backend=backend,
            model_id=model_id,
            method=method,
        )

    # ------------------------------------------------------------------ thumbnails

    def thumbnail(self, key: str, idx: int, version: str | None = None, small: bool = False) -> bytes | None:
        """JPEG bytes for point ``idx`` of partition ``key``; None for anything unknown or stale.

        ``version`` is the token the page was rendered with: an id from an older materialization may now name
        another file, so a stale one gets nothing rather than the wrong picture.
        """
        if not self.is_partition(key):
            return None
        data = self.load(key)
        if version is not None and version != data.version:
            return None
        if data.valid_id(idx) is None:
            return None
        relative = str(data.points["relative_path"].iat[idx])
        jpeg = self._thumbnail_bytes(key, relative)
        if jpeg is None or not small:
            return jpeg
        cache_key = (key, data.version, int(idx))
        with self._lock:
            hit = self._small.get(cache_key)
            if hit is not None:
                self._small.move_to_end(cache_key)
                return hit
        resized = shrink_jpeg(jpeg, SMALL_THUMBNAIL)
        with self._lock:
            self._small[cache_key] = resized
            while len(self._small) > 4096:
                self._small.popitem(last=False)
        return resized

    def _thumbnails(self, key: str) -> _Thumbnails:
        """The thumbnail index of ``decoded_frames``, built on the first thumbnail request for a partition."""
        path = self.asset_path(THUMBNAILS, key)
        with self._lock:
            stamp = self._stamp(path)
            cached = self._thumbs.get(key)
            if cached is not None and cached.stamp == stamp:
                self._thumbs.move_to_end(key)
                return cached
            thumbs = _Thumbnails(path, stamp)
            self._thumbs[key] = thumbs
            while len(self._thumbs) > 2:  # thumbnails are the big column: index at most two partitions
                self._thumbs.popitem(last=False)
            return thumbs

    def _thumbnail_bytes(self, key: str, relative_path: str) -> bytes | None:
        """A file's JPEG; when ``decoded_frames`` is replaced mid-read, re-index once with a fresh stamp."""
        for attempt in range(2):
            try:
                return self._thumbnails(key).get(relative_path)
            except _StaleFile:
                with self._lock:
                    self._thumbs.pop(key, None)
                    self._stats.pop(str(self.asset_path(THUMBNAILS, key)), None)
                if attempt:
                    return None
        return None

    # ------------------------------------------------------------------ provenance

    def warm(self) -> None:
        """Loads the newest partition and its run id before the first page view (importing Dagster alone
        takes seconds); meant for a background thread, so errors are only logged."""
        try:
            keys = self.partitions()
            if keys:
                self.materialization(keys[0])
        except Exception as exc:
            log.warning("could not preload the newest partition: %s", exc)

    def materialization(self, key: str) -> Materialization:
        data = self.load(key)
        return Materialization(
            partition=key,
            source=data.source,
            updated=data.updated,
            files=len(data),
            clusters=data.cluster_count,
            backend=data.backend,
            model_id=data.model_id,
            method=data.method,
            run_id=self.run_id(key, data.version),
            version=data.version,
        )

    def run_id(self, key: str, version: str) -> str | None:
        """The Dagster run that materialized the partition's ``3d_projection``, if the instance can say.

        Best effort: only when a Dagster home exists (the viewer must not create one), and any failure just
        means the header shows the file time alone.
        """
        if not self.run_lookup:
            return None
        cache_key = (key, version)
        if cache_key in self._runs:
            return self._runs[cache_key]
        run = None
        try:
            instance = self._dagster_instance()
            if instance is not None:
                import dagster as dg

                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(PROJECTION), asset_partitions=[key]), limit=1
                ).records
                run = records[0].run_id if records else None
        except Exception as exc:  # the header is informative only; never fail a page over it
            log.info("no run id from the Dagster instance: %s", exc)
        self._runs[cache_key] = run
        return run

    def _dagster_instance(self) -> Any:
        """The Dagster instance of this home, opened once; None when there is none (it is never created)."""
        if self._instance_checked:
            return self._instance
        self._instance_checked = True
        from neural_sorter import settings

        home = settings.dagster_home()
        if not (home / "dagster.yaml").is_file() and not (home / "history").is_dir():
            return None
        import dagster as dg

        if os.environ.get("DAGSTER_HOME"):
            self._instance = dg.DagsterInstance.get()
        else:
            self._instance = dg.DagsterInstance.from_config(str(home))
        return self._instance


# ---------------------------------------------------------------------- plain functions


def file_stamp(path: UPath) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, None when it does not exist or cannot be read (treated as absent)."""
    try:
        stat = path.stat()
        mtime = getattr(stat, "st_mtime_ns", None) or int(float(stat.st_mtime or 0) * 1e9)
        return int(mtime), int(stat.st_size or 0)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        log.warning("cannot stat %s: %s", path, exc)
        return None


def _version_of(fingerprint: tuple[object, ...]) -> str:
    return hashlib.sha1(repr(fingerprint).encode()).hexdigest()[:12]


def _len(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def _strings(table: pa.Table | None, column: str, n: int) -> list[str | None]:
    """A column as a list of non-empty strings or None (missing table or column: all None)."""
    if table is None or column not in table.column_names:
        return [None] * n
    return [v if isinstance(v, str) and v else None for v in table.column(column).to_pylist()]


def _floats(table: pa.Table | None, column: str, n: int, fill: float = np.nan) -> np.ndarray:
    """A numeric column as float32 with ``fill`` for nulls and non-numbers."""
    if table is None or column not in table.column_names:
        return np.full(n, fill, dtype=np.float32)
    values = pd.to_numeric(pd.Series(table.column(column).to_numpy(zero_copy_only=False)), errors="coerce")
    return values.fillna(fill).to_numpy(dtype=np.float32)


def _rows_for(table: pa.Table | None, paths: list[str]) -> np.ndarray:
    """For each path, the first row of ``table`` with that ``relative_path`` (-1 when absent)."""
    if table is None or "relative_path" not in table.column_names:
        return np.full(len(paths), -1, dtype=np.int64)
    listed = table.column("relative_path").to_pylist()
    if listed == paths:
        return np.arange(len(paths), dtype=np.int64)
    first: dict[str, int] = {}
    for row, path in enumerate(listed):
        first.setdefault(path, row)
    return np.fromiter((first.get(p, -1) for p in paths), dtype=np.int64, count=len(paths))


def _aligned_vectors(table: pa.Table | None, paths: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """Unit-length vectors in the order of ``paths`` and a mask of the paths that have a usable one."""
    n = len(paths)
    if table is None or "vector" not in table.column_names:
        return None, np.zeros(n, dtype=bool)
    rows = _rows_for(table, paths)
    matrix, ok = _list_matrix(table.column("vector"))
    if matrix is None:
        return None, np.zeros(n, dtype=bool)
    identity = len(matrix) == n and np.array_equal(rows, np.arange(n))
    picked = matrix if identity else matrix[np.maximum(rows, 0)]
    has = (rows >= 0) & ok[np.maximum(rows, 0)]
    norms = np.sqrt(np.einsum("ij,ij->i", picked, picked, dtype=np.float64))[:, None]
    usable = (norms > 0) & has[:, None]
    vectors = np.divide(picked, norms, out=np.zeros(picked.shape, dtype=np.float32), where=usable)
    return vectors, usable[:, 0]


def _take(values: list[Any], rows: np.ndarray) -> list[Any]:
    return [values[r] if r >= 0 else None for r in rows.tolist()]


def _take_floats(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if not len(values):
        return np.full(len(rows), np.nan, dtype=np.float32)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan).astype(np.float32)


def _first(values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _list_matrix(column: pa.ChunkedArray) -> tuple[np.ndarray | None, np.ndarray]:
    """A list<float> column as an (n, d) float32 matrix plus a mask of rows that had a full-length list.

    Goes through Arrow buffers rather than pandas so 50,000 x 512 floats load in milliseconds.
    """
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)
    kind = array.type
    if n == 0 or not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        return None, np.zeros(n, dtype=bool)
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    valid = array.is_valid().to_numpy(zero_copy_only=False) & (lengths > 0)
    if not valid.any():
        return None, valid
    width = int(np.bincount(lengths[valid]).argmax())
    ok = valid & (lengths == width)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = np.zeros((n, width), dtype=np.float32)
    if ok.all():
        return flat.reshape(n, width), ok
    starts = np.concatenate([[0], np.cumsum(lengths * valid)])[:-1]
    for row in np.flatnonzero(ok):
        matrix[row] = flat[starts[row] : starts[row] + width]
    return matrix, ok


def shrink_jpeg(jpeg: bytes, longest: int) -> bytes:
    """A smaller JPEG for grids: Pillow's draft mode decodes at reduced scale, so this is cheap."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        image.draft("RGB", (longest, longest))
        image = image.convert("RGB")
        image.thumbnail((longest, longest))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=82, optimize=True)
        return out.getvalue()


def filter_mask(
    data: PartitionData,
    clusters: list[int] | None = None,
    categories: list[str] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Points that pass the sidebar filters (empty filter = everything); file name match is case-insensitive."""
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
    return mask


def nearest(
    vectors: np.ndarray, query: np.ndarray, k: int = 12, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and cosine similarities of the ``k`` rows of ``vectors`` closest to ``query``, best first.

    Rows are L2-normalised, so cosine is a dot product; ``argpartition`` keeps it O(n) for 50,000 points.
    ``candidates`` (a boolean mask) restricts the search, e.g. to filtered points or points with a vector.
    """
    if vectors is None or not len(vectors) or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(q))
    if norm == 0 or q.shape[0] != vectors.shape[1]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = vectors @ (q / norm)
    allowed = np.flatnonzero(candidates) if candidates is not None else np.arange(len(vectors))
    if not len(allowed):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    sub = scores[allowed]
    k = min(k, len(allowed))
    top = np.argpartition(-sub, k - 1)[:k] if k < len(allowed) else np.arange(len(allowed))
    order = top[np.lexsort((allowed[top], -sub[top]))]  # best score first, ties by id so results are stable
    return allowed[order].astype(np.int64), sub[order].astype(np.float32)


def neighbours(
    data: PartitionData, idx: int, k: int = 12, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """"More like this": the ``k`` nearest other files to point ``idx`` on the embedding vectors (any backend)."""
    if data.vectors is None or data.valid_id(idx) is None or not data.has_vector[idx]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    allowed = data.has_vector.copy() if candidates is None else data.has_vector & candidates
    allowed[idx] = False
    return nearest(data.vectors, data.vectors[idx], k, allowed)


def clip_model_id(data: PartitionData) -> str:
    """The CLIP model id to load for text search, or TextSearchUnavailable saying why there is none.

    ``embeddings.model_id`` is ``<id>@<revision>`` for CLIP; the revision is dropped because ``load_clip``
    takes a hub id or folder.
    """
    if data.backend != "clip":
        raise TextSearchUnavailable(
            f"Text search needs CLIP embeddings; this partition was embedded with the {data.backend or 'unknown'} "
            "backend. Re-run `neural-sorter sort --backend clip` for it, or use “More like this” on a picture."
        )
    if not data.model_id:
        raise TextSearchUnavailable("The embeddings do not record which CLIP model made them.")
    return data.model_id.rsplit("@", 1)[0] if "@" in data.model_id else data.model_id


def text_query_vector(data: PartitionData, query: str) -> np.ndarray:
    """The CLIP text embedding of ``query`` with the model that made this partition's image vectors."""
    model_id = clip_model_id(data)
    try:
        from neural_sorter.models.clip import load_clip

        clip = load_clip(model_id, "cpu")
        vector = clip.embed_texts([query])[0]
    except Exception as exc:
        raise TextSearchUnavailable(
            f"CLIP weights for {model_id!r} are not available here, so text search is off. "
            f"({str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__})"
        ) from None
    if data.vectors is None or vector.shape[0] != data.vectors.shape[1]:
        raise TextSearchUnavailable(
            f"The CLIP model {model_id!r} gives {vector.shape[0]}-d text vectors but the images have "
            f"{0 if data.vectors is None else data.vectors.shape[1]}-d ones; re-run the pipeline with this model."
        )
    return vector.astype(np.float32)


def text_search(
    data: PartitionData, query: str, k: int = 48, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Files ranked by CLIP similarity to a text such as "a red car" (dot product on normalised vectors)."""
    if not query or not query.strip():
        raise TextSearchUnavailable("Type what you are looking for, e.g. “a red car”.")
    vector = text_query_vector(data, query.strip())
    allowed = data.has_vector if candidates is None else data.has_vector & candidates
    return nearest(data.vectors, vector, k, allowed)  # type: ignore[arg-type]


def selection_csv(data: PartitionData, ids: list[int] | np.ndarray) -> str:
    """CSV of the chosen points: full path first (what a user pastes into a file manager or script)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "relative_path", "cluster_id", "cluster_name", "top_category", "x", "y", "z"])
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


def top_categories(data: PartitionData, idx: int, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable zero-shot categories of a file (empty without CLIP categories)."""
    if data.category_probs is None or data.valid_id(idx) is None:
        return []
    row = data.category_probs[idx]
    if not np.isfinite(row).any():
        return []
    order = np.argsort(-np.nan_to_num(row, nan=-1.0))[:k]
    return [(data.categories[i], float(row[i])) for i in order if np.isfinite(row[i])]
