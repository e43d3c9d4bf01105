"""Reading the asset tables of one partition and aligning them on the rows of its ``3d_projection``.

Tables are read as Arrow (only the columns asked for, missing ones skipped) and go to Python lists or NumPy
directly: iterating pandas' Arrow-backed strings is an order of magnitude slower at 50,000 rows, and a
50,000 x 512 vector column through pandas would be 50,000 small arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dash_viewer.data.partition import UNCLUSTERED, PartitionData
from neural_sorter.store import Store
from neural_sorter.tables import CLIP_MODEL, CLUSTERS, EMBEDDINGS, FILE_MANIFEST, PROJECTION_3D

#: The duplicate and quality-flag columns of ``clusters`` the viewer shows (absent in older stores: no copies).
COPY_COLUMNS = [
    "duplicate_tier",
    "is_representative",
    "group_size",
    "representative",
    "similarity",
    "similar_to",
    "similar_score",
    "flags",
    "review_reason",
]
PROJECTION_COLUMNS = ["relative_path", "content_hash", "x", "y", "z", "cluster_id", "cluster_name", "method"]
CLUSTER_COLUMNS = [
    "relative_path",
    "content_hash",
    "cluster_category",
    "hier_code",
    "distance_to_centroid",
    "duplicate_group",
    "correction",
    *COPY_COLUMNS,
]
EMBEDDING_COLUMNS = [
    "relative_path",
    "kind",
    "backend",
    "model_id",
    "category_probs",
    "top_category",
    "top_probability",
]


def read_table(store: Store, asset: str, key: str, columns: list[str]) -> pa.Table | None:
    """``columns`` of a stored table that it has, as Arrow; None when the table does not exist."""
    try:
        with store.parquet_file(asset, key) as parquet:
            present = set(parquet.schema_arrow.names)
            return parquet.read(columns=[c for c in columns if c in present])
    except FileNotFoundError:
        return None


def build_partition(store: Store, key: str, version: str, updated: datetime, source: str | None) -> PartitionData:
    """Reads and aligns the tables on the projection's rows; KeyError when there is no usable projection."""
    projection = read_table(store, PROJECTION_3D, key, PROJECTION_COLUMNS)
    if projection is None or "relative_path" not in projection.column_names:
        raise KeyError(key)
    rel = [str(p) for p in projection.column("relative_path").to_pylist()]
    n = len(rel)
    columns: dict[str, Any] = {"relative_path": rel}
    for axis in ("x", "y", "z"):
        columns[axis] = floats(projection, axis, n)
    cluster_ids = floats(projection, "cluster_id", n, fill=-1.0).astype(np.int64)
    columns["cluster_id"] = cluster_ids
    names = strings(projection, "cluster_name", n)
    columns["cluster_name"] = [
        name if name else (f"cluster-{cid:02d}" if cid >= 0 else UNCLUSTERED)
        for name, cid in zip(names, cluster_ids.tolist())
    ]
    method = first(strings(projection, "method", n))
    columns["name"] = [p.replace("\\", "/").rsplit("/", 1)[-1] for p in rel]

    clusters = read_table(store, CLUSTERS, key, CLUSTER_COLUMNS)
    rows = rows_for(clusters, rel)
    for column in ("hier_code", "duplicate_group", "cluster_category", "correction"):
        columns[column] = take(strings(clusters, column, length(clusters)), rows)
    hashes = strings(projection, "content_hash", n)
    from_clusters = take(strings(clusters, "content_hash", length(clusters)), rows)
    columns["content_hash"] = [h or c for h, c in zip(hashes, from_clusters)]
    columns["distance_to_centroid"] = take_floats(floats(clusters, "distance_to_centroid", length(clusters)), rows)
    columns.update(copy_columns(clusters, rows))

    embeddings = read_table(store, EMBEDDINGS, key, EMBEDDING_COLUMNS)
    rows = rows_for(embeddings, rel)
    probs = None
    if embeddings is not None and "category_probs" in embeddings.column_names:
        matrix, ok = list_matrix(embeddings.column("category_probs"))
        if matrix is not None and ok.any():
            chosen = (rows >= 0) & np.where(rows >= 0, ok[np.maximum(rows, 0)], False)
            probs = np.full((n, matrix.shape[1]), np.nan, dtype=np.float32)
            probs[chosen] = matrix[rows[chosen]]
    size = length(embeddings)
    columns["top_category"] = [c or None for c in take(strings(embeddings, "top_category", size), rows)]
    columns["top_probability"] = take_floats(floats(embeddings, "top_probability", size), rows)
    columns["kind"] = take(strings(embeddings, "kind", size), rows)
    backend = first(strings(embeddings, "backend", size))
    model_id = first(strings(embeddings, "model_id", size))

    clip = read_table(store, CLIP_MODEL, key, ["category"])
    categories = [c for c in strings(clip, "category", length(clip)) if c]
    if probs is not None and probs.shape[1] != len(categories):
        categories = [f"category {i + 1}" for i in range(probs.shape[1])]

    manifest = read_table(store, FILE_MANIFEST, key, ["relative_path", "path", "width", "height", "size"])
    rows = rows_for(manifest, rel)
    full = take(strings(manifest, "path", length(manifest)), rows)
    for column in ("width", "height", "size"):
        columns[column] = take_floats(floats(manifest, column, length(manifest)), rows)
    columns["path"] = [f or (os.path.join(source, r) if source else r) for f, r in zip(full, rel)]
    return PartitionData(
        key=key,
        version=version,
        source=source,
        updated=updated,
        points=pd.DataFrame(columns),
        vector_loader=vector_loader(store, key, rel),
        categories=categories,
        category_probs=probs,
        backend=backend,
        model_id=model_id,
        method=method,
    )


