"""Encoders: each backend (CLIP, the offline CNN, the self-trained autoencoder) reduced to what the embedding
loop needs, and the loop itself: one L2-normalised float32 vector per file.

Thumbnails are decoded and preprocessed in worker threads a few batches ahead of the model, so decoding
overlaps inference; only a bounded number of batches is ever in memory. ``decode_and_embed`` does the
``decoded_frames`` and ``embeddings`` stages in one pass: source files are decoded in worker threads while
the model embeds the files decoded before them (``bench/throughput.py`` measures both ways).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from neural_sorter.decoding.frames import (
    DecodeOptions,
    decode_file,
    decode_manifest,
    file_frame_rows,
    frames_table,
    split_duplicates,
    worker_count,
)
from neural_sorter.decoding.images import decode_jpeg
from neural_sorter.inventory import source_path
from neural_sorter.models import efficientnet
from neural_sorter.models.clip import (
    ClipUnavailable,
    LoadedClip,
    VisionFeatures,
    load_clip,
    zero_shot_probabilities,
)
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
    """A backend reduced to what the embedding loop needs.

    ``forward`` may load its model on first call (``LazyForward``): building an encoder is cheap, so a run
    whose files all have reusable vectors never loads, exports or compiles a model.
    """

    backend: str
    model_id: str
    preprocess: Callable[[Image.Image], np.ndarray]
    forward: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    clip: LoadedClip | None = None
    runtime: str = "torch"
    precision: str = "fp32"


class LazyForward:
    """A forward function built by ``build()`` on its first call (once, thread-safe)."""

    def __init__(self, build: Callable[[], Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self._build = build
        self._forward: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._forward is not None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self._forward is None:
            with self._lock:
                if self._forward is None:
                    self._forward = self._build()
        return self._forward(batch)


def resolve_backend(
    requested: str, clip_model_id: str, device: torch.device, cnn_model: str = efficientnet.DEFAULT_MODEL
) -> tuple[str, list[str]]:
    """The backend to use and why: ``auto`` means clip if its weights load, else cnn, else autoencoder.
    The cnn's availability (of ``cnn_model``'s weights package) is checked without loading its weights."""
    notes: list[str] = []
    if requested != "auto":
        return requested, notes
    try:
        load_clip(clip_model_id, str(device))
        return "clip", notes
    except ClipUnavailable as exc:
        notes.append(f"clip unavailable: {exc}")
    try:
        efficientnet.check_available(cnn_model)
        return "cnn", notes
    except EfficientNetUnavailable as exc:
        notes.append(f"cnn unavailable: {exc}")
    return "autoencoder", notes


# Numeric precisions the encoders offer. ``int8`` is dynamic quantization of CLIP's linear layers (weights
# int8, activations quantized per batch), torch on CPU only: faster than fp32 on CPU with vectors at cosine
# >= 0.99 to fp32 (bench/throughput.py). ``bf16`` is OpenVINO's bf16 inference, offered only where the CPU
# runs it natively (AVX512-BF16 or AMX): about twice fp32's speed, vectors at a lower cosine to fp32
# (bench/README.md has the figures per model); elsewhere it falls back to fp32, with a note.
PRECISIONS = ("fp32", "int8", "bf16")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def plan_runtime(backend: str, precision: str, runtime: str, device: torch.device) -> tuple[str, str, list[str]]:
    """(runtime, precision) an encoder actually uses for the requested ones, and notes on any change.

    ``int8`` is torch's quantization of CLIP (so torch runs it); ``bf16`` needs OpenVINO on a CPU with native
    bf16; the autoencoder always runs in torch. Everything else runs fp32 on the resolved runtime.
    """
    from neural_sorter import runtimes

    _check_precision(precision)
    notes: list[str] = []
    if backend == "autoencoder":
        return "torch", "fp32", notes
    if precision == "int8":
        if backend != "clip":
            notes.append("precision int8 applies to CLIP only; the CNN runs in fp32")
            precision = "fp32"
        elif device.type != "cpu":
            notes.append(f"int8 quantization runs on CPU only; CLIP stays fp32 on {device}")
            precision = "fp32"
        else:
            if runtime not in ("auto", "torch"):
                notes.append(f"precision int8 is torch's quantization; runtime {runtime} is not used")
            return "torch", "int8", notes
    resolved, more = runtimes.resolve_runtime(runtime, device.type)
    notes += more
    if precision == "bf16":
        if runtime == "auto" and device.type == "cpu" and runtimes.installed("openvino"):
            resolved = "openvino"
        from neural_sorter.runtimes.sessions import openvino_bf16_native

        if resolved != "openvino":
            notes.append(f"precision bf16 needs the openvino runtime; {resolved} runs fp32")
            precision = "fp32"
        elif not openvino_bf16_native():
            notes.append("this CPU has no native bf16 (AVX512-BF16/AMX); running fp32")
            precision = "fp32"
    return resolved, precision, notes


def _basename(model_id: str) -> str:
    return os.path.basename(os.path.normpath(os.path.expanduser(model_id)))


def _model_id(base: str, precision: str) -> str:
    """fp32 vectors agree across runtimes (cosine >= 0.99999) and share the id; other precisions say so."""
    return base if precision == "fp32" else f"{base}+{precision}"


def _runtime_forward(
    runtime: str,
    precision: str,
    name: str,
    model_id: str,
    module: Callable[[], torch.nn.Module],
    size: int,
    weights: str | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Exports ``module()`` (cached on disk under its fp32 ``model_id``: one file for every precision) and loads
    it into ``runtime``: a torch-in, torch-out forward."""
    from neural_sorter.runtimes.export import onnx_model
    from neural_sorter.runtimes.sessions import load_session

    session = load_session(runtime, onnx_model(name, model_id, module, (3, size, size), weights), precision)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session(batch.detach().cpu().numpy()))

    return forward


