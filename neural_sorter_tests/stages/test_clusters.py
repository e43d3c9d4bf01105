"""The clusters stage's report: the gallery shows distinct pictures, not copies of one."""

import io

import pandas as pd
from PIL import Image

from neural_sorter.stages.clusters import _gallery


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "JPEG")
    return buffer.getvalue()


def test_gallery_shows_one_picture_per_duplicate_group():
    table = pd.DataFrame(
        {
            "relative_path": [f"copy-{n}.jpg" for n in range(10)] + ["other.jpg"],
            "cluster_name": "beach",
            "distance_to_centroid": [0.0] * 10 + [0.5],
            "is_representative": [True] + [False] * 9 + [True],
        }
    )
    asked: list[str] = []

    def first_thumbnails(paths: list[str]) -> dict[str, bytes]:
        asked.extend(paths)
        return {p: jpeg() for p in paths}

    markdown = _gallery(table, table.groupby("cluster_name").size(), first_thumbnails)
    assert asked == ["copy-0.jpg", "other.jpg"]
    assert "**beach** (11 files)" in markdown


def test_a_resort_measures_only_new_files_and_keeps_groups_and_flags():
    import numpy as np

    from neural_sorter.stages.clusters import ClusterOptions, build_clusters

    rng = np.random.default_rng(0)
    pictures = {}
    for n in range(12):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).resize((128, 128)).save(buffer, "JPEG")
        pictures[f"p{n:02d}.jpg"] = buffer.getvalue()
    pictures["p00-copy.jpg"] = pictures["p00.jpg"]

    def tables(paths):
        vectors = rng.normal(size=(len(paths), 16)).astype(np.float32)
        vectors[paths.index("p00-copy.jpg")] = vectors[paths.index("p00.jpg")]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        hashes = ["h00" if p.startswith("p00") else f"h{p}" for p in paths]
        embeddings = pd.DataFrame(
            {
                "relative_path": paths,
                "content_hash": hashes,
                "model_id": "m",
                "category_probs": None,
                "vector": list(vectors),
            }
        )
        manifest = pd.DataFrame(
            {
                "relative_path": paths,
                "content_hash": hashes,
                "kind": "image",
                "size": 1000,
                "mtime_ns": 1,
                "width": 128,
                "height": 128,
            }
        )
        return embeddings, manifest

    asked: list[set[str]] = []

    def thumbnails(paths):
        asked.append(set(paths))
        return [(p, pictures[p]) for p in sorted(paths)]

    options = ClusterOptions(method="kmeans", k=3)
    first_paths = sorted(pictures)
    embeddings, manifest = tables(first_paths)
    first, _ = build_clusters(
        embeddings, None, options, categories=[], seed=0, manifest=manifest, thumbnails=thumbnails
    )
    assert asked[-1] == set(first_paths)
    assert first.set_index("relative_path").at["p00-copy.jpg", "duplicate_tier"] == "exact"

    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), "black").save(buffer, "JPEG")
    pictures["blank.jpg"] = buffer.getvalue()
    embeddings, manifest = tables(sorted(pictures))
    again, report = build_clusters(
        embeddings, first, options, categories=[], seed=0, manifest=manifest, thumbnails=thumbnails
    )
    assert asked[-1] == {"blank.jpg"}, "only the new file's thumbnail is read and measured"
    assert report.metadata["thumbnails_measured"] == 1
    rows = again.set_index("relative_path")
    assert rows.at["p00-copy.jpg", "duplicate_group"] == rows.at["p00.jpg", "duplicate_group"] is not None
    assert "low_information" in rows.at["blank.jpg", "flags"]