def copy_columns(clusters: pa.Table | None, rows: np.ndarray) -> dict[str, Any]:
    """The duplicate and flag columns aligned on ``rows``; a file without them is its own representative."""
    size = length(clusters)
    out: dict[str, Any] = {}
    for column in ("duplicate_tier", "representative", "similar_to", "review_reason"):
        out[column] = take(strings(clusters, column, size), rows)
    out["flags"] = [f or "" for f in take(strings(clusters, "flags", size), rows)]
    out["is_representative"] = take_floats(floats(clusters, "is_representative", size, fill=1.0), rows)
    out["is_representative"] = np.nan_to_num(out["is_representative"], nan=1.0) > 0.5
    group = take_floats(floats(clusters, "group_size", size, fill=1.0), rows)
    out["group_size"] = np.nan_to_num(group, nan=1.0).astype(np.int64)
    for column in ("similarity", "similar_score"):
        out[column] = take_floats(floats(clusters, column, size), rows)
    return out


def vector_loader(store: Store, key: str, paths: list[str]) -> Callable[[], tuple[np.ndarray | None, np.ndarray]]:
    """Reads the embedding vectors aligned on ``paths`` when called (the map itself never needs them)."""

    def load() -> tuple[np.ndarray | None, np.ndarray]:
        return aligned_vectors(read_table(store, EMBEDDINGS, key, ["relative_path", "vector"]), paths)

    return load


def length(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def strings(table: pa.Table | None, column: str, n: int) -> list[str | None]:
    """A column as a list of non-empty strings or None (missing table or column: all None)."""
    if table is None or column not in table.column_names:
        return [None] * n
    return [v if isinstance(v, str) and v else None for v in table.column(column).to_pylist()]


def floats(table: pa.Table | None, column: str, n: int, fill: float = np.nan) -> np.ndarray:
    """A numeric column as float32 with ``fill`` for nulls and non-numbers."""
    if table is None or column not in table.column_names:
        return np.full(n, fill, dtype=np.float32)
    values = pd.to_numeric(pd.Series(table.column(column).to_numpy(zero_copy_only=False)), errors="coerce")
    return values.fillna(fill).to_numpy(dtype=np.float32)


def rows_for(table: pa.Table | None, paths: list[str]) -> np.ndarray:
    """For each path, the first row of ``table`` with that ``relative_path`` (-1 when absent)."""
    if table is None or "relative_path" not in table.column_names:
        return np.full(len(paths), -1, dtype=np.int64)
    listed = table.column("relative_path").to_pylist()
    if listed == paths:
        return np.arange(len(paths), dtype=np.int64)
    first_row: dict[str, int] = {}
    for row, path in enumerate(listed):
        first_row.setdefault(path, row)
    return np.fromiter((first_row.get(p, -1) for p in paths), dtype=np.int64, count=len(paths))


def aligned_vectors(table: pa.Table | None, paths: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """Unit-length vectors in the order of ``paths`` and a mask of the paths that have a usable one."""
    n = len(paths)
    if table is None or "vector" not in table.column_names:
        return None, np.zeros(n, dtype=bool)
    rows = rows_for(table, paths)
    matrix, ok = list_matrix(table.column("vector"))
    if matrix is None:
        return None, np.zeros(n, dtype=bool)
    identity = len(matrix) == n and np.array_equal(rows, np.arange(n))
    picked = matrix if identity else matrix[np.maximum(rows, 0)]
    has = (rows >= 0) & ok[np.maximum(rows, 0)]
    norms = np.sqrt(np.einsum("ij,ij->i", picked, picked, dtype=np.float64))[:, None]
    usable = (norms > 0) & has[:, None]
    vectors = np.divide(picked, norms, out=np.zeros(picked.shape, dtype=np.float32), where=usable)
    return vectors, usable[:, 0]


def take(values: list[Any], rows: np.ndarray) -> list[Any]:
    return [values[r] if r >= 0 else None for r in rows.tolist()]


def take_floats(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if not len(values):
        return np.full(len(rows), np.nan, dtype=np.float32)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan).astype(np.float32)


def first(values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def list_matrix(column: pa.ChunkedArray) -> tuple[np.ndarray | None, np.ndarray]:
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
