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
