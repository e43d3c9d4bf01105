"""The ``3d_projection`` stage: three coordinates per file for the map."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


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

        start = PCA(min(50, n - 1, vectors.shape[1]), random_state=seed).fit_transform(vectors)
        coords = TSNE(3, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(start)
        return _pad(coords), "tsne"
    if method == "umap":
        import warnings

        import umap

        neighbours = max(2, min(15, n - 1))
        reducer = umap.UMAP(
            n_components=3, n_neighbors=neighbours, min_dist=0.1, metric="cosine", random_state=seed,
            init="spectral" if n > 10 else "random",
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # seeded UMAP is single-threaded
            return _pad(reducer.fit_transform(vectors)), "umap"
    raise ValueError(f"unknown projection method {method!r}")


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
    similarity = new_vectors @ known_vectors.T  # vectors are L2-normalised: cosine similarity
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(similarity, nearest, axis=1).clip(min=1e-6)
    weights /= weights.sum(axis=1, keepdims=True)
    return (known_coords[nearest] * weights[..., None]).sum(axis=1).astype(np.float32)
