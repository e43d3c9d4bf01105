"""Hand corrections: made against a clusters table, stored atomically, applied by hash and anchors, kept by the
Dagster-free clusters stage across an incremental re-sort with a new file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neural_sorter import corrections as corr
from neural_sorter.stages.clusters import ClusterOptions, build_clusters
from neural_sorter.store import Store


def clusters_table(sizes=(4, 4, 4)) -> pd.DataFrame:
    """Clusters 0..n-1 with ``sizes`` files each: hashes h00.., paths c<cluster>/f<n>.png, codes and distances."""
    rows = []
    n = 0
    for cid, size in enumerate(sizes):
        for rank in range(size):
            rows.append(
                {
                    "relative_path": f"c{cid}/f{n}.png",
                    "content_hash": f"h{n:02d}",
                    "cluster_id": cid,
                    "cluster_name": f"cluster-{cid:02d}",
                    "cluster_category": None,
                    "category_confidence": np.nan,
                    "cluster_size": size,
                    "hier_code": f"{cid:02d}-{rank:05d}",
                    "distance_to_centroid": np.float32(rank / 10),
                    "duplicate_group": None,
                }
            )
            n += 1
    return pd.DataFrame(rows)


def members(table: pd.DataFrame, name: str) -> set[str]:
    return set(table.loc[table["cluster_name"] == name, "content_hash"])


def test_rename_merge_move_apply_in_order_and_idempotently():
    table = clusters_table()
    fixes = [
        corr.rename(table, 0, "dogs"),
        corr.merge(table, [1], into=2),
        corr.move(table, ["h00", "h05"], to=2),
    ]
    out = corr.apply_corrections(table, fixes)
    assert set(out["cluster_name"]) == {"dogs", "cluster-02"}
    assert members(out, "dogs") == {"h01", "h02", "h03"}
    assert members(out, "cluster-02") == {f"h{i:02d}" for i in range(4, 12)} | {"h00"}
    assert set(out.loc[out["cluster_name"] == "cluster-02", "cluster_id"]) == {2}
    assert out.groupby("cluster_id")["cluster_size"].first().to_dict() == {0: 3, 2: 9}
    codes = out.loc[out["cluster_id"] == 2, "hier_code"]
    assert codes.is_unique and all(c.startswith("02-") for c in codes)  # moved files sort after the target's own
    assert out.set_index("content_hash").at["h00", "correction"] == "rename,move"
    assert out.set_index("content_hash").at["h05", "correction"] == "merge,move"
    assert table["cluster_name"].str.startswith("cluster-").all()  # the input is untouched
    again = corr.apply_corrections(out, fixes)
    pd.testing.assert_frame_equal(again, out)


def test_corrections_follow_content_hashes_and_anchors_through_a_recluster():
    table = clusters_table()
    fixes = [corr.rename(table, 1, "boats"), corr.move(table, ["h00"], to=2), corr.merge(table, [0], into=1)]
    # a full re-cluster later: same files, renumbered clusters, automatic names again, a source file renamed,
    # and one anchor of the old cluster 1 now sits elsewhere
    recluster = clusters_table()
    recluster["cluster_id"] = recluster["cluster_id"].map({0: 2, 1: 0, 2: 1})
    recluster["cluster_name"] = [f"cluster-{c:02d}" for c in recluster["cluster_id"]]
    recluster.loc[recluster["content_hash"] == "h04", ["cluster_id", "cluster_name"]] = [1, "cluster-01"]
    recluster.loc[recluster["content_hash"] == "h00", "relative_path"] = "renamed/elsewhere.png"
    out = corr.apply_corrections(recluster, fixes)
    assert members(out, "boats") == {"h01", "h02", "h03", "h05", "h06", "h07"}  # old 1 (now 0) + merged old 0
    moved = out.set_index("content_hash").loc["h00"]
    assert moved["cluster_name"] == "cluster-01" and moved["relative_path"] == "renamed/elsewhere.png"


def test_new_cluster_unsorted_and_name_clashes():
    table = clusters_table((3, 3))
    made = corr.move(table, ["h00", "h01"], new_name="  my / picks ")
    assert made["to"]["name"] == "my - picks"
    out = corr.apply_corrections(table, [made, corr.move(table, ["h05"], to=-1)])
    assert members(out, "my - picks") == {"h00", "h01"} and set(
        out.loc[out["cluster_name"] == "my - picks", "cluster_id"]
    ) == {2}
    assert out.set_index("content_hash").at["h05", "cluster_id"] == -1
    assert out.set_index("content_hash").at["h05", "hier_code"].startswith("nn-")
    with pytest.raises(corr.CorrectionError, match="merge them"):
        corr.rename(table, 0, "cluster-01")
    with pytest.raises(corr.CorrectionError, match="empty"):
        corr.rename(table, 0, "  ")
    with pytest.raises(corr.CorrectionError, match="no files"):
        corr.move(table, [], to=1)
    with pytest.raises(corr.CorrectionError, match="other cluster"):
        corr.merge(table, [1], into=1)
    # an automatic name that happens to equal a hand-given one steps aside rather than sharing a folder
    clash = clusters_table((3, 3))
    clash.loc[clash["cluster_id"] == 1, "cluster_name"] = "dogs"
    out = corr.apply_corrections(clash, [corr.rename(table, 0, "dogs")])
    assert members(out, "dogs") == {"h00", "h01", "h02"} and members(out, "dogs-2") == {"h03", "h04", "h05"}


def test_distances_recomputed_for_changed_clusters_with_vectors():
    table = clusters_table((2, 2))
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    out = corr.apply_corrections(table, [corr.move(table, ["h00"], to=1)], vectors=vectors)
    assert out.loc[1, "distance_to_centroid"] == 0.0  # alone in cluster 0 now
    assert out.loc[0, "distance_to_centroid"] > 0.5  # far from its new cluster's centre


def test_store_round_trip_is_atomic(tmp_path):
    store = Store(tmp_path / "store")
    table = clusters_table()
    assert corr.load_corrections(store, "k") == [] and corr.corrections_stamp(store, "k") is None
    first = corr.add_correction(store, "k", corr.rename(table, 0, "dogs"))
    both = corr.add_correction(store, "k", corr.move(table, ["h04"], to=0))
    assert corr.load_corrections(store, "k") == both and both[0] == first[0]
    assert corr.corrections_path(store, "k") == store.root / "corrections" / "k.json"
    assert [p.name for p in (tmp_path / "store" / "corrections").iterdir()] == ["k.json"]  # no temporaries left
    assert corr.remove_correction(store, "k", both[0]["id"]) == both[1:]
    assert [corr.describe(c) for c in both] == ["renamed cluster-00 to dogs", "moved 1 file to cluster-00"]


def blob_embeddings(per_cluster: int = 10, extra: int = 0, seed: int = 0) -> pd.DataFrame:
    """Three well-separated blobs of unit vectors (plus ``extra`` new files near the first blob)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:3] * 5
    vectors, paths = [], []
    for c, centre in enumerate(centres):
        for i in range(per_cluster):
            vectors.append(centre + rng.normal(0, 0.3, 8))
            paths.append(f"blob{c}/{i:02d}.png")
    for i in range(extra):
        vectors.append(centres[0] + rng.normal(0, 0.3, 8))
        paths.append(f"new/{i:02d}.png")
    unit = [v / np.linalg.norm(v) for v in np.asarray(vectors, dtype=np.float32)]
    return pd.DataFrame(
        {
            "relative_path": paths,
            "content_hash": [f"hash-{p}" for p in paths],
            "kind": "image",
            "vector": unit,
            "backend": "cnn",
            "model_id": "test-model",
            "frames": 1,
            "category_probs": None,
            "top_category": None,
            "top_probability": np.nan,
            "reused": False,
        }
    )


