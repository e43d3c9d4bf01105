"""The ``clusters`` stage: spectral (the default), k-means, hierarchical or HDBSCAN over the embeddings, plus
names and codes."""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neural_sorter.lazy import lazy_attr

# sklearn is imported at first use: the settings (and so every CLI command) import this module for METHODS,
# and an unchanged re-sort must not pay ~1.3 s for a library it never calls (issue 15).
AgglomerativeClustering = lazy_attr("sklearn.cluster", "AgglomerativeClustering")
KMeans = lazy_attr("sklearn.cluster", "KMeans")
PCA = lazy_attr("sklearn.decomposition", "PCA")
pairwise_distances_argmin = lazy_attr("sklearn.metrics", "pairwise_distances_argmin")
silhouette_score = lazy_attr("sklearn.metrics", "silhouette_score")
NearestNeighbors = lazy_attr("sklearn.neighbors", "NearestNeighbors")

log = logging.getLogger(__name__)

UNSORTED = "unsorted"
# The methods the `method` option offers (the settings, CLI and launchpad take their choices from here).
METHODS = ("spectral", "kmeans", "hierarchical", "hdbscan")
# Chosen by measurement on labelled real image sets (bench/quality.py, bench/README.md): spectral clustering
# on a cosine kNN graph of the folder's own PCA beat k-means on every set.
DEFAULT_METHOD = "spectral"
# Spectral clustering: vectors are reduced to this many principal components fitted on the folder, then
# L2-normalised; the cosine kNN graph links each file to about a third of an average group's size, n / (3k),
# kept within SPECTRAL_NEIGHBORS (measured: fewer neighbours suit small groups, more suit big ones).
SPECTRAL_PCA_DIMS = 64
SPECTRAL_NEIGHBORS = (8, 30)
# Above this many points the graph is built on a seeded sample of this size and every other file takes the
# majority label of its nearest sampled files: memory and time stop growing with n (no n x n matrix ever).
SPECTRAL_SAMPLE = 10_000
# Up to this many points the graph's eigenvectors come from a dense eigendecomposition (exact), above it from
# Lanczos (eigsh) on the sparse graph.
SPECTRAL_DENSE = 2500
# Weak all-pairs link added to the kNN graph, as a share of its mean degree (see _spectral_vectors).
SPECTRAL_REGULARISATION = 0.1
# k='auto' for spectral: Louvain modularity communities of a kNN graph with about sqrt(n)/2 neighbours,
# the median count over this many seeds (the spread across seeds is the stability check).
AUTO_K_SEEDS = 5
# Louvain's resolution: above 1 it favours smaller communities. At 1.0 it counted 6-7 of 8 (tuxpaint8) and 6 of
# 9 (wesnoth-portraits) on EfficientNet-Lite1 features; 1.2 counts 8 and 8 there and 10-11 of 10 on openclipart10
# (bench/README.md, quality.py).
AUTO_K_RESOLUTION = 1.2
# With k='auto' the upper end of k_range grows with the folder to ceil(sqrt(n)), at most this.
AUTO_K_MAX = 64
# Above this many points hierarchical clustering is fitted on a sample and the rest assigned by nearest
# centroid, so no n x n distance matrix is ever built.
HIERARCHICAL_SAMPLE = 5000
# Above this many points, k-means with k='auto' picks k on a random sample of this size, then fits k-means
# once on every point starting from that sample's centroids: the cost of choosing k stops growing with n.
KMEANS_SAMPLE = 10_000
# HDBSCAN's space trees crawl and its density estimates blur in high dimensions (10,000 x 512 took over three
# minutes): vectors with more dimensions than this are reduced with PCA to this many first.
HDBSCAN_DIMS = 50
_SILHOUETTE_SAMPLE = 4000


@dataclass
class ClusterResult:
    labels: np.ndarray  # -1 is noise
    centroids: np.ndarray
    silhouette: float | None
    chosen_k: int
    details: dict[str, object] = field(default_factory=dict)


