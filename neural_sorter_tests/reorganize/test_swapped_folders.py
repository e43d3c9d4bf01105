"""Issue 10 item 5: nothing is written or deleted outside OUT through a folder inside it that is (or becomes,
mid-run) a symlink; and a copy kept by an earlier run is retired like any copy once its original is gone.

The race tests swap the folder deterministically at the one moment that matters: right after the tool has
checked (and, today, opened) the destination folder and before it writes there, by wrapping
``apply.ensure_real_dirs``. On a check-then-write-by-path implementation the write follows the new symlink.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neural_sorter.reorganize import apply as apply_module
from neural_sorter.reorganize import undo_last
from neural_sorter_tests.reorganize.test_reorganize import ASSIGN, FILES, make_source, sort_once, tree
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

CLI = str(Path(sys.executable).with_name("neural-sorter"))
SORT = ("--backend", "cnn", "--projection", "pca")


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def swap_after_check(monkeypatch, wanted, swap) -> list[Path]:
    """Wraps ``apply.ensure_real_dirs``: the first time it has passed for a folder ``wanted(folder)`` accepts,
    ``swap(folder)`` runs before the caller gets to write. Returns the list of folders swapped."""
    real = apply_module.ensure_real_dirs
    swapped: list[Path] = []

    def checked_then_swapped(root, folder, *args, **kwargs):
        result = real(root, folder, *args, **kwargs)
        if not swapped and wanted(Path(folder)):
            swapped.append(Path(folder))
            swap(Path(folder))
        return result

    monkeypatch.setattr(apply_module, "ensure_real_dirs", checked_then_swapped)
    return swapped


def replace_with_symlink(folder: Path, target: Path, how: str) -> None:
    """What another user or process could do to a folder inside OUT: move it aside (or remove it when
    empty) and put a symlink to ``target`` in its place."""
    if how == "renamed":
        folder.rename(folder.with_name(f".{folder.name}-moved-aside"))
    else:
        folder.rmdir()
    folder.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize(
    ("mode", "component", "how"),
    [
        ("copy", "cluster", "removed"),
        ("copy", "cluster", "renamed"),
        ("copy", "partition", "renamed"),
        ("move", "cluster", "renamed"),
        ("hardlink", "cluster", "removed"),
        ("symlink", "cluster", "renamed"),
    ],
)
def test_a_folder_swapped_for_a_symlink_between_check_and_write_is_not_written_through(
    tmp_path, monkeypatch, mode, component, how
):
    src, out, elsewhere = make_source(tmp_path / "src", FILES), tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    cats = out / "p" / "cats"
    victim = cats if component == "cluster" else out / "p"
    swapped = swap_after_check(
        monkeypatch, lambda folder: folder == cats, lambda _folder: replace_with_symlink(victim, elsewhere, how)
    )
    _, report = sort_once(src, out, ASSIGN, mode=mode)
    assert swapped == [cats]
    assert everything_under(elsewhere) == [], "a placement was written through the swapped-in symlink"
    # Every file is accounted for: placed inside OUT (the dogs, and cats in the folder moved aside) or still
    # in the source; the ones that could not be placed have a reason.
    inside = [p for p in out.rglob("*") if not p.is_dir() and ".neural-sorter" not in p.parts]
    originals = [p for p in src.rglob("*") if p.is_file()]
    assert len(inside) + (len(originals) if mode == "move" else 0) >= len(FILES) - len(report.failures)
    assert report.failures, "placements into a folder that is now a symlink must fail"
    for _source, why in report.failures:
        assert "symlink" in why or "replaced" in why or "No such file" in why, why
    if mode == "move":  # every original is either back in the source or inside OUT, never elsewhere
        found = {p.read_bytes() for p in [*inside, *originals] if p.is_file() and not p.is_symlink()}
        assert found == set(FILES.values())


def test_the_trash_folder_swapped_for_a_symlink_mid_move_keeps_the_file_inside_out(tmp_path, monkeypatch):
    src, out, elsewhere = make_source(tmp_path / "src", FILES), tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    sort_once(src, out, ASSIGN)
    (src / "c.png").unlink()
    swapped = swap_after_check(
        monkeypatch,
        lambda folder: "trash" in folder.parts,
        lambda folder: replace_with_symlink(folder, elsewhere, "renamed"),
    )
    _, report = sort_once(src, out, {k: v for k, v in ASSIGN.items() if k != "c.png"})
    assert swapped, "the run retired nothing to the trash"
    assert everything_under(elsewhere) == [], "the retired copy was moved out of OUT through the symlink"
    kept = [p for p in out.rglob("c.png") if p.is_file() and not p.is_symlink()]
    assert [p.read_bytes() for p in kept] == [b"ccc"], "the retired copy must still be inside OUT, once"
    monkeypatch.undo()
    assert report.failures or kept[0].parent.name != "cats"  # failed with a reason, or went to the real trash


def test_undo_never_deletes_through_a_cluster_folder_swapped_for_a_symlink(tmp_path, monkeypatch):
    src, out, elsewhere = make_source(tmp_path / "src", FILES), tmp_path / "out", tmp_path / "elsewhere"
    sort_once(src, out, ASSIGN)
    # The cats folder is moved out of OUT (with its identical copies) and a symlink to it takes its place.
    (out / "p" / "cats").rename(elsewhere)
    (out / "p" / "cats").symlink_to(elsewhere, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    report = undo_last(out)
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before, "undo deleted files outside OUT"
    assert len(report.failures) == 3 and all("symlink" in why for _, why in report.failures)
    assert not report.complete and tree(out) == {}  # the dogs copy was undone; the record is kept


def test_a_copy_kept_by_an_earlier_run_is_retired_like_any_copy_when_its_original_vanishes(tmp_path):
    """The planner could not tell a kept copy from a kept moved original: with a kept run between the
    placement and the original's deletion, the stale copy stayed in the tree for good."""
    outcomes = {}
    for kept_runs in (0, 1, 2):
        src = make_source(tmp_path / f"src{kept_runs}", FILES)
        out = tmp_path / f"out{kept_runs}"
        sort_once(src, out, ASSIGN)
        for _ in range(kept_runs):
            actions, _ = sort_once(src, out, ASSIGN)
            assert {a.action for a in actions} == {"keep"}
        (src / "c.png").unlink()
        actions, report = sort_once(src, out, {k: v for k, v in ASSIGN.items() if k != "c.png"})
        assert not report.failures
        outcomes[kept_runs] = (sorted(str(a.action) for a in actions), sorted(tree(out)))
    assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0]
    assert outcomes[0][0] == ["keep", "keep", "keep", "remove"]
    assert "p/cats/c.png" not in outcomes[0][1]