@functools.lru_cache(maxsize=2)
def _int8_clip(model_id: str, device: str) -> LoadedClip:
    """A copy of the loaded CLIP with every ``nn.Linear`` dynamically quantized to int8 (once per process)."""
    clip = load_clip(model_id, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        quantized = torch.ao.quantization.quantize_dynamic(clip.model, {torch.nn.Linear}, dtype=torch.qint8)
    return dataclasses.replace(clip, model=quantized.eval())


def clip_encoder(model_id: str, device: torch.device, precision: str = "fp32", runtime: str = "torch") -> Encoder:
    """CLIP image features. ``precision='int8'`` quantizes the linear layers (torch, CPU only); ``runtime``
    runs the exported image tower in ONNX Runtime or OpenVINO (exported and compiled on the first batch).
    The model id of a non-fp32 encoder says so, so its vectors are never mixed with fp32 ones."""
    runtime, precision, notes = plan_runtime("clip", precision, runtime, device)
    for note in notes:
        log.warning(note)
    clip = load_clip(model_id, str(device))
    model_id_used = _model_id(f"{model_id}@{clip.revision}", precision)
    if precision == "int8":
        clip = _int8_clip(model_id, str(device))
        forward: Callable[[torch.Tensor], torch.Tensor] = clip.embed_images
    elif runtime == "torch":
        forward = clip.embed_images
    else:
        forward = LazyForward(
            functools.partial(
                _runtime_forward,
                runtime,
                precision,
                f"clip-{_basename(model_id)}",
                f"{_basename(model_id)}@{clip.revision}",  # a moved folder keeps its export
                lambda: VisionFeatures(clip.model),
                clip.image_size,
            )
        )
    return Encoder("clip", model_id_used, clip.preprocess, forward, device, clip, runtime, precision)


def cnn_encoder(
    device: torch.device,
    precision: str = "fp32",
    runtime: str = "torch",
    recipe: efficientnet.Recipe | None = None,
) -> Encoder:
    """EfficientNet-Lite features (``recipe``: which model, flip-averaged or not; the default recipe when None),
    loaded on the first batch. int8 has nothing to quantize here (dynamic quantization covers linear layers and
    the features come from convolutions), so it runs fp32; ``bf16`` runs in OpenVINO where the CPU has native
    bf16. The model id is the recipe's, so vectors of different recipes are never mixed, and the exported
    model is keyed by it."""
    recipe = recipe or efficientnet.DEFAULT_RECIPE
    runtime, precision, notes = plan_runtime("cnn", precision, runtime, device)
    for note in notes:
        log.info(note)
    efficientnet.check_available(recipe.model)
    model_id = _model_id(recipe.model_id, precision)
    if runtime == "torch":

        def build() -> Callable[[torch.Tensor], torch.Tensor]:
            model = efficientnet.load_efficientnet(str(device), recipe.model)
            return lambda batch: efficientnet.embed_batch(model, batch, recipe)

    else:
        build = functools.partial(
            _runtime_forward,
            runtime,
            precision,
            recipe.model_id,
            recipe.model_id,
            lambda: efficientnet.FeatureExtractor(efficientnet.pretrained_folded(recipe.model), recipe),
            recipe.input_size,
            efficientnet.weights_token(recipe.model),  # an exported model is reused without loading the torch one
        )
    preprocess = functools.partial(efficientnet.preprocess, size=recipe.input_size)
    return Encoder("cnn", model_id, preprocess, LazyForward(build), device, None, runtime, precision)


def autoencoder_encoder(model: torch.nn.Module, model_id: str, device: torch.device) -> Encoder:
    size = model.image_size

    def preprocess(image: Image.Image) -> np.ndarray:
        array = np.asarray(resize_center_crop(image.convert("RGB"), size), dtype=np.float32) / 255.0
        return array.transpose(2, 0, 1)

    return Encoder("autoencoder", model_id, preprocess, model.embed, device)


def _prefetched_batches(
    thumbnails: Iterable[bytes], preprocess: Callable[[Image.Image], np.ndarray], batch_size: int, workers: int
) -> Iterator[np.ndarray]:
    """Yields preprocessed batches while later ones are prepared in threads (at most ``workers + 1`` ahead).

    ``thumbnails`` may be a stream: only the batches in flight are ever held.
    """

    def prepare(chunk: list[bytes]) -> np.ndarray:
        return np.stack([preprocess(decode_jpeg(data)) for data in chunk])

    source = iter(thumbnails)
    chunks = iter(lambda: list(itertools.islice(source, batch_size)), [])  # until a chunk comes back empty
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
    thumbnails: Iterable[bytes], encoder: Encoder, batch_size: int = 32, workers: int = 2, total: int | None = None
) -> np.ndarray:
    """L2-normalised float32 vectors, one per thumbnail (a list, or a stream of ``total`` of them)."""
    if total is None:
        thumbnails = list(thumbnails)
        total = len(thumbnails)
    if not total:
        return np.zeros((0, 0), dtype=np.float32)
    out: list[np.ndarray] = []
    progress = tqdm(total=total, desc=f"embed ({encoder.backend})", unit="img", disable=None, leave=False)
    for batch in _prefetched_batches(thumbnails, encoder.preprocess, batch_size, workers):
        tensor = torch.from_numpy(batch).to(encoder.device)
        with torch.inference_mode():
            vectors = encoder.forward(tensor).float()
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        out.append(vectors.cpu().numpy())
        progress.update(len(batch))
    progress.close()
    return np.concatenate(out).astype(np.float32, copy=False)


