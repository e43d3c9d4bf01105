"""The ``3d_projection`` stage: three coordinates per file for the map."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

# t-SNE (Barnes-Hut, 3D) takes minutes from about 10,000 points and grows faster than linearly: above this
# many files it is fitted on a seeded random sample and the other files are placed among their nearest
# sampled neighbours (the way re-sorts place new files), and the method reported says so.
TSNE_SAMPLE = 10_000


def project_3d(vectors: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str]:
    """(n, 3) float32 coordinates and the method actually used (tiny inputs fall back to PCA, and say so)."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 3), dtype=np.float32), method
    if n < 4:
        coords = np.zeros((n, 3), dtype=np.float32)
        if n > 1:
            dims = min(3, n - 1, vectors.shape[1])
            coords[:, :dims] = PCA(dims, random_state=seed).fit_transform(vectors)
        return coords, "pca (fewer than 4 files)"
    if method == "pca":
        coords = PCA(min(3, vectors.shape[1]), random_state=seed).fit_transform(vectors)
        return _pad(coords), "pca"
    if method == "tsne":
        from sklearn.manifold import TSNE

        sample = _sample(n, TSNE_SAMPLE, seed)
        fit_on = vectors if sample is None else vectors[sample]
        start = PCA(min(50, len(fit_on) - 1, vectors.shape[1]), random_state=seed).fit_transform(fit_on)
        coords = TSNE(3, perplexity=min(30.0, (len(fit_on) - 1) / 3), init="pca", random_state=seed).fit_transform(
            start
        )
        if sample is None:
            return _pad(coords), "tsne"
        return _place_rest(vectors, sample, _pad(coords)), f"tsne (fitted on {len(sample):,} files, rest placed)"
    if method == "umap":
        with numba_disk_cache():
            import umap

            neighbours = max(2, min(15, n - 1))
            reducer = umap.UMAP(
                n_components=3,
                n_neighbors=neighbours,
                min_dist=0.1,
                metric="cosine",
                random_state=seed,
                init="spectral" if n > 10 else "random",
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # seeded UMAP is single-threaded
                return _pad(reducer.fit_transform(vectors)), "umap"
    raise ValueError(f"unknown projection method {method!r}")


@contextlib.contextmanager
def numba_disk_cache() -> Iterator[None]:
    """Compiles UMAP's numba kernels once per install, not once per process.

    UMAP declares most of its kernels without numba's ``cache=True`` (pynndescent caches its own), so every
    new process spent ~7 s compiling them (bench/README.md). Within this block ``numba.njit`` defaults to
    ``cache=True``: kernels UMAP defines on import or during a fit are stored on disk and loaded by later runs.
    The cache lives in ``NUMBA_CACHE_DIR`` if set, else ``~/.cache/neural-sorter/numba`` (site-packages may be
    read-only); numba keys it by source file, signature and CPU. ``NEURAL_SORTER_NUMBA_CACHE=0`` turns this
    off. A kernel numba cannot cache (dynamic globals) is compiled as before.
    """
    if os.environ.get("NEURAL_SORTER_NUMBA_CACHE", "1").lower() in ("0", "false", "no"):
        yield
        return
    import numba

    from neural_sorter.runtimes import cache_dir

    original, original_dir = numba.njit, numba.config.CACHE_DIR
    numba.config.CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(cache_dir(), "numba")

    def njit(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return original(*args, **kwargs)

    numba.njit = njit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)  # "cannot cache ..." for the few that cannot
            yield
    finally:
        numba.njit, numba.config.CACHE_DIR = original, original_dir


def _sample(n: int, size: int, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random sample of ``size`` out of ``n``; None when ``n <= size``."""
    if n <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _place_rest(vectors: np.ndarray, sample: np.ndarray, sample_coords: np.ndarray) -> np.ndarray:
    """Coordinates for every vector: the sample's own, the others placed among their nearest sampled
    neighbours (``extend_projection``)."""
    coords = np.empty((len(vectors), 3), dtype=np.float32)
    coords[sample] = sample_coords
    rest = np.ones(len(vectors), dtype=bool)
    rest[sample] = False
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    coords[rest] = extend_projection(unit[sample], sample_coords, unit[rest])
    return coords


def _pad(coords: np.ndarray) -> np.ndarray:
    if coords.shape[1] < 3:
        coords = np.hstack([coords, np.zeros((len(coords), 3 - coords.shape[1]))])
    return coords.astype(np.float32)


def extend_projection(
    known_vectors: np.ndarray, known_coords: np.ndarray, new_vectors: np.ndarray, neighbours: int = 5
) -> np.ndarray:
    """Places new points without moving old ones: the distance-weighted mean of the coordinates of their
    nearest known neighbours in embedding space. Works the same for UMAP, t-SNE (which has no ``transform``)
    and PCA, and keeps the map stable between re-sorts."""
    if not len(new_vectors):
        return np.zeros((0, 3), dtype=np.float32)
    k = min(neighbours, len(known_vectors))
    out = np.empty((len(new_vectors), 3), dtype=np.float32)
    chunk = max(1, _SIMILARITY_BLOCK // max(1, len(known_vectors)))  # memory O(chunk x known), not O(new x known)
    for start in range(0, len(new_vectors), chunk):
        similarity = new_vectors[start : start + chunk] @ known_vectors.T  # L2-normalised: cosine similarity
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.take_along_axis(similarity, nearest, axis=1).clip(min=1e-6)
        weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + chunk] = (known_coords[nearest] * weights[..., None]).sum(axis=1)
    return out


# Entries of one block of the new x known similarity matrix in ``extend_projection`` (float32: 64 MB).
_SIMILARITY_BLOCK = 16_000_000


def projection_table(embeddings: pd.DataFrame, coords: np.ndarray, clusters: pd.DataFrame, method: str) -> pd.DataFrame:
    """The ``3d_projection`` table: x, y, z per file with the cluster it belongs to and the method used."""
    table = pd.DataFrame(
        {
            "relative_path": embeddings["relative_path"].to_numpy(),
            "content_hash": embeddings["content_hash"].to_numpy(),
            "x": coords[:, 0],
            "y": coords[:, 1],
            "z": coords[:, 2],
        }
    ).merge(clusters[["relative_path", "cluster_id", "cluster_name"]], on="relative_path", how="left")
    table["method"] = method
    return table
