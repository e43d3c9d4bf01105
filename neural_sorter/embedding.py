"""The ``embeddings`` stage: one L2-normalised float32 vector per file from the chosen backend.

Thumbnails are decoded and preprocessed in worker threads a few batches ahead of the model, so decoding
overlaps inference; only a bounded number of batches is ever in memory.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from neural_sorter.decoding.images import decode_jpeg
from neural_sorter.models import efficientnet
from neural_sorter.models.clip import ClipUnavailable, LoadedClip, load_clip, zero_shot_probabilities
from neural_sorter.models.efficientnet import EfficientNetUnavailable
from neural_sorter.models.preprocess import resize_center_crop

log = logging.getLogger(__name__)

EMBEDDING_COLUMNS = [
    "relative_path",
    "content_hash",
    "kind",
    "backend",
    "model_id",
    "frames",
    "vector",
    "category_probs",
    "top_category",
    "top_probability",
    "reused",
]


class BackendUnavailable(RuntimeError):
    pass


@dataclass
class Encoder:
    """A backend reduced to what the embedding loop needs."""

    backend: str
    model_id: str
    preprocess: Callable[[Image.Image], np.ndarray]
    forward: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    clip: LoadedClip | None = None


def resolve_backend(requested: str, clip_model_id: str, device: torch.device) -> tuple[str, list[str]]:
    """The backend to use and why: ``auto`` means clip if its weights load, else cnn, else autoencoder."""
    notes: list[str] = []
    if requested != "auto":
        return requested, notes
    try:
        load_clip(clip_model_id, str(device))
        return "clip", notes
    except ClipUnavailable as exc:
        notes.append(f"clip unavailable: {exc}")
    try:
        efficientnet.load_efficientnet(str(device))
        return "cnn", notes
    except EfficientNetUnavailable as exc:
        notes.append(f"cnn unavailable: {exc}")
    return "autoencoder", notes


def clip_encoder(model_id: str, device: torch.device) -> Encoder:
    clip = load_clip(model_id, str(device))
    return Encoder("clip", f"{model_id}@{clip.revision}", clip.preprocess, clip.embed_images, device, clip)


def cnn_encoder(device: torch.device) -> Encoder:
    model = efficientnet.load_efficientnet(str(device))
    return Encoder(
        "cnn",
        efficientnet.MODEL_ID,
        efficientnet.preprocess,
        lambda batch: efficientnet.embed_batch(model, batch),
        device,
    )


def autoencoder_encoder(model: torch.nn.Module, model_id: str, device: torch.device) -> Encoder:
    size = model.image_size

    def preprocess(image: Image.Image) -> np.ndarray:
        array = np.asarray(resize_center_crop(image.convert("RGB"), size), dtype=np.float32) / 255.0
        return array.transpose(2, 0, 1)

    return Encoder("autoencoder", model_id, preprocess, model.embed, device)


def _prefetched_batches(
    thumbnails: list[bytes], preprocess: Callable[[Image.Image], np.ndarray], batch_size: int, workers: int
) -> Iterator[np.ndarray]:
    """Yields preprocessed batches while later ones are prepared in threads (at most ``workers + 1`` ahead)."""

    def prepare(chunk: list[bytes]) -> np.ndarray:
        return np.stack([preprocess(decode_jpeg(data)) for data in chunk])

    chunks = [thumbnails[i : i + batch_size] for i in range(0, len(thumbnails), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: deque[Future[np.ndarray]] = deque()
        pending = iter(chunks)
        for chunk in pending:
            queue.append(pool.submit(prepare, chunk))
            if len(queue) > workers:
                break
        while queue:
            ready = queue.popleft().result()
            nxt = next(pending, None)
            if nxt is not None:
                queue.append(pool.submit(prepare, nxt))
            yield ready


def embed_thumbnails(
    thumbnails: list[bytes], encoder: Encoder, batch_size: int = 32, workers: int = 2
) -> np.ndarray:
    """L2-normalised float32 vectors, one per thumbnail."""
    if not thumbnails:
        return np.zeros((0, 0), dtype=np.float32)
    out: list[np.ndarray] = []
    progress = tqdm(total=len(thumbnails), desc=f"embed ({encoder.backend})", unit="img", disable=None, leave=False)
    for batch in _prefetched_batches(thumbnails, encoder.preprocess, batch_size, workers):
        tensor = torch.from_numpy(batch).to(encoder.device)
        with torch.inference_mode():
            vectors = encoder.forward(tensor).float()
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        out.append(vectors.cpu().numpy())
        progress.update(len(batch))
    progress.close()
    return np.concatenate(out).astype(np.float32, copy=False)


def build_embeddings(
    frames: pd.DataFrame,
    encoder: Encoder,
    categories: list[str] | None = None,
    category_vectors: np.ndarray | None = None,
    reuse: pd.DataFrame | None = None,
    batch_size: int = 32,
    workers: int = 2,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-file vectors (a video's is the normalised mean of its frames), reusing ``reuse`` rows whose content
    hash, backend and model id all match, plus zero-shot category probabilities for CLIP."""
    good = frames[frames["error"].isna() & frames["thumbnail"].notna()]
    cache: dict[str, np.ndarray] = {}
    if reuse is not None and len(reuse):
        same_model = reuse[(reuse["backend"] == encoder.backend) & (reuse["model_id"] == encoder.model_id)]
        cache = {h: np.asarray(v, dtype=np.float32) for h, v in zip(same_model["content_hash"], same_model["vector"])}
    todo = good[~good["content_hash"].isin(cache.keys())].drop_duplicates(["content_hash", "frame_index"])
    started = time.perf_counter()
    vectors = embed_thumbnails(list(todo["thumbnail"]), encoder, batch_size, workers)
    seconds = time.perf_counter() - started
    fresh: dict[str, np.ndarray] = {}
    if len(todo):
        for content_hash, positions in todo.groupby("content_hash", sort=False).indices.items():
            mean = vectors[positions].mean(axis=0)
            fresh[content_hash] = (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)
    files = good.groupby("relative_path", sort=True).agg(
        content_hash=("content_hash", "first"), kind=("kind", "first"), frames=("frame_index", "count")
    )
    rows = []
    for relative_path, row in files.iterrows():
        is_reused = row.content_hash not in fresh
        vector = cache[row.content_hash] if is_reused else fresh[row.content_hash]
        rows.append(
            {
                "relative_path": relative_path,
                "content_hash": row.content_hash,
                "kind": row.kind,
                "backend": encoder.backend,
                "model_id": encoder.model_id,
                "frames": int(row.frames),
                "vector": vector,
                "reused": is_reused,
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in EMBEDDING_COLUMNS if c not in _CATEGORY_COLUMNS])
    _add_categories(table, encoder, categories or [], category_vectors)
    stats = {
        "files": len(table),
        "embedded": len(fresh),
        "reused": int(table["reused"].sum()) if len(table) else 0,
        "frames_embedded": len(todo),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(todo) / seconds, 2) if seconds > 0 and len(todo) else 0.0,
    }
    return table[EMBEDDING_COLUMNS], stats


