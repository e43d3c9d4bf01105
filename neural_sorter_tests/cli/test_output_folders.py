"""The output tree reads well (issue 12): ``OUT/<source folder name>/<cluster>/``, through the real CLI on real
images. A tree sorted by an older version (``OUT/<partition key>/``) is relocated by the next sort through the
normal planner and one ``undo`` puts it back; a second folder of the same name gets ``photos-2``, also after
the first one's folder was emptied by an undo (the name is recorded, not guessed from the disk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neural_sorter.inventory import content_hash
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("neural-sorter"))
SORT = ("--backend", "cnn", "--projection", "pca", "--k", "3", "--json")


@pytest.fixture(autouse=True)
def _needs_images():
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")


def sort(*args: str, home: Path) -> dict:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) if args[0] == "sort" else {}


def layout(out: Path) -> dict[str, str]:
    """{path below OUT: content hash} of every placed file."""
    return {
        str(p.relative_to(out)): content_hash(p)
        for p in out.rglob("*")
        if p.is_file() and ".neural-sorter" not in p.relative_to(out).parts
    }


def as_older_version(out: Path, home: Path, key: str, name: str) -> None:
    """Turns a tree sorted into ``OUT/<name>/`` into what versions before this change left: the files in
    ``OUT/<partition key>/``, the records naming those paths, and no folder name in the registry."""
    (out / name).rename(out / key)
    for record in (out / ".neural-sorter").rglob("*.csv"):
        record.write_text(record.read_text().replace(f"{out / name}/", f"{out / key}/"))
    registry = home / "store" / "sources.json"
    entries = json.loads(registry.read_text())
    del entries[key]["output_folders"]
    registry.write_text(json.dumps(entries))


def test_tree_named_after_the_source_older_trees_relocate_undo_restores_same_names_get_suffixes(tmp_path):
    first = copy_images(tmp_path / "a" / "photos", 12, classes=("birds", "fish", "fruit"))
    second = copy_images(tmp_path / "b" / "photos", 6, classes=("flowers", "vehicles"))
    out, home = tmp_path / "OUT", tmp_path / "home"
    originals = {str(p.relative_to(first)): content_hash(p) for p in first.rglob("*.png")}

    summary = sort("sort", str(first), "--out", str(out), *SORT, home=home)
    key = summary["partition"]
    assert summary["output"] == str(out / "photos") and key != "photos"
    placed = layout(out)
    assert {Path(p).parts[0] for p in placed} == {"photos"}
    assert {Path(p).parts[1] for p in placed} == set(summary["clusters"])  # OUT/photos/<cluster>/<file>
    assert sorted(placed.values()) == sorted(originals.values())

    # A tree from before the change: the next sort (here with --keep-structure and --rename) relocates it.
    as_older_version(out, home, key, "photos")
    older = layout(out)
    assert {Path(p).parts[0] for p in older} == {key}
    summary = sort("sort", str(first), "--out", str(out), "--keep-structure", "--rename", *SORT, home=home)
    assert summary["output"] == str(out / "photos")
    moved = layout(out)
    assert not (out / key).exists() and len(moved) == len(originals)
    for path, digest in moved.items():
        tree, cluster, *below = Path(path).parts
        code, _, name = below[-1].partition("_")
        original = str(Path(*below[:-1], name))
        assert tree == "photos" and cluster in summary["clusters"] and code, path
        assert originals[original] == digest, f"{path}: its sub-folder was not kept"
    manifest = (out / ".neural-sorter" / "manifest.csv").read_text()
    assert manifest.count(",relocate,") == len(originals)

    sort("undo", str(out), home=home)
    assert layout(out) == older  # back in OUT/<key>/ exactly as the older version left it

    # Another folder called photos: its own name is taken (recorded, though OUT/photos is gone after the undo).
    other = sort("sort", str(second), "--out", str(out), *SORT, home=home)
    assert other["output"] == str(out / "photos-2")
    assert {Path(p).parts[0] for p in layout(out)} == {key, "photos-2"}
    again = sort("sort", str(first), "--out", str(out), *SORT, home=home)
    assert again["output"] == str(out / "photos")
    assert {Path(p).parts[0] for p in layout(out)} == {"photos", "photos-2"}

    # Removed from the registry (its folder name record goes too) and sorted again: it keeps its tree.
    before = layout(out)
    sort("sources", "remove", str(first), home=home)
    back = sort("sort", str(first), "--out", str(out), *SORT, home=home)
    assert back["output"] == str(out / "photos") and layout(out) == before
    assert ",relocate," not in (out / ".neural-sorter" / "manifest.csv").read_text()
