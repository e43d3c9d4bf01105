"""The store: partial reads, streamed thumbnails, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neural_sorter.decoding.frames import FRAME_COLUMNS
from neural_sorter.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A decoded_frames partition of 5,000 rows in row groups of 2,048, with one failed file."""
    rows = [
        {
            "relative_path": f"f{n:05d}.jpg",
            "content_hash": f"h{n // 2}",
            "kind": "image",
            "frame_index": 0,
            "timestamp": 0.0,
            "width": 8,
            "height": 8,
            "thumbnail": f"jpeg-{n // 2}".encode(),
            "error": None,
        }
        for n in range(5000)
    ]  # pairs of files share content, as duplicates do
    rows.append(
        {**rows[0], "relative_path": "broken.jpg", "content_hash": "bad", "thumbnail": None, "error": "truncated"}
    )
    path = Store(tmp_path).path("decoded_frames", "p")
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows, columns=FRAME_COLUMNS).to_parquet(path, row_group_size=2048)
    return tmp_path


def test_read_asset_reads_only_the_columns_asked_for(store: Path) -> None:
    index = Store(store).read("decoded_frames", "p", columns=["relative_path", "error"])
    assert list(index.columns) == ["relative_path", "error"] and len(index) == 5001
    some = Store(store).read("decoded_frames", "p", filters=[("relative_path", "in", ["f00003.jpg"])])
    assert list(some["thumbnail"]) == [b"jpeg-1"]
    assert Store(store).read("decoded_frames", "other") is None


def keys(*pairs: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["content_hash", "frame_index"])


def test_stored_thumbnails_come_in_the_order_asked_for(store: Path) -> None:
    in_order = keys(*[(f"h{n}", 0) for n in range(0, 2500, 3)])
    assert list(Store(store).iter_thumbnails("p", in_order)) == [f"jpeg-{n}".encode() for n in range(0, 2500, 3)]
    backwards = keys(("h2400", 0), ("h7", 0), ("h1500", 0))  # against the stored order: still right
    assert list(Store(store).iter_thumbnails("p", backwards, batch_rows=100)) == [b"jpeg-2400", b"jpeg-7", b"jpeg-1500"]
    repeated = keys(("h3", 0), ("h9", 0), ("h3", 0))  # duplicate files share one stored frame
    assert list(Store(store).iter_thumbnails("p", repeated, batch_rows=100)) == [b"jpeg-3", b"jpeg-9", b"jpeg-3"]


def test_a_missing_thumbnail_is_an_error_not_a_short_stream(store: Path) -> None:
    with pytest.raises(KeyError, match="bad"):
        list(Store(store).iter_thumbnails("p", keys(("h1", 0), ("bad", 0))))


def test_write_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    store = Store(tmp_path)
    table = pd.DataFrame({"a": [1, 2, 3]})
    path = store.write("clusters", "k", table)
    assert path == tmp_path / "clusters" / "k.parquet"
    assert store.read("clusters", "k")["a"].tolist() == [1, 2, 3]
    assert store.keys("clusters") == ["k"]
    assert sorted(p.name for p in (tmp_path / "clusters").iterdir()) == ["k.parquet"]


def test_failed_write_keeps_the_previous_table(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("clusters", "k", pd.DataFrame({"a": [1]}))

    class Unwritable:
        pass

    with pytest.raises((TypeError, ValueError)):  # pyarrow cannot convert the object
        store.write("clusters", "k", pd.DataFrame({"a": [Unwritable()]}))
    assert store.read("clusters", "k")["a"].tolist() == [1]
    assert sorted(p.name for p in (tmp_path / "clusters").iterdir()) == ["k.parquet"]


def test_missing_columns_are_left_out(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("clusters", "k", pd.DataFrame({"a": [1]}))
    assert list(store.read("clusters", "k", columns=["a", "not_there"]).columns) == ["a"]


@pytest.mark.parametrize("damage", [b"", b"PAR1 truncated", b"\x00" * 64])
def test_damaged_table_is_set_aside_named_and_rebuilt(tmp_path: Path, damage: bytes, caplog) -> None:
    store = Store(tmp_path)
    store.write("clusters", "k", pd.DataFrame({"a": [1]}))
    store.path("clusters", "k").write_bytes(damage)  # what a power cut can leave
    with caplog.at_level("WARNING"):
        assert store.read("clusters", "k") is None  # the stage then rebuilds it from scratch
    kept = [p.name for p in (tmp_path / "clusters").iterdir()]
    assert len(kept) == 1 and kept[0].startswith("k.parquet.damaged-")
    assert "clusters" in caplog.text and "damaged" in caplog.text
    store.write("clusters", "k", pd.DataFrame({"a": [2]}))
    assert store.read("clusters", "k")["a"].tolist() == [2]
