"""A real store for the viewer tests: tuxpaint8 images run through the pipeline's own functions.

Each table is written exactly where and how the Parquet IO manager writes it
(``<store>/<asset>/<partition>.parquet``, write-then-rename), so the viewer is tested against what the
pipeline really produces, without the cost of a Dagster run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TUXPAINT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tuxpaint8"
CLASSES = ("birds", "fish", "flowers", "fruit", "insects", "vehicles")


def tuxpaint_available() -> bool:
    return TUXPAINT.is_dir() and any(TUXPAINT.glob("*/*.png"))


def copy_images(dest: Path, count: int = 30, classes: tuple[str, ...] = CLASSES) -> Path:
    """Copies ``count`` real images, spread evenly over ``classes``, into ``dest/<class>/``; returns ``dest``."""
    per_class = -(-count // len(classes))
    copied = 0
    for cls in classes:
        for image in sorted((TUXPAINT / cls).glob("*.png"))[:per_class]:
            if copied == count:
                return dest
            target = dest / cls / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, target)
            copied += 1
    return dest


def write_asset(store: Path, asset: str, key: str, table: pd.DataFrame) -> Path:
    """Writes one asset partition the way ``ParquetIOManager`` does (zstd, atomic rename)."""
    path = store / asset / f"{key}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def build_store(
    store: Path,
    images: Path,
    *,
    backend: str = "cnn",
    clip_dir: Path | None = None,
    categories: list[str] | None = None,
    projection: str = "pca",
    k: int = 4,
    seed: int = 0,
) -> str:
    """Materializes file_manifest .. 3d_projection for ``images`` into ``store``; returns the partition key."""
    import torch

    from neural_sorter.clustering import cluster_embeddings
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.embedding import build_embeddings, clip_encoder, cnn_encoder, vectors_of
    from neural_sorter.file_manifest import build_file_manifest
    from neural_sorter.projection import project_3d, projection_table
    from neural_sorter.sources import SourceRegistry

    key = SourceRegistry(str(store)).add(images)
    device = torch.device("cpu")
    manifest = build_file_manifest(images)
    frames, _ = decode_manifest(manifest, DecodeOptions(workers=2))
    categories = list(categories or [])
    category_vectors = None
    if backend == "clip":
        if clip_dir is None:
            raise ValueError("the clip backend needs clip_dir")
        encoder = clip_encoder(str(clip_dir), device)
        assert encoder.clip is not None
        prompts = [f"a photo of {c}" for c in categories]
        clip_rows = [
            {"model_id": str(clip_dir), "revision": encoder.clip.revision, "status": "loaded", "message": "",
             "category": c, "prompt": p, "vector": v.astype(np.float32)}
            for c, p, v in zip(categories, prompts, encoder.clip.embed_texts(prompts) if prompts else [])
        ] or [{"model_id": str(clip_dir), "revision": encoder.clip.revision, "status": "loaded",
               "message": "no categories configured", "category": None, "prompt": None, "vector": None}]
        clip_model = pd.DataFrame(clip_rows)
        if categories:
            category_vectors = np.stack(clip_model["vector"].to_numpy()).astype(np.float32)
    else:
        encoder = cnn_encoder(device)
        clip_model = pd.DataFrame([{"model_id": "openai/clip-vit-base-patch32", "revision": "", "status": "not used",
                                    "message": f"backend is {backend}", "category": None, "prompt": None,
                                    "vector": None}])
    embeddings, _ = build_embeddings(frames, encoder, categories, category_vectors, batch_size=16, workers=2)
    vectors = vectors_of(embeddings)
    clusters, _ = cluster_embeddings(
        embeddings, vectors, "kmeans", k, (2, 6), 5, categories if category_vectors is not None else [], 0.0, seed
    )
    coords, used = project_3d(vectors, projection, seed)
    for asset, table in (
        ("file_manifest", manifest),
        ("decoded_frames", frames),
        ("clip_model", clip_model),
        ("embeddings", embeddings),
        ("clusters", clusters),
        ("3d_projection", projection_table(embeddings, coords, clusters, used)),
    ):
        write_asset(store, asset, key, table)
    return key


def real_image_store(root: Path, count: int = 30) -> tuple[Path, str, Path]:
    """(store, partition key, source folder): ``count`` real images through the pipeline functions (cnn, pca,
    k=4) under ``root``; skips the calling test when the shared data set is missing."""
    import pytest

    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    images = copy_images(root / "photos", count)
    store = root / "store"
    return store, build_store(store, images, backend="cnn", projection="pca", k=4), images