def test_a_correction_survives_an_incremental_resort_with_a_new_file():
    options = ClusterOptions(method="kmeans", k=3)
    embeddings = blob_embeddings()
    first, _ = build_clusters(embeddings, None, options, categories=[], seed=0)
    by_path = first.set_index("relative_path")
    blob0, blob1 = int(by_path.at["blob0/00.png", "cluster_id"]), int(by_path.at["blob1/00.png", "cluster_id"])
    moved = str(by_path.at["blob2/00.png", "content_hash"])
    alone = str(by_path.at["blob1/09.png", "content_hash"])
    fixes = [
        corr.rename(first, blob0, "ones"),
        corr.move(first, [moved], to=blob1),
        corr.move(first, [alone], new_name="solo"),
    ]
    corrected, report = build_clusters(embeddings, first, options, categories=[], seed=0, corrections=fixes)
    assert report.metadata["incremental"] and report.metadata["corrections"] == 3
    assert "renamed" in report.metadata["corrections_applied"].text

    grown = blob_embeddings(extra=1)  # one new file (1 of 30: no drift), near the renamed cluster
    again, report = build_clusters(grown, corrected, options, categories=[], seed=0, corrections=fixes)
    assert report.metadata["incremental"], report.metadata["reason"]
    rows = again.set_index("relative_path")
    assert rows.at["new/00.png", "cluster_name"] == "ones"  # joined the renamed cluster under its new name
    assert set(again.loc[again["cluster_name"] == "ones", "relative_path"]) == {
        *(f"blob0/{i:02d}.png" for i in range(10)),
        "new/00.png",
    }
    assert rows.at["blob2/00.png", "cluster_id"] == blob1  # the moved file stays moved
    assert rows.at["blob2/00.png", "correction"] == "move" and rows.at["blob0/03.png", "correction"] == "rename"
    assert rows.at["blob1/09.png", "cluster_name"] == "solo" and rows.at["blob1/09.png", "cluster_id"] == 3
    assert report.metadata["corrected_files"] == 13 and report.metadata["clusters"] == 4
    # with no corrections the column is still there, empty (the documented schema)
    plain, _ = build_clusters(embeddings, None, options, categories=[], seed=0)
    assert "correction" in plain and plain["correction"].isna().all()
