"""Through the real CLI on real images: a sorted copy the user edited stays theirs (issue 10 item 10), and
``--keep-structure`` keeps each file's sub-folder under its cluster folder (issue 12)."""

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
SORT = ("--backend", "cnn", "--projection", "pca")


@pytest.fixture(autouse=True)
def _needs_images():
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=900)


def placed_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and ".neural-sorter" not in p.parts)


def test_an_edited_copy_whose_original_vanished_is_kept_reported_and_never_undone(tmp_path):
    src = copy_images(tmp_path / "photos", 12)
    out, home = tmp_path / "OUT", tmp_path / "home"
    first = run("sort", str(src), "--out", str(out), *SORT, home=home)
    assert first.returncode == 0, first.stderr[-3000:]
    copies = placed_files(out)
    assert len(copies) == 12
    edited = copies[0]
    original = next(p for p in src.rglob(edited.name))
    edited.write_bytes(edited.read_bytes() + b"the user's own edit")
    mine = edited.read_bytes()
    original.unlink()

    second = run("sort", str(src), "--out", str(out), *SORT, "--json", home=home)
    assert second.returncode == 0, second.stderr[-3000:]
    assert edited.read_bytes() == mine, "the edited copy was moved or changed"
    assert not [p for p in (out / ".neural-sorter").rglob(edited.name) if "trash" in p.parts]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    kept = summary["kept_edited"]
    assert [k["file"] for k in kept] == [str(edited)] and "edited" in kept[0]["reason"]

    # The run's table says why, too.
    from neural_sorter.store import Store
    from neural_sorter.tables import REORGANIZED_TREE, SCHEMAS

    table = Store(home / "store").read(REORGANIZED_TREE, summary["partition"])
    assert set(table.columns) == {c.name for c in SCHEMAS[REORGANIZED_TREE]}
    row = table[table["destination"] == str(edited)].iloc[0]
    assert row["action"] == "keep" and "edited" in row["note"]

    # One undo: the re-sort only kept files (it is passed over, and says so), the first sort is reverted.
    undone = run("undo", str(out), home=home)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "passed over" in undone.stdout and "changed nothing" in undone.stdout
    assert edited.read_bytes() == mine, "undo deleted or moved the edited copy"
    assert len(placed_files(out)) == 1


def test_keep_structure_keeps_each_files_sub_folder_under_its_cluster_and_undo_reverts_it(tmp_path):
    src = copy_images(tmp_path / "photos", 12, classes=("birds", "fish", "fruit"))
    nested = src / "fish" / "deep" / "er"
    nested.mkdir(parents=True)
    moved = next((src / "fish").glob("*.png"))
    moved.rename(nested / moved.name)
    out, home = tmp_path / "OUT", tmp_path / "home"
    done = run("sort", str(src), "--out", str(out), *SORT, "--keep-structure", "--json", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    tree = Path(json.loads(done.stdout.strip().splitlines()[-1])["output"])
    assert tree == out / "photos"  # OUT/<source folder name>
    placed = placed_files(out)
    assert len(placed) == 12
    originals = {p.relative_to(src): content_hash(p) for p in src.rglob("*.png")}
    for path in placed:
        relative = path.relative_to(tree)
        cluster, below = relative.parts[0], Path(*relative.parts[1:])
        assert below in originals, f"{relative}: the original sub-folder was not kept under {cluster}"
        assert content_hash(path) == originals[below]
    assert list(tree.glob("*/fish/deep/er/" + moved.name))

    undone = run("undo", str(out), home=home)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert placed_files(out) == []
    assert [p for p in out.iterdir() if p.name != ".neural-sorter"] == []
