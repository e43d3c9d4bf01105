"""A real store for the viewer tests: tuxpaint8 images run through the pipeline's own stage functions and
written through ``Store``, so the viewer is tested against what the pipeline really produces, without the
cost of a Dagster run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from neural_sorter.store import Store
from neural_sorter.tables import CLIP_MODEL, CLUSTERS, DECODED_FRAMES, EMBEDDINGS, FILE_MANIFEST, PROJECTION_3D

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


def add_duplicates(images: Path) -> dict[str, list[str]]:
    """Real duplicates and a degraded file among ``images`` (made by ``copy_images``): a byte copy, a resized
    copy (60 %) and a mirrored copy of the first image, and a darkened (x0.15) copy of the second one under a
    new name. Returns {"original": [path], "copies": [paths], "dark": [path]} relative to ``images``."""
    from PIL import Image, ImageOps

    first, second = sorted(images.glob("*/*.png"))[:2]
    rel = lambda p: p.relative_to(images).as_posix()  # noqa: E731
    byte_copy = first.with_name(f"{first.stem} copy.png")
    shutil.copy2(first, byte_copy)
    with Image.open(first) as picture:
        rgb = picture.convert("RGB")
    resized = first.with_name(f"{first.stem} small.jpg")
    rgb.resize((max(1, rgb.width * 3 // 5), max(1, rgb.height * 3 // 5)), Image.Resampling.LANCZOS).save(
        resized, quality=90
    )
    mirrored = first.with_name(f"{first.stem} mirrored.png")
    ImageOps.mirror(rgb).save(mirrored)
    with Image.open(second) as picture:
        dark = second.with_name(f"{second.stem} dark.png")
        picture.convert("RGB").point(lambda v: int(v * 0.15)).save(dark)
    return {"original": [rel(first)], "copies": [rel(byte_copy), rel(resized), rel(mirrored)], "dark": [rel(dark)]}


def write_asset(store: Path, asset: str, key: str, table: pd.DataFrame) -> Path:
    """Writes one asset partition exactly as the pipeline's IO manager does (through ``Store``)."""
    return Path(Store(store).write(asset, key, table))


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
    """Materializes file_manifest .. 3d_projection for ``images`` into ``store`` with the pipeline's own stage
    functions (what the Dagster assets call), without the cost of a Dagster run; returns the partition key."""
    import functools

    import torch

    from neural_sorter.stages.clip_model import build_clip_model
    from neural_sorter.stages.clusters import ClusterOptions, build_clusters, first_thumbnail_stream
    from neural_sorter.stages.decoded_frames import FrameOptions, build_decoded_frames
    from neural_sorter.stages.embeddings import EmbeddingOptions, build_embeddings
    from neural_sorter.stages.file_manifest import build_file_manifest
    from neural_sorter.stages.projection_3d import ProjectionOptions, build_projection_3d

    if backend == "clip" and clip_dir is None:
        raise ValueError("the clip backend needs clip_dir")
    target = Store(store)
    key = target.sources.add(images)
    device = torch.device("cpu")
    models = EmbeddingOptions(
        backend=backend,
        clip_model=str(clip_dir) if clip_dir else EmbeddingOptions().clip_model,
        categories=list(categories or []),
        batch_size=16,
    )
    manifest, _ = build_file_manifest(images, None)
    target.write(FILE_MANIFEST, key, manifest)
    frames, _ = build_decoded_frames(manifest, None, FrameOptions(decode_workers=2))
    target.write(DECODED_FRAMES, key, frames)
    clip_model, _ = build_clip_model(models, device)
    target.write(CLIP_MODEL, key, clip_model)
    embeddings, _ = build_embeddings(
        frames,
        None,
        models,
        clip_model=clip_model,
        autoencoder=None,
        device=device,
        thumbnails=functools.partial(target.iter_thumbnails, key),
        workers=2,
    )
    target.write(EMBEDDINGS, key, embeddings)
    clusters, _ = build_clusters(
        embeddings,
        None,
        ClusterOptions(k=k, k_range=(2, 6), category_threshold=0.0),
        categories=models.categories,
        seed=seed,
        manifest=manifest,
        thumbnails=first_thumbnail_stream(frames, functools.partial(target.iter_thumbnails, key)),
    )
    target.write(CLUSTERS, key, clusters)
    projected, _ = build_projection_3d(
        embeddings, clusters, None, ProjectionOptions(projection=projection), seed=seed, drift_threshold=0.2
    )
    target.write(PROJECTION_3D, key, projected)
    return key


def real_image_store(root: Path, count: int = 30, duplicates: bool = False) -> tuple[Path, str, Path]:
    """(store, partition key, source folder): ``count`` real images through the pipeline functions (cnn, pca,
    k=4) under ``root``, plus ``add_duplicates``'s copies and dark file when ``duplicates``; skips the calling
    test when the shared data set is missing."""
    import pytest

    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    images = copy_images(root / "photos", count)
    if duplicates:
        add_duplicates(images)
    store = root / "store"
    return store, build_store(store, images, backend="cnn", projection="pca", k=4), images
