"""Where each file goes: duplicate copies and flagged files, decided before the planner sees them."""

import pandas as pd
import pytest

from neural_sorter.stages.reorganized_tree import placement_folders


@pytest.fixture
def clusters() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "relative_path": ["a.jpg", "a-small.jpg", "a-copy.jpg", "b.jpg", "dark.jpg"],
            "content_hash": ["h1", "h2", "h1", "h3", "h4"],
            "cluster_name": ["beach", "beach", "beach", "city", "city"],
            "duplicate_group": ["dup-h1", "dup-h1", "dup-h1", None, None],
            "is_representative": [True, False, False, True, True],
            "review_reason": [None, None, None, None, "too_dark"],
        }
    )


def folders(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["relative_path"], table["cluster_name"]))


def test_keep_places_every_copy_in_its_cluster(clusters):
    assert folders(placement_folders(clusters, "keep")) == folders(clusters)


def test_separate_puts_the_other_copies_in_their_group_folder(clusters):
    placed = folders(placement_folders(clusters, "separate"))
    assert placed["a.jpg"] == "beach"
    assert placed["a-small.jpg"] == placed["a-copy.jpg"] == "_duplicates/dup-h1"
    assert placed["b.jpg"] == "city"


def test_skip_places_only_representatives(clusters):
    assert sorted(placement_folders(clusters, "skip")["relative_path"]) == ["a.jpg", "b.jpg", "dark.jpg"]


def test_review_sends_flagged_files_to_their_reason(clusters):
    assert folders(placement_folders(clusters, "keep", review=True))["dark.jpg"] == "_review/too_dark"
    assert folders(placement_folders(clusters, "keep", review=False))["dark.jpg"] == "city"


def test_tables_from_before_duplicates_place_every_file():
    old = pd.DataFrame({"relative_path": ["x.jpg"], "content_hash": ["h"], "cluster_name": ["c"]})
    assert folders(placement_folders(old, "skip", review=True)) == {"x.jpg": "c"}
