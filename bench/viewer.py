"""How heavy is the viewer's first render at 10k and 50k points?

Builds synthetic stores (clustered random 3D coordinates, 12 clusters, 512-d random unit vectors, a tiny
placeholder JPEG per file) in a temporary folder, then measures through Flask's test client exactly what a
browser would fetch first: the ``/_dash-layout`` response (which already holds the 3D figure), a full figure
re-render through ``/_dash-update-component`` (what a filter change costs), the first thumbnail (which loads
``decoded_frames``), and a "more like this" query.

    .venv/bin/python bench/viewer.py [--sizes 10000 50000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dash_viewer import data as vdata
from dash_viewer import ids
from dash_viewer.app import create_app
from neural_sorter import tables
from neural_sorter.store import COMPRESSION, ROW_GROUP_ROWS, Store

CLUSTER_COUNT = 12
DIMENSIONS = 512


def write(store: Store, asset: str, key: str, table: pd.DataFrame | pa.Table) -> None:
    """Writes a table as the pipeline does (``Store``: zstd, 2,048-row groups, atomic); Arrow tables as they
    are, so the 512-d vectors need no trip through pandas."""
    if isinstance(table, pd.DataFrame):
        store.write(asset, key, table)
        return
    store.write_atomic(
        store.path(asset, key),
        lambda handle: pq.write_table(table, handle, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS),
    )


def placeholder_jpegs(count: int, size: int = 32) -> list[bytes]:
    """One small solid-colour JPEG per cluster: the benchmark is about the viewer, not about pictures."""
    out = []
    rng = np.random.default_rng(1)
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(40, 230, 3))
        buffer = io.BytesIO()
        Image.new("RGB", (size, size), colour).save(buffer, "JPEG", quality=80)
        out.append(buffer.getvalue())
    return out


def synthetic_store(root: Path, n: int, seed: int = 0) -> str:
    """A store with every table the viewer reads, for ``n`` files in ``CLUSTER_COUNT`` Gaussian blobs; returns the
    partition key of its (never opened) source folder."""
    store = Store(root)
    rng = np.random.default_rng(seed)
    source = f"/photos/synthetic-{n}"
    key = store.sources.add(source)
    labels = rng.integers(0, CLUSTER_COUNT, n)
    centres = rng.normal(0, 6, (CLUSTER_COUNT, 3))
    coords = (centres[labels] + rng.normal(0, 1.2, (n, 3))).astype(np.float32)
    directions = rng.normal(0, 1, (CLUSTER_COUNT, DIMENSIONS)).astype(np.float32)
    vectors = directions[labels] + rng.normal(0, 0.8, (n, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = [f"folder-{i % 97:02d}/image-{i:06d}.jpg" for i in range(n)]
    hashes = [f"{i:032x}" for i in range(n)]
    names = [f"cluster-{c:02d}" for c in labels]
    write(
        store,
        tables.PROJECTION_3D,
        key,
        pd.DataFrame(
            {
                "relative_path": paths,
                "x": coords[:, 0],
                "y": coords[:, 1],
                "z": coords[:, 2],
                "cluster_id": labels,
                "cluster_name": names,
                "method": "umap",
            }
        ),
    )
    write(
        store,
        tables.CLUSTERS,
        key,
        pd.DataFrame(
            {
                "relative_path": paths,
                "content_hash": hashes,
                "cluster_id": labels,
                "cluster_name": names,
                "cluster_category": None,
                "category_confidence": np.nan,
                "cluster_size": np.bincount(labels, minlength=CLUSTER_COUNT)[labels],
                "hier_code": [f"{c:02d}-{i:05d}" for i, c in enumerate(labels)],
                "distance_to_centroid": rng.random(n).astype(np.float32),
                "duplicate_group": None,
            }
        ),
    )
    offsets = pa.array(np.arange(0, (n + 1) * DIMENSIONS, DIMENSIONS, dtype=np.int32))
    vector_column = pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))
    write(
        store,
        tables.EMBEDDINGS,
        key,
        pa.table(
            {
                "relative_path": paths,
                "content_hash": hashes,
                "kind": ["image"] * n,
                "backend": ["cnn"] * n,
                "model_id": ["efficientnet-lite0"] * n,
                "frames": np.ones(n, dtype=np.int64),
                "vector": vector_column,
                "category_probs": pa.nulls(n, pa.list_(pa.float32())),
                "top_category": pa.nulls(n, pa.string()),
                "top_probability": np.full(n, np.nan),
                "reused": np.zeros(n, dtype=bool),
            }
        ),
    )
    jpegs = placeholder_jpegs(CLUSTER_COUNT)
    write(
        store,
        tables.DECODED_FRAMES,
        key,
        pd.DataFrame(
            {
                "relative_path": paths,
                "content_hash": hashes,
                "kind": "image",
                "frame_index": 0,
                "timestamp": 0.0,
                "width": 32,
                "height": 32,
                "thumbnail": [jpegs[c] for c in labels],
                "error": None,
            }
        ),
    )
    write(
        store,
        tables.CLIP_MODEL,
        key,
        pd.DataFrame(
            [
                {
                    "model_id": "openai/clip-vit-base-patch32",
                    "revision": "",
                    "status": "not used",
                    "message": "",
                    "category": None,
                    "prompt": None,
                    "vector": None,
                }
            ]
        ),
    )
    write(
        store,
        tables.FILE_MANIFEST,
        key,
        pd.DataFrame({"relative_path": paths, "path": [f"{source}/{p}" for p in paths]}),
    )
    return key


def figure_callback(client, key: str, version: str) -> tuple[int, int, float]:
    """POSTs the 3D figure callback as the browser does on a filter change: (raw bytes, gzip bytes, seconds)."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if d["output"].startswith(f"..{ids.MAP_3D}.figure...{ids.COUNT}.children"))
    values = {f"{ids.VERSION}.data": {"partition": key, "version": version}, f"{ids.COLOR_BY}.value": "cluster"}
    body = {
        "output": dep["output"],
        "outputs": [dict(zip(("id", "property"), part.rsplit(".", 1))) for part in dep["output"][2:-2].split("...")],
        "inputs": [
            {"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}
            for i in dep["inputs"]
        ],
        "state": [{"id": s["id"], "property": s["property"], "value": None} for s in dep["state"]],
        "changedPropIds": [f"{ids.COLOR_BY}.value"],
    }
    started = time.perf_counter()
    response = client.post("/_dash-update-component", json=body, headers={"Accept-Encoding": "gzip"})
    seconds = time.perf_counter() - started
    assert response.status_code == 200, response.data[:300]
    raw = gzip.decompress(response.data) if response.headers.get("Content-Encoding") == "gzip" else response.data
    return len(raw), len(response.data), seconds


def measure(root: Path, n: int) -> dict[str, object]:
    store = root / f"store-{n}"
    started = time.perf_counter()
    key = synthetic_store(store, n)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    cold = vdata.ViewerStore(store, run_lookup=False, prefetch_vectors=False).load(key)
    load_seconds = time.perf_counter() - started  # read + align the Parquet tables (no vectors, no thumbnails)
    started = time.perf_counter()
    assert cold.vectors is not None
    vectors_seconds = time.perf_counter() - started  # what the background prefetch does after the first paint

    app = create_app(store, run_lookup=False, warm=False)
    client = app.server.test_client()
    started = time.perf_counter()
    # The very first request: Dash's one-time setup, the Parquet load, the figure, JSON, gzip.
    layout = client.get("/_dash-layout", headers={"Accept-Encoding": "gzip"})
    first_layout = time.perf_counter() - started
    raw_layout = gzip.decompress(layout.data)
    started = time.perf_counter()
    client.get("/_dash-layout", headers={"Accept-Encoding": "gzip"})
    warm_layout = time.perf_counter() - started

    layout_json = json.loads(raw_layout)
    figure = _find(layout_json, ids.MAP_3D)["props"]["figure"]
    figure_bytes = len(json.dumps(figure, separators=(",", ":")))
    ids_bytes = sum(len(json.dumps(t.get("customdata", []), separators=(",", ":"))) for t in figure["data"])

    viewer = app.server.config["NEURAL_SORTER_VIEWER"]
    data = viewer.load(key)
    callback_raw, callback_gzip, callback_seconds = figure_callback(client, key, data.version)

    started = time.perf_counter()
    thumb = client.get(f"/thumb/{key}/0")
    first_thumb = time.perf_counter() - started
    assert thumb.status_code == 200
    started = time.perf_counter()
    for idx in range(1, 101):
        client.get(f"/thumb/{key}/{idx}")
    thumb_each = (time.perf_counter() - started) / 100

    assert data.vectors is not None  # wait for the background prefetch; the query itself is timed below
    timings = []
    for idx in range(5):
        started = time.perf_counter()
        found, _ = vdata.neighbours(data, idx, 36)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(found) == 36
    neighbours_ms = sorted(timings)[len(timings) // 2]
    store_mb = sum(p.stat().st_size for p in store.rglob("*.parquet")) / 1e6
    return {
        "points": n,
        "store MB": round(store_mb, 1),
        "build s": round(build_seconds, 1),
        "layout bytes": len(raw_layout),
        "layout gzip bytes": len(layout.data),
        "figure bytes": figure_bytes,
        "of which customdata": ids_bytes,
        "Parquet load s": round(load_seconds, 3),
        "vectors load s (background)": round(vectors_seconds, 3),
        "first layout s (cold)": round(first_layout, 3),
        "layout s (data cached)": round(warm_layout, 3),
        "figure callback bytes": callback_raw,
        "figure callback gzip": callback_gzip,
        "figure callback s": round(callback_seconds, 3),
        "first thumbnail s": round(first_thumb, 3),
        "thumbnail ms (each)": round(thumb_each * 1000, 2),
        "more-like-this ms (median)": round(neighbours_ms, 2),
    }


def _find(node: object, component_id: str) -> dict:
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == component_id:
            return node
        for value in node.values():
            found = _find(value, component_id)
            if found:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find(value, component_id)
            if found:
                return found
    return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--keep", help="build the stores here and keep them (e.g. to open them in the viewer)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="viewer-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rows = [measure(root, n) for n in args.sizes]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    width = max(len(k) for k in rows[0])
    for name in rows[0]:
        print(
            f"{name:<{width}}  "
            + "  ".join(f"{row[name]:>12,}" if isinstance(row[name], int) else f"{row[name]!s:>12}" for row in rows)
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak RSS MB (process)':<{width}}  {peak:>12.0f}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