def _reusable_vectors(reuse: pd.DataFrame | None, encoder: Encoder) -> dict[str, np.ndarray]:
    """Vectors of ``reuse`` by content hash, only those made by the same backend and model."""
    if reuse is None or not len(reuse):
        return {}
    same_model = reuse[(reuse["backend"] == encoder.backend) & (reuse["model_id"] == encoder.model_id)]
    return {h: np.asarray(v, dtype=np.float32) for h, v in zip(same_model["content_hash"], same_model["vector"])}


def _frames_to_embed(frames: pd.DataFrame, cache: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good frame rows, the distinct frames among them whose content has no reusable vector)."""
    good = frames[frames["error"].isna()]  # a decoded frame always has its thumbnail
    todo = good[~good["content_hash"].isin(cache.keys())].drop_duplicates(["content_hash", "frame_index"])
    return good, todo


def build_embeddings(
    frames: pd.DataFrame,
    encoder: Encoder,
    categories: list[str] | None = None,
    category_vectors: np.ndarray | None = None,
    reuse: pd.DataFrame | None = None,
    batch_size: int = 32,
    workers: int = 2,
    thumbnails: Callable[[pd.DataFrame], Iterable[bytes]] | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-file vectors (a video's is the normalised mean of its frames), reusing ``reuse`` rows whose content
    hash, backend and model id all match, plus zero-shot category probabilities for CLIP.

    ``frames`` may leave out its thumbnail column when ``thumbnails`` streams them: given the frames to embed,
    it yields their thumbnails in that order (the pipeline reads them from the store a batch at a time).
    """
    cache = _reusable_vectors(reuse, encoder)
    good, todo = _frames_to_embed(frames, cache)
    started = time.perf_counter()
    if not len(todo):  # nothing to embed: the store is not read and the model never loads
        stream: Iterable[bytes] = []
    else:
        stream = thumbnails(todo) if thumbnails is not None else todo["thumbnail"]
    vectors = embed_thumbnails(stream, encoder, batch_size, workers, total=len(todo))
    seconds = time.perf_counter() - started
    return _embedding_table(good, todo, vectors, cache, encoder, categories, category_vectors, seconds)


