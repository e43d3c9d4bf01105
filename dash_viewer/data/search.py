"""Similarity search on the embedding vectors: nearest neighbours, "more like this" and CLIP text search."""

from __future__ import annotations

import numpy as np

from dash_viewer.data.duplicates import distinct_mask, group_members
from dash_viewer.data.partition import PartitionData


class TextSearchUnavailable(RuntimeError):
    """Text search cannot run for this partition; the message says why in words a user can act on."""


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
    """ "More like this": the ``k`` nearest other pictures to point ``idx`` on the embedding vectors (any
    backend): one file per duplicate group (``distinct_mask``), and none of ``idx``'s own copies."""
    if data.vectors is None or data.valid_id(idx) is None or not data.has_vector[idx]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    allowed = data.has_vector & distinct_mask(data, candidates)
    allowed[group_members(data, idx)] = False
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
    allowed = data.has_vector & distinct_mask(data, candidates)
    return nearest(data.vectors, vector, k, allowed)  # type: ignore[arg-type]