def test_a_moved_original_kept_by_an_earlier_run_is_never_retired(tmp_path):
    """The other side of the rule: in move mode the file in the tree IS the original; it stays."""
    src, out = make_source(tmp_path / "src", FILES), tmp_path / "out"
    sort_once(src, out, ASSIGN, mode="move")
    for _ in range(2):
        actions, report = sort_once(src, out, {}, mode="move")
        assert not report.failures and {a.action for a in actions} == {"keep"}
    assert sorted(tree(out).values()) == sorted(FILES.values())


# ----------------------------------------------------------------------------------- the real CLI


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=900)


def test_cli_refuses_a_state_folder_planted_as_a_symlink_in_one_line(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out, home, elsewhere = tmp_path / "OUT", tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / ".neural-sorter").symlink_to(elsewhere, target_is_directory=True)
    for args in (("sort", str(src), "--out", str(out), *SORT), ("undo", str(out))):
        done = run(*args, home=home)
        assert done.returncode != 0, f"{args[0]} wrote through a symlinked state folder"
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "symlink" in lines[0] and ".neural-sorter" in lines[0], done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert everything_under(elsewhere) == []
    assert sorted(p.name for p in out.iterdir()) == [".neural-sorter"]


needs_images = pytest.mark.skipif(not tuxpaint_available(), reason="real-image data set tuxpaint8 not found")


def sorted_tree(out: Path) -> Path:
    trees = [p for p in out.iterdir() if p.is_dir() and p.name != ".neural-sorter"]
    assert len(trees) == 1, trees
    return trees[0]


@pytest.mark.slow
@needs_images
def test_cli_undo_refuses_to_delete_through_a_cluster_folder_swapped_for_a_symlink(tmp_path):
    src = copy_images(tmp_path / "photos", 12)
    out, home, elsewhere = tmp_path / "OUT", tmp_path / "home", tmp_path / "elsewhere"
    done = run("sort", str(src), "--out", str(out), *SORT, home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    cluster = max((p for p in sorted_tree(out).iterdir() if p.is_dir()), key=lambda p: len(list(p.iterdir())))
    cluster.rename(elsewhere)  # the folder (identical copies) now lies outside OUT; a symlink takes its place
    cluster.symlink_to(elsewhere, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    assert before

    undone = run("undo", str(out), home=home)
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before, "undo deleted files outside OUT"
    assert undone.returncode == 1, undone.stdout + undone.stderr
    not_restored = [line for line in undone.stderr.splitlines() if line.strip().startswith("NOT restored:")]
    assert len(not_restored) == len(before) and all("symlink" in line for line in not_restored)
    assert "record is kept" in undone.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@needs_images
@pytest.mark.parametrize("kept_runs", [0, 1])
def test_cli_an_unedited_copy_whose_original_vanished_goes_to_the_trash_with_or_without_a_kept_run(tmp_path, kept_runs):
    src = copy_images(tmp_path / "photos", 12)
    out, home = tmp_path / "OUT", tmp_path / "home"
    first = run("sort", str(src), "--out", str(out), *SORT, home=home)
    assert first.returncode == 0, first.stderr[-3000:]
    for _ in range(kept_runs):
        again = run("sort", str(src), "--out", str(out), *SORT, "--json", "--force", home=home)  # a real run
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout.strip().splitlines()[-1])["actions"] == {"keep": 12}, again.stdout
    copies = sorted(p for p in sorted_tree(out).rglob("*") if p.is_file())
    gone = copies[0]
    data = gone.read_bytes()
    next(src.rglob(gone.name)).unlink()

    last = run("sort", str(src), "--out", str(out), *SORT, "--json", home=home)
    assert last.returncode == 0, last.stderr[-3000:]
    assert not gone.exists(), "the unedited copy of a vanished original stayed in the sorted tree"
    trashed = [p for p in (out / ".neural-sorter" / "trash").rglob(gone.name)]
    assert len(trashed) == 1 and trashed[0].read_bytes() == data
    assert len([p for p in sorted_tree(out).rglob("*") if p.is_file()]) == 11