def _embedding_table(
    good: pd.DataFrame,
    todo: pd.DataFrame,
    vectors: np.ndarray,
    cache: dict[str, np.ndarray],
    encoder: Encoder,
    categories: list[str] | None,
    category_vectors: np.ndarray | None,
    seconds: float,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The embeddings table from per-frame ``vectors`` (one per ``todo`` row, in order) and reused ones."""
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


def decode_and_embed(
    manifest: pd.DataFrame,
    encoder: Encoder,
    decode_options: DecodeOptions,
    categories: list[str] | None = None,
    category_vectors: np.ndarray | None = None,
    reuse_frames: pd.DataFrame | None = None,
    reuse: pd.DataFrame | None = None,
    batch_size: int = 32,
) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame, dict[str, float]]:
    """``decode_manifest`` and ``build_embeddings`` in one pass, with source decoding overlapped with the model.

    Worker threads (``decode_options.workers``) decode files into thumbnails and preprocess them while the
    calling thread runs the model on the batches already decoded, so the model never waits for a whole folder
    to be decoded first. At most about two batches of decoded files are held ahead of the model. Returns
    ``(decoded_frames, decode stats, embeddings, embedding stats)`` with the same rows, columns and reuse rules
    as the two functions called one after the other; ``reuse_frames`` is an earlier ``decoded_frames`` and
    ``reuse`` an earlier ``embeddings``. The embedding stats' ``seconds`` cover decoding and embedding.
    """
    started = time.perf_counter()
    cache = _reusable_vectors(reuse, encoder)
    todo = manifest[manifest["kind"].isin(["image", "video"])]
    hit = np.zeros(len(todo), dtype=bool)
    reused_frames = None
    if reuse_frames is not None and len(reuse_frames):
        ok_hashes = set(reuse_frames.loc[reuse_frames["error"].isna(), "content_hash"])
        hit = todo["content_hash"].isin(ok_hashes).to_numpy()
        if hit.any():  # rows copied from reuse_frames; nothing is decoded
            reused_frames, _ = decode_manifest(todo[hit], decode_options, reuse=reuse_frames)
    # Work items: ("file", manifest row) to decode, or ("thumbs", frames rows) reused but not yet embedded.
    distinct, duplicates = split_duplicates(todo[~hit])  # identical files are decoded once
    items: list[tuple[str, object]] = [("file", row) for row in distinct]
    if reused_frames is not None:
        stale = reused_frames[reused_frames["thumbnail"].notna() & ~reused_frames["content_hash"].isin(cache.keys())]
        stale = stale.drop_duplicates(["content_hash", "frame_index"])
        items += [("thumbs", group) for _, group in stale.groupby("content_hash", sort=False)]
    claimed: set[str] = set(cache)
    lock = threading.Lock()

    def work(item: tuple[str, object]) -> tuple[str, object, list[dict[str, object]], list[tuple[int, np.ndarray]]]:
        """Runs in a worker: (content hash, manifest row or None, frame rows, preprocessed frames to embed)."""
        kind, payload = item
        row = None
        frame_rows: list[dict[str, object]] = []
        if kind == "thumbs":
            content_hash = payload["content_hash"].iloc[0]
            thumbs = list(zip(payload["frame_index"], payload["thumbnail"]))
        else:
            row = payload
            content_hash = row.content_hash
            frame_rows = decode_file(source_path(row.path_bytes), row.kind, decode_options)
            if frame_rows[0]["error"] is not None:
                return content_hash, row, frame_rows, []
            thumbs = [(r["frame_index"], r["thumbnail"]) for r in frame_rows]
        with lock:  # the same content twice (duplicates) is embedded once
            first = content_hash not in claimed
            claimed.add(content_hash)
        arrays = [(int(i), encoder.preprocess(decode_jpeg(data))) for i, data in thumbs] if first else []
        return content_hash, row, frame_rows, arrays

    pieces: list[pd.DataFrame] = [] if reused_frames is None else [reused_frames]
    new_rows: list[dict[str, object]] = []
    decode_stats = {"reused": int(hit.sum()), "decoded": 0, "failed": 0}
    copies: dict[str, list[dict[str, object]]] = {r.content_hash: [] for r in duplicates}
    computed: dict[tuple[str, int], np.ndarray] = {}
    pending_keys: list[tuple[str, int]] = []
    pending_arrays: list[np.ndarray] = []

    def flush(count: int) -> None:
        batch = torch.from_numpy(np.stack(pending_arrays[:count])).to(encoder.device)
        with torch.inference_mode():
            vectors = torch.nn.functional.normalize(encoder.forward(batch).float(), dim=-1).cpu().numpy()
        computed.update(zip(pending_keys[:count], vectors))
        del pending_keys[:count], pending_arrays[:count]

    workers = worker_count(decode_options.workers)
    progress = tqdm(total=len(items), desc=f"decode+embed ({encoder.backend})", unit="file", disable=None, leave=False)
    results = _unordered_bounded_map(work, items, workers, ahead=2 * batch_size + workers)
    for content_hash, row, frame_rows, arrays in results:
        if row is not None:
            failed = frame_rows[0]["error"] is not None
            decode_stats["failed" if failed else "decoded"] += 1
            new_rows += file_frame_rows(row.relative_path, content_hash, row.kind, frame_rows)
            if content_hash in copies:
                copies[content_hash] = frame_rows
        for frame_index, array in arrays:
            pending_keys.append((content_hash, frame_index))
            pending_arrays.append(array)
        while len(pending_arrays) >= batch_size:
            flush(batch_size)
        progress.update(1)
    if pending_arrays:
        flush(len(pending_arrays))
    progress.close()
    for row in duplicates:
        frame_rows = copies[row.content_hash]
        decode_stats["failed" if frame_rows[0]["error"] is not None else "decoded"] += 1
        new_rows += file_frame_rows(row.relative_path, row.content_hash, row.kind, frame_rows)
    frames = frames_table(pieces, new_rows)
    good, to_embed = _frames_to_embed(frames, cache)
    keys = [(h, int(i)) for h, i in zip(to_embed["content_hash"], to_embed["frame_index"])]
    missing = [n for n, key in enumerate(keys) if key not in computed]  # only if a duplicate decoded differently
    if missing:
        late = embed_thumbnails(list(to_embed["thumbnail"].iloc[missing]), encoder, batch_size, workers)
        computed.update(zip([keys[n] for n in missing], late))
    vectors = np.stack([computed[key] for key in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
    table, stats = _embedding_table(
        good, to_embed, vectors, cache, encoder, categories, category_vectors, time.perf_counter() - started
    )
    return frames, decode_stats, table, stats


def _unordered_bounded_map(fn: Callable, items: list, workers: int, ahead: int) -> Iterator:
    """``fn(item)`` for every item in a thread pool, yielded as each finishes, with at most ``ahead`` results
    submitted but not yet consumed: decoding keeps going while the consumer is busy, memory stays bounded."""
    results: queue.Queue[Future] = queue.Queue()
    slots = threading.Semaphore(ahead)
    stop = threading.Event()

    def feed(pool: ThreadPoolExecutor) -> None:
        for item in items:
            slots.acquire()
            if stop.is_set():
                return
            pool.submit(fn, item).add_done_callback(results.put)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        feeder = threading.Thread(target=feed, args=(pool,), daemon=True)
        feeder.start()
        try:
            for _ in range(len(items)):
                future = results.get()
                slots.release()
                yield future.result()
        finally:
            stop.set()
            slots.release()
            feeder.join()
            pool.shutdown(cancel_futures=True)


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
    backend: str,
    clip_model_id: str,
    device: torch.device,
    autoencoder: tuple[torch.nn.Module, str] | None,
    precision: str = "fp32",
    runtime: str = "torch",
    cnn_recipe: efficientnet.Recipe | None = None,
) -> Encoder:
    """Builds the encoder of an already-resolved backend; a clear error when it cannot be had. ``precision``
    and ``runtime`` apply to CLIP and the CNN (``plan_runtime``); the autoencoder always runs fp32 in torch.
    ``cnn_recipe`` is the CNN's model and views (``efficientnet.DEFAULT_RECIPE`` when None)."""
    _check_precision(precision)
    try:
        if backend == "clip":
            return clip_encoder(clip_model_id, device, precision, runtime)
        if backend == "cnn":
            return cnn_encoder(device, precision, runtime, cnn_recipe)
    except (ClipUnavailable, EfficientNetUnavailable) as exc:
        raise BackendUnavailable(str(exc)) from None
    if backend == "autoencoder":
        if autoencoder is None:
            raise BackendUnavailable("the autoencoder backend needs a trained model (trained_autoencoder asset)")
        return autoencoder_encoder(autoencoder[0], autoencoder[1], device)
    raise BackendUnavailable(f"unknown backend {backend!r}")