def _silhouette(vectors: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    mask = labels >= 0
    distinct = np.unique(labels[mask])
    if len(distinct) < 2 or mask.sum() <= len(distinct):
        return None
    sample = min(int(mask.sum()), _SILHOUETTE_SAMPLE)
    return float(silhouette_score(vectors[mask], labels[mask], sample_size=sample, random_state=seed))


def centroids_of(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    ids = sorted(i for i in np.unique(labels) if i >= 0)
    if not ids:
        return np.zeros((0, vectors.shape[1]), dtype=np.float32)
    return np.stack([vectors[labels == i].mean(axis=0) for i in ids]).astype(np.float32)


def kmeans(vectors: np.ndarray, k: int | str, k_range: tuple[int, int], seed: int) -> ClusterResult:
    """k-means; with ``k='auto'`` the k of the best silhouette over ``k_range`` (clamped to n - 1)."""
    n = len(vectors)
    if n < 3:
        return ClusterResult(np.zeros(n, dtype=int), centroids_of(vectors, np.zeros(n, dtype=int)), None, 1)
    if k == "auto":
        low, high = k_range[0], min(k_range[1], n - 1)
        sampled = n > KMEANS_SAMPLE
        rng = np.random.default_rng(seed)
        fit_on = vectors[np.sort(rng.choice(n, KMEANS_SAMPLE, replace=False))] if sampled else vectors
        scores: dict[int, float] = {}
        models: dict[int, KMeans] = {}
        for candidate in range(min(low, high), high + 1):
            model = KMeans(candidate, n_init=4, random_state=seed).fit(fit_on)
            models[candidate] = model
            scores[candidate] = _silhouette(fit_on, model.labels_, seed) or -1.0
        best = max(scores, key=lambda c: (scores[c], -c))
        model = models[best]
        details: dict[str, object] = {"silhouette_by_k": {int(c): round(s, 4) for c, s in scores.items()}}
        silhouette = scores[best]
        if sampled:  # one fit on everything, from the sample's centroids
            model = KMeans(best, init=model.cluster_centers_, n_init=1, random_state=seed).fit(vectors)
            silhouette = _silhouette(vectors, model.labels_, seed)
            details["k_chosen_on"] = KMEANS_SAMPLE
        return ClusterResult(model.labels_, model.cluster_centers_.astype(np.float32), silhouette, best, details)
    chosen = max(1, min(int(k), n))
    model = KMeans(chosen, n_init=10, random_state=seed).fit(vectors)
    return ClusterResult(
        model.labels_, model.cluster_centers_.astype(np.float32), _silhouette(vectors, model.labels_, seed), chosen
    )


def hierarchical(vectors: np.ndarray, k: int | str, k_range: tuple[int, int], seed: int) -> ClusterResult:
    """Ward agglomerative clustering; fitted on a sample above ``HIERARCHICAL_SAMPLE`` points."""
    n = len(vectors)
    if n < 3:
        return ClusterResult(np.zeros(n, dtype=int), centroids_of(vectors, np.zeros(n, dtype=int)), None, 1)
    rng = np.random.default_rng(seed)
    sample_idx = np.sort(rng.choice(n, HIERARCHICAL_SAMPLE, replace=False)) if n > HIERARCHICAL_SAMPLE else None
    fit_on = vectors[sample_idx] if sample_idx is not None else vectors
    # The Ward tree does not depend on k: built once (cached by joblib for the duration of this call), then
    # cut at each candidate k.
    with tempfile.TemporaryDirectory(prefix="neural-sorter-ward-") as cache:
        if k == "auto":
            low, high = k_range[0], min(k_range[1], len(fit_on) - 1)
            scores = {}
            for candidate in range(min(low, high), high + 1):
                labels = AgglomerativeClustering(candidate, linkage="ward", memory=cache).fit_predict(fit_on)
                scores[candidate] = _silhouette(fit_on, labels, seed) or -1.0
            chosen = max(scores, key=lambda c: (scores[c], -c))
        else:
            chosen = max(1, min(int(k), len(fit_on)))
        labels = AgglomerativeClustering(chosen, linkage="ward", memory=cache).fit_predict(fit_on)
    centroids = centroids_of(fit_on, labels)
    if sample_idx is not None:
        labels = assign_nearest(vectors, centroids)
    return ClusterResult(
        labels,
        centroids,
        _silhouette(vectors, labels, seed),
        chosen,
        {"fitted_on": len(fit_on)},
    )


def hdbscan_clusters(vectors: np.ndarray, min_cluster_size: int, seed: int) -> ClusterResult:
    """HDBSCAN; points it calls noise get label -1 and end up in the ``unsorted`` folder.

    Vectors of more than ``HDBSCAN_DIMS`` dimensions are clustered in their first ``HDBSCAN_DIMS`` principal
    components (the details say so, with the share of variance kept); centroids, silhouette and distances
    stay in the original space.
    """
    import hdbscan

    n = len(vectors)
    if n < max(3, min_cluster_size):
        labels = np.zeros(n, dtype=int)
        return ClusterResult(labels, centroids_of(vectors, labels), None, 1, {"note": "too few files: one cluster"})
    details: dict[str, object] = {}
    data = vectors
    if vectors.shape[1] > HDBSCAN_DIMS and n > HDBSCAN_DIMS:
        pca = PCA(HDBSCAN_DIMS, random_state=seed)
        data = pca.fit_transform(vectors)
        details["pca_dims"] = HDBSCAN_DIMS
        details["pca_variance_kept"] = round(float(pca.explained_variance_ratio_.sum()), 4)
    model = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=max(1, min_cluster_size // 2),
        core_dist_n_jobs=max(1, os.cpu_count() or 1),
    ).fit(data.astype(np.float64))
    labels = model.labels_.astype(int)
    found = len(set(labels) - {-1})
    details["noise"] = int((labels < 0).sum())
    return ClusterResult(labels, centroids_of(vectors, labels), _silhouette(vectors, labels, seed), found, details)


def assign_nearest(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest (Euclidean) centroid per vector; sklearn works in chunks, so memory stays small."""
    if not len(vectors):
        return np.zeros(0, dtype=int)
    del chunk  # kept for callers; sklearn chunks by its own working-memory setting
    return pairwise_distances_argmin(vectors, centroids).astype(int)


def folder_projection(fit_on: np.ndarray, seed: int, dims: int):
    """A function mapping vectors to their first ``dims`` principal components fitted on ``fit_on`` (centred
    only when there are too few dimensions or rows), L2-normalised so Euclidean neighbours are cosine ones;
    and details on the fit."""
    details: dict[str, object] = {}
    if fit_on.shape[1] > dims and len(fit_on) > dims:
        pca = PCA(dims, random_state=seed).fit(fit_on)
        reduce = pca.transform
        details["pca_dims"] = dims
        details["pca_variance_kept"] = round(float(pca.explained_variance_ratio_.sum()), 4)
    else:
        mean = fit_on.mean(axis=0)

        def reduce(x: np.ndarray) -> np.ndarray:
            return x - mean

    def project(vectors: np.ndarray) -> np.ndarray:
        data = reduce(vectors)
        norms = np.linalg.norm(data, axis=1, keepdims=True)
        return (data / np.maximum(norms, 1e-12)).astype(np.float32)

    return project, details


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids renumbered 0, 1, ... from the largest cluster down (ties by the old id)."""
    ids, counts = np.unique(labels, return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = np.empty(ids.max() + 1, dtype=int)
    mapping[order] = np.arange(len(order))
    return mapping[labels]


def knn_graph(data: np.ndarray, neighbors: int):
    """Symmetric sparse kNN graph (binary weights) of L2-normalised rows: O(n x neighbors) memory."""
    from scipy import sparse

    n = len(data)
    neighbors = max(1, min(neighbors, n - 1))
    _, idx = NearestNeighbors(n_neighbors=neighbors + 1).fit(data).kneighbors(data)
    rows = np.repeat(np.arange(n), neighbors)
    graph = sparse.csr_matrix((np.ones(n * neighbors), (rows, idx[:, 1:].ravel())), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def _spectral_vectors(graph, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) of the regularised normalised Laplacian and the rows of its first ``k``
    eigenvectors, each row L2-normalised (Ng, Jordan and Weiss).

    Regularised (Amini et al. 2013): every pair of points gets a weak link tau / n, tau a tenth of the mean
    degree, applied as a rank-one term so nothing dense is built. The graph is then connected, so eigenvalues
    are distinct and Lanczos (``eigsh``) cannot miss copies of a repeated one (it did, on graphs with several
    components), and small islands of outliers do not claim eigenvectors of their own.
    """
    from scipy import sparse
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = graph.shape[0]
    degree = np.asarray(graph.sum(axis=1)).ravel()
    tau = SPECTRAL_REGULARISATION * float(degree.mean())
    scale = 1 / np.sqrt(degree + tau)
    adjacency = (sparse.diags(scale) @ graph @ sparse.diags(scale)).tocsr()
    count = min(k + 1, n - 1)
    if n <= SPECTRAL_DENSE:  # exact, and cheap at this size
        values, vectors = np.linalg.eigh(adjacency.toarray() + np.outer(scale, scale) * (tau / n))
    else:

        def apply(v: np.ndarray) -> np.ndarray:
            v = v.reshape(n, -1)
            return adjacency @ v + scale[:, None] * ((tau / n) * (scale @ v))[None, :]

        operator = LinearOperator((n, n), matvec=apply, matmat=apply, dtype=np.float64)
        v0 = np.random.default_rng(seed).random(n)
        values, vectors = eigsh(operator, k=count, which="LA", v0=v0)
    order = np.argsort(-values)
    rows = vectors[:, order[:k]]
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return 1 - values[order], rows


def _louvain_k(data: np.ndarray, k_low: int, k_high: int, seed: int) -> tuple[int, dict[str, object]]:
    """The number of groups: Louvain modularity communities of a kNN graph with about sqrt(n)/2 neighbours
    (at least 5, at most 30), median over ``AUTO_K_SEEDS`` seeds; communities of one or two files do not
    count. Stability check: every seed's count within ±25 % of the median, else a warning; a choice clamped
    to ``[k_low, k_high]`` or at its upper end warns too (details["warning"] and the log)."""
    import networkx as nx

    neighbors = int(min(30, max(5, round(math.sqrt(len(data)) / 2))))
    graph = nx.from_scipy_sparse_array(knn_graph(data, neighbors))
    counts = []
    for offset in range(AUTO_K_SEEDS):
        communities = nx.community.louvain_communities(graph, resolution=AUTO_K_RESOLUTION, seed=seed + offset)
        counts.append(sum(1 for c in communities if len(c) > 2))
    estimate = int(np.median(counts))
    chosen = int(min(max(estimate, k_low), k_high))
    details: dict[str, object] = {
        "auto_k": "louvain",
        "auto_k_neighbors": neighbors,
        "auto_k_resolution": AUTO_K_RESOLUTION,
        "auto_k_counts": counts,
        "auto_k_range": [k_low, k_high],
        "auto_k_stable": bool(min(counts) >= 0.75 * estimate and max(counts) <= 1.25 * estimate),
    }
    if chosen != estimate or (chosen == k_high and k_low != k_high):
        details["warning"] = (
            f"k={chosen} sits at a bound of k_range {k_low}..{k_high} (the graph suggests {estimate}); "
            "widen k_range or set k"
        )
    elif not details["auto_k_stable"]:
        details["warning"] = f"the number of groups is unstable across seeds: {counts}; consider setting k"
    if "warning" in details:
        log.warning("auto-k: %s", details["warning"])
    return chosen, details


def spectral(
    vectors: np.ndarray,
    k: int | str,
    k_range: tuple[int, int],
    seed: int,
    neighbors: int | None = None,
    pca_dims: int = SPECTRAL_PCA_DIMS,
) -> ClusterResult:
    """Spectral clustering on a cosine kNN graph of the vectors' folder-fitted PCA.

    Above ``SPECTRAL_SAMPLE`` points the PCA, graph and clusters are fitted on a seeded sample and every other
    file takes the majority label among its ``neighbors`` nearest sampled files (default: n / (3k) within
    ``SPECTRAL_NEIGHBORS``, n the points fitted on). With ``k='auto'`` the number
    of groups comes from Louvain communities of the graph (``_louvain_k``), searched in ``k_range`` whose
    upper end grows with the folder to ceil(sqrt(n)) (at most ``AUTO_K_MAX``).
    """
    n = len(vectors)
    if n < 8:  # too few files for a graph: k-means says the same thing
        return kmeans(vectors, k, k_range, seed)
    rng = np.random.default_rng(seed)
    sample_idx = np.sort(rng.choice(n, SPECTRAL_SAMPLE, replace=False)) if n > SPECTRAL_SAMPLE else None
    fit_on = vectors[sample_idx] if sample_idx is not None else vectors
    project, details = folder_projection(fit_on, seed, pca_dims)
    data = project(fit_on)
    m = len(data)
    if k == "auto":
        high = max(k_range[1], min(AUTO_K_MAX, math.ceil(math.sqrt(n))))
        low = min(k_range[0], high)
        chosen, found = _louvain_k(data, low, min(high, m - 1), seed)
        details.update(found)
    else:
        chosen = max(1, min(int(k), m))
    if chosen <= 1:
        labels = np.zeros(n, dtype=int)
        return ClusterResult(labels, centroids_of(vectors, labels), None, 1, details)
    if neighbors is None:
        low_nn, high_nn = SPECTRAL_NEIGHBORS
        neighbors = int(min(high_nn, max(low_nn, round(m / (3 * chosen)))))
    details["neighbors"] = neighbors
    graph = knn_graph(data, neighbors)
    eigenvalues, rows = _spectral_vectors(graph, chosen, seed)
    details["eigenvalues"] = [round(float(v), 4) for v in eigenvalues[: chosen + 1]]
    sample_labels = KMeans(chosen, n_init=10, random_state=seed).fit_predict(rows)
    if sample_idx is None:
        labels = sample_labels
    else:
        labels = np.empty(n, dtype=int)
        labels[sample_idx] = sample_labels
        rest = np.setdiff1d(np.arange(n), sample_idx)
        index = NearestNeighbors(n_neighbors=neighbors, algorithm="brute").fit(data)
        for start in range(0, len(rest), 8192):
            part = rest[start : start + 8192]
            _, idx = index.kneighbors(project(vectors[part]))
            counts = np.zeros((len(part), chosen), dtype=np.int32)
            np.add.at(counts, (np.repeat(np.arange(len(part)), idx.shape[1]), sample_labels[idx].ravel()), 1)
            labels[part] = counts.argmax(axis=1)
        details["fitted_on"] = m
    labels = _relabel_by_size(labels)
    return ClusterResult(labels, centroids_of(vectors, labels), _silhouette(vectors, labels, seed), chosen, details)


def leaf_order(vectors: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """A rank per file that puts look-alikes next to each other inside each cluster.

    Dendrogram leaf order (Ward) within each cluster when it is small enough, else the order along the
    cluster's first principal component; used for the sortable hierarchical codes.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage

    ranks = np.zeros(len(vectors), dtype=int)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) <= 2:
            order = np.arange(len(members))
        elif len(members) <= 3000:
            order = leaves_list(linkage(vectors[members], method="ward"))
        else:
            centred = vectors[members] - vectors[members].mean(axis=0)
            _, _, vt = np.linalg.svd(centred[:: max(1, len(members) // 2000)], full_matrices=False)
            order = np.argsort(centred @ vt[0])
        ranks[members[order]] = np.arange(len(members))
    return ranks


def slugify(text: str) -> str:
    slug = re.sub(r"[^\w\-]+", "-", text.strip().lower(), flags=re.UNICODE).strip("-_")
    return slug[:60] or "cluster"


def name_clusters(
    labels: np.ndarray,
    category_probs: np.ndarray | None,
    categories: list[str],
    threshold: float,
) -> dict[int, tuple[str, str | None, float | None]]:
    """Maps label -> (folder name, category, confidence).

    A cluster takes the name of the category with the highest mean zero-shot probability over its files when
    that mean passes ``threshold``; otherwise ``cluster-NN``. Noise is ``unsorted``. Names are unique.
    """
    names: dict[int, tuple[str, str | None, float | None]] = {}
    used: set[str] = set()
    for label in sorted(np.unique(labels)):
        if label < 0:
            names[int(label)] = (UNSORTED, None, None)
            used.add(UNSORTED)
            continue
        name, category, confidence = f"cluster-{label:02d}", None, None
        if category_probs is not None and categories:
            mean = category_probs[labels == label].mean(axis=0)
            best = int(mean.argmax())
            confidence = float(mean[best])
            if confidence >= threshold:
                category = categories[best]
                name = slugify(category)
        base, suffix = name, 2
        while name in used:
            name = f"{base}-{suffix}"
            suffix += 1
        used.add(name)
        names[int(label)] = (name, category, confidence)
    return names


def cluster_embeddings(
    embeddings: pd.DataFrame,
    vectors: np.ndarray,
    method: str,
    k: int | str,
    k_range: tuple[int, int],
    min_cluster_size: int,
    categories: list[str],
    threshold: float,
    seed: int,
) -> tuple[pd.DataFrame, ClusterResult]:
    """Clusters, names and codes every file; also marks exact-duplicate groups by content hash."""
    if method == "spectral":
        result = spectral(vectors, k, k_range, seed)
    elif method == "kmeans":
        result = kmeans(vectors, k, k_range, seed)
    elif method == "hierarchical":
        result = hierarchical(vectors, k, k_range, seed)
    elif method == "hdbscan":
        result = hdbscan_clusters(vectors, min_cluster_size, seed)
    else:
        raise ValueError(f"unknown clustering method {method!r}")
    labels = np.asarray(result.labels, dtype=int)
    probs = None
    if "category_probs" in embeddings and embeddings["category_probs"].notna().all() and len(embeddings):
        probs = np.stack(embeddings["category_probs"].to_numpy())
    names = name_clusters(labels, probs, categories, threshold)
    ranks = leaf_order(vectors, labels, seed) if len(vectors) else np.zeros(0, dtype=int)
    codes = [f"{'nn' if label < 0 else f'{label:02d}'}-{rank:05d}" for label, rank in zip(labels, ranks)]
    known = [label for label in np.unique(labels) if 0 <= label < len(result.centroids)]
    centroids = {label: result.centroids[label] for label in known}
    table = _cluster_table(embeddings, vectors, labels, names, codes, centroids)
    table["method"] = method
    return table, result


def _cluster_table(
    embeddings: pd.DataFrame,
    vectors: np.ndarray,
    labels: np.ndarray,
    names: dict[int, tuple[str, str | None, float | None]],
    codes: list[str],
    centroids: dict[int, np.ndarray],
) -> pd.DataFrame:
    """The per-file clusters table shared by a fresh clustering and a stable update: names, sizes, codes,
    distance to the own centroid (NaN for noise or a label without one) and exact-duplicate groups."""
    sizes = pd.Series(labels).value_counts()
    table = pd.DataFrame(
        {
            "relative_path": embeddings["relative_path"].to_numpy(),
            "content_hash": embeddings["content_hash"].to_numpy(),
            "cluster_id": labels,
            "cluster_name": [names[int(label)][0] for label in labels],
            "cluster_category": [names[int(label)][1] for label in labels],
            "category_confidence": [names[int(label)][2] for label in labels],
            "cluster_size": [int(sizes[label]) for label in labels],
            "hier_code": codes,
        }
    )
    distance = np.full(len(labels), np.nan, dtype=np.float32)
    for label, centroid in centroids.items():
        members = labels == label
        distance[members] = np.linalg.norm(vectors[members] - centroid, axis=1)
    table["distance_to_centroid"] = distance
    counts = table.groupby("content_hash")["relative_path"].transform("count")
    table["duplicate_group"] = np.where(counts > 1, table["content_hash"], None)
    return table


def update_clusters(
    embeddings: pd.DataFrame,
    vectors: np.ndarray,
    previous: pd.DataFrame,
    method: str,
    signature: str,
    drift_threshold: float,
) -> tuple[pd.DataFrame | None, str]:
    """Keeps existing clusters stable across re-sorts: known files keep their cluster id, name and code, and
    new files join the nearest existing cluster.

    Returns (None, why) when a full re-cluster is the honest answer: another method, nothing in common, or
    drift, i.e. the share of added plus removed files above ``drift_threshold`` (a fifth by default: past
    that, the old centroids no longer describe the folder). For HDBSCAN a new file joins its nearest cluster
    only when it is no farther from the centroid than that cluster's farthest member; otherwise it is noise.
    """
    if "settings" not in previous or not len(previous) or set(previous["settings"]) != {signature}:
        return None, "clustering settings changed or no earlier clusters"
    earlier = previous.drop_duplicates("content_hash").set_index("content_hash")
    known = embeddings["content_hash"].isin(earlier.index).to_numpy()
    if not known.any():
        return None, "no file in common with the earlier clusters"
    removed = (~previous["content_hash"].isin(set(embeddings["content_hash"]))).sum()
    changed = int((~known).sum() + removed)
    share = changed / max(1, len(previous))
    if share > drift_threshold:
        return None, f"drift: {changed} of {len(previous)} files added or removed ({share:.0%} > {drift_threshold:.0%})"
    rows = earlier.loc[embeddings["content_hash"].to_numpy()[known]]
    labels = np.full(len(embeddings), -1, dtype=int)
    labels[known] = rows["cluster_id"].to_numpy()
    ids = sorted(i for i in np.unique(labels[known]) if i >= 0)
    names = {
        int(r.cluster_id): (r.cluster_name, r.cluster_category, r.category_confidence)
        for r in previous.drop_duplicates("cluster_id").itertuples(index=False)
    }
    codes = np.empty(len(embeddings), dtype=object)
    codes[known] = rows["hier_code"].to_numpy()
    if (~known).any() and ids:
        centroids = np.stack([vectors[known][labels[known] == i].mean(axis=0) for i in ids])
        nearest = assign_nearest(vectors[~known], centroids)
        new_labels = np.array(ids)[nearest]
        if method == "hdbscan":
            radius = {
                i: np.linalg.norm(vectors[known][labels[known] == i] - centroids[n], axis=1).max()
                for n, i in enumerate(ids)
            }
            distance = np.linalg.norm(vectors[~known] - centroids[nearest], axis=1)
            new_labels = np.where(distance <= np.array([radius[i] for i in new_labels]), new_labels, -1)
        labels[~known] = new_labels
        next_rank: dict[int, int] = {}
        for code, label in zip(codes[known], labels[known]):
            next_rank[label] = max(next_rank.get(label, 0), int(code.split("-")[1]) + 1)
        for position in np.flatnonzero(~known):
            label = labels[position]
            rank = next_rank.get(label, 0)
            next_rank[label] = rank + 1
            codes[position] = f"{'nn' if label < 0 else f'{label:02d}'}-{rank:05d}"
    elif (~known).any():
        labels[~known] = -1
        codes[~known] = [f"nn-{i:05d}" for i in range(int((~known).sum()))]
    names.setdefault(-1, (UNSORTED, None, None))
    centroids = dict(zip(sorted(i for i in np.unique(labels) if i >= 0), centroids_of(vectors, labels)))
    table = _cluster_table(embeddings, vectors, labels, names, list(codes), centroids)
    table["method"] = method
    table["settings"] = signature
    return table, f"kept {int(known.sum())} files in place, assigned {int((~known).sum())} new"
