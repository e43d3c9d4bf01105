import numpy as np
import pandas as pd
import pytest

from neural_sorter import clustering
from neural_sorter.clustering import cluster_embeddings, name_clusters
from neural_sorter.projection import project_3d


def blobs(n_per: int = 30, centers: int = 4, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, dim)) * 5
    x = np.concatenate([m + rng.normal(size=(n_per, dim)) * 0.3 for m in means]).astype(np.float32)
    return x, np.repeat(np.arange(centers), n_per)


def table_for(x: np.ndarray, hashes: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "relative_path": [f"f{i:03d}.jpg" for i in range(len(x))],
            "content_hash": hashes or [f"h{i}" for i in range(len(x))],
            "vector": list(x),
            "category_probs": None,
        }
    )


def agree(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


@pytest.mark.parametrize("method", ["kmeans", "hierarchical"])
def test_auto_k_recovers_separated_groups(method):
    x, truth = blobs()
    table, result = cluster_embeddings(table_for(x), x, method, "auto", (2, 8), 5, [], 0.5, 0)
    assert result.chosen_k == 4
    assert agree(table["cluster_id"].to_numpy(), truth) > 0.99
    assert set(table["cluster_name"]) == {f"cluster-{i:02d}" for i in range(4)}


def test_hierarchical_on_a_sample_never_builds_the_full_matrix(monkeypatch):
    monkeypatch.setattr(clustering, "HIERARCHICAL_SAMPLE", 40)
    x, truth = blobs(n_per=50)
    result = clustering.hierarchical(x, 4, (2, 8), 0)
    assert result.details["fitted_on"] == 40
    assert agree(result.labels, truth) > 0.99


def test_hdbscan_noise_goes_to_unsorted():
    x, _ = blobs(n_per=25, centers=3)
    outlier = np.full((1, x.shape[1]), 80.0, dtype=np.float32)
    x = np.vstack([x, outlier])
    table, result = cluster_embeddings(table_for(x), x, "hdbscan", "auto", (2, 8), 5, [], 0.5, 0)
    assert table["cluster_name"].iloc[-1] == "unsorted"
    assert result.chosen_k == 3


def test_clusters_named_by_confident_category_only():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5], [0.45, 0.55]])
    names = name_clusters(labels, probs, ["red car", "cat"], threshold=0.6)
    assert names[0][0] == "red-car" and names[0][1] == "red car"
    assert names[1][0] == "cluster-01" and names[1][1] is None


def test_same_category_twice_gets_unique_names():
    labels = np.array([0, 1])
    probs = np.array([[0.9, 0.1], [0.95, 0.05]])
    names = name_clusters(labels, probs, ["cat", "dog"], threshold=0.5)
    assert {names[0][0], names[1][0]} == {"cat", "cat-2"}


def test_duplicates_and_sortable_codes():
    x, _ = blobs(n_per=5, centers=2)
    hashes = [f"h{i}" for i in range(len(x))]
    hashes[3] = hashes[1]
    table, _ = cluster_embeddings(table_for(x, hashes), x, "kmeans", 2, (2, 4), 5, [], 0.5, 0)
    assert table["duplicate_group"].notna().sum() == 2
    assert table["hier_code"].str.match(r"^\d\d-\d{5}$").all()
    for _, group in table.groupby("cluster_id"):
        assert sorted(int(c.split("-")[1]) for c in group["hier_code"]) == list(range(len(group)))


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
def test_projection_is_seeded_and_3d(method):
    x, _ = blobs(n_per=15, centers=2)
    a, used = project_3d(x, method, 0)
    b, _ = project_3d(x, method, 0)
    assert a.shape == (30, 3) and used == method
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_tiny_inputs_do_not_crash():
    for n in (0, 1, 2):
        x = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
        table, _ = cluster_embeddings(table_for(x), x, "kmeans", "auto", (2, 8), 5, [], 0.5, 0)
        assert len(table) == n
        coords, _ = project_3d(x, "umap", 0)
        assert coords.shape == (n, 3)


def test_spectral_is_the_default_and_a_method():
    assert clustering.DEFAULT_METHOD == "spectral"
    assert set(clustering.METHODS) >= {"spectral", "kmeans", "hierarchical", "hdbscan"}


def test_spectral_auto_k_recovers_separated_groups():
    x, truth = blobs(n_per=40, centers=6, dim=32)
    table, result = cluster_embeddings(table_for(x), x, "spectral", "auto", (2, 12), 5, [], 0.5, 0)
    assert result.chosen_k == 6
    assert agree(table["cluster_id"].to_numpy(), truth) > 0.99
    assert result.details["auto_k"] == "louvain" and result.details["auto_k_stable"]
    assert "warning" not in result.details


def test_spectral_auto_k_range_grows_with_the_folder():
    # 15 groups with k_range (2, 8): the upper end grows to ceil(sqrt(n)) = 18, so 15 is found, no warning.
    x, truth = blobs(n_per=20, centers=15, dim=48)
    result = clustering.spectral(x, "auto", (2, 8), 0)
    assert result.chosen_k == 15
    assert result.details["auto_k_range"] == [2, 18]
    assert agree(result.labels, truth) > 0.95


def test_spectral_auto_k_warns_at_a_bound(caplog):
    x, _ = blobs(n_per=20, centers=12, dim=48)
    with caplog.at_level("WARNING"):
        result = clustering.spectral(x, "auto", (2, 3), 0)  # grows to 16 only: pin it lower
        clamped = clustering._louvain_k(clustering.folder_projection(x, 0, 64)[0](x), 2, 5, 0)
    assert result.chosen_k == 12
    assert clamped[0] == 5 and "bound" in clamped[1]["warning"]
    assert any("bound" in record.message for record in caplog.records)


def test_spectral_on_a_sample_labels_every_point(monkeypatch):
    monkeypatch.setattr(clustering, "SPECTRAL_SAMPLE", 120)
    x, truth = blobs(n_per=60, centers=4, dim=16)
    result = clustering.spectral(x, 4, (2, 8), 0)
    assert result.details["fitted_on"] == 120
    assert len(result.labels) == len(x)
    assert agree(result.labels, truth) > 0.99


def test_spectral_never_builds_a_dense_graph():
    x, _ = blobs(n_per=30, centers=3)
    graph = clustering.knn_graph(clustering.folder_projection(x, 0, 64)[0](x), 5)
    assert graph.format == "csr" and graph.nnz <= 2 * 5 * len(x)
    assert (graph != graph.T).nnz == 0


def test_assign_nearest_matches_brute_force():
    rng = np.random.default_rng(1)
    x, centroids = rng.normal(size=(50, 8)), rng.normal(size=(5, 8))
    expected = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(clustering.assign_nearest(x, centroids), expected)


def test_spectral_tiny_inputs_do_not_crash():
    for n in (0, 1, 2, 5, 9):
        x = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
        table, _ = cluster_embeddings(table_for(x), x, "spectral", "auto", (2, 8), 5, [], 0.5, 0)
        assert len(table) == n
