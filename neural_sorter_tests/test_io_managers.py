"""The Parquet store: partial reads and streamed thumbnails."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neural_sorter.decoding.frames import FRAME_COLUMNS
from neural_sorter.io_managers import asset_path, iter_stored_thumbnails, read_asset


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A decoded_frames partition of 5,000 rows in row groups of 2,048, with one failed file."""
    rows = [
        {"relative_path": f"f{n:05d}.jpg", "content_hash": f"h{n // 2}", "kind": "image", "frame_index": 0,
         "timestamp": 0.0, "width": 8, "height": 8, "thumbnail": f"jpeg-{n // 2}".encode(), "error": None}
        for n in range(5000)
    ]  # pairs of files share content, as duplicates do
    rows.append({**rows[0], "relative_path": "broken.jpg", "content_hash": "bad", "thumbnail": None,
                 "error": "truncated"})
    path = asset_path(tmp_path, "decoded_frames", "p")
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows, columns=FRAME_COLUMNS).to_parquet(path, row_group_size=2048)
    return tmp_path


def test_read_asset_reads_only_the_columns_asked_for(store: Path) -> None:
    index = read_asset(store, "decoded_frames", "p", columns=["relative_path", "error"])
    assert list(index.columns) == ["relative_path", "error"] and len(index) == 5001
    some = read_asset(store, "decoded_frames", "p", filters=[("relative_path", "in", ["f00003.jpg"])])
    assert list(some["thumbnail"]) == [b"jpeg-1"]
    assert read_asset(store, "decoded_frames", "other") is None


def keys(*pairs: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["content_hash", "frame_index"])


def test_stored_thumbnails_come_in_the_order_asked_for(store: Path) -> None:
    in_order = keys(*[(f"h{n}", 0) for n in range(0, 2500, 3)])
    assert list(iter_stored_thumbnails(store, "p", in_order)) == [f"jpeg-{n}".encode() for n in range(0, 2500, 3)]
    backwards = keys(("h2400", 0), ("h7", 0), ("h1500", 0))  # against the stored order: still right
    assert list(iter_stored_thumbnails(store, "p", backwards, batch_rows=100)) == [b"jpeg-2400", b"jpeg-7",
                                                                                    b"jpeg-1500"]
    repeated = keys(("h3", 0), ("h9", 0), ("h3", 0))  # duplicate files share one stored frame
    assert list(iter_stored_thumbnails(store, "p", repeated, batch_rows=100)) == [b"jpeg-3", b"jpeg-9", b"jpeg-3"]


def test_a_missing_thumbnail_is_an_error_not_a_short_stream(store: Path) -> None:
    with pytest.raises(KeyError, match="bad"):
        list(iter_stored_thumbnails(store, "p", keys(("h1", 0), ("bad", 0))))