_CATEGORY_COLUMNS = ("category_probs", "top_category", "top_probability")


def _add_categories(
    table: pd.DataFrame, encoder: Encoder, categories: list[str], category_vectors: np.ndarray | None
) -> None:
    if encoder.clip is None or not categories or category_vectors is None or not len(table):
        table["category_probs"] = None
        table["top_category"] = None
        table["top_probability"] = np.nan
        return
    matrix = np.stack(table["vector"].to_numpy())
    probs = zero_shot_probabilities(matrix, category_vectors, encoder.clip.logit_scale)
    best = probs.argmax(axis=1)
    table["category_probs"] = list(probs)
    table["top_category"] = [categories[i] for i in best]
    table["top_probability"] = probs[np.arange(len(best)), best]


def vectors_of(table: pd.DataFrame) -> np.ndarray:
    """The (n, d) float32 matrix of an embeddings table."""
    if not len(table):
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(table["vector"].to_numpy()).astype(np.float32, copy=False)


def encoder_for(
    backend: str, clip_model_id: str, device: torch.device, autoencoder: tuple[torch.nn.Module, str] | None
) -> Encoder:
    """Builds the encoder of an already-resolved backend; a clear error when it cannot be had."""
    try:
        if backend == "clip":
            return clip_encoder(clip_model_id, device)
        if backend == "cnn":
            return cnn_encoder(device)
    except (ClipUnavailable, EfficientNetUnavailable) as exc:
        raise BackendUnavailable(str(exc)) from None
    if backend == "autoencoder":
        if autoencoder is None:
            raise BackendUnavailable("the autoencoder backend needs a trained model (trained_autoencoder asset)")
        return autoencoder_encoder(autoencoder[0], autoencoder[1], device)
    raise BackendUnavailable(f"unknown backend {backend!r}")
