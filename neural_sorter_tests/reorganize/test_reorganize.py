import os
import threading
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock

from neural_sorter.inventory import content_hash
from neural_sorter.reorganize import (
    LOCK_NAME,
    MANIFEST_FIELDS,
    OutputBusyError,
    OutputDirError,
    check_output_dir,
    execute_plan,
    new_run_id,
    output_lock,
    plan_reorganization,
    read_manifest,
    undo_last,
)


def make_source(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def clusters_for(src: Path, assignment: dict[str, str]) -> pd.DataFrame:
    rows = []
    for i, (relative, cluster) in enumerate(sorted(assignment.items())):
        path = src / relative
        rows.append(
            {
                "source": str(path),
                "relative_path": relative,
                "content_hash": content_hash(path),
                "cluster_name": cluster,
                "hier_code": f"00-{i:05d}",
            }
        )
    return pd.DataFrame(rows)


def sort_once(src: Path, out: Path, assignment: dict[str, str], mode: str = "copy", **kw):
    run_id = new_run_id()
    actions = plan_reorganization(clusters_for(src, assignment), out, "p", mode, kw.get("rename", False), run_id)
    return actions, execute_plan(out, actions, run_id, dry_run=kw.get("dry_run", False))


def tree(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".neural-sorter" not in p.parts
    }


FILES = {"a.jpg": b"aaa", "sub/b.jpg": b"bbb", "c.png": b"ccc", "sub/a.jpg": b"other a"}
ASSIGN = {"a.jpg": "cats", "sub/b.jpg": "dogs", "c.png": "cats", "sub/a.jpg": "cats"}


def test_copy_places_every_file_once_and_undo_removes_only_copies(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    _, report = sort_once(src, out, ASSIGN)
    placed = tree(out)
    assert sorted(placed) == ["p/cats/a (2).jpg", "p/cats/a.jpg", "p/cats/c.png", "p/dogs/b.jpg"]
    assert sorted(placed.values()) == sorted(FILES.values())
    assert not report.failures
    manifest = read_manifest(out / ".neural-sorter" / "manifest.csv")
    assert list(manifest.columns[:5]) == ["source", "destination", "content_hash", "cluster", "action"]
    assert list(manifest.columns) == MANIFEST_FIELDS
    assert set(manifest["action"]) == {"copy"}
    result = undo_last(out)
    assert result.reverted == 4 and not result.skipped
    assert tree(out) == {}
    assert {p: (src / p).read_bytes() for p in FILES} == FILES  # originals untouched


def test_rerun_unchanged_keeps_everything(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN)
    before = tree(out)
    actions, _ = sort_once(src, out, ASSIGN)
    assert {a.action for a in actions} == {"keep"}
    assert tree(out) == before


def test_undo_after_a_rerun_that_changed_nothing_reverts_the_sort(tmp_path):
    """Found trying the CLI as a user: sort, sort again with nothing new, `undo` printed "0 reverted" and left
    every copy in OUT (it undid the re-sort, whose rows were all `keep`)."""
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN)
    sort_once(src, out, ASSIGN)
    sort_once(src, out, ASSIGN)
    report = undo_last(out)
    assert report.reverted == len(FILES) and len(report.passed_over) == 2
    assert tree(out) == {}
    assert {p: (src / p).read_bytes() for p in FILES} == FILES
    with pytest.raises(FileNotFoundError):
        undo_last(out)


def test_delta_new_moved_cluster_and_deleted_source(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN)
    (src / "c.png").unlink()
    (src / "d.jpg").write_bytes(b"ddd")
    assignment = {"a.jpg": "dogs", "sub/b.jpg": "dogs", "sub/a.jpg": "cats", "d.jpg": "birds"}
    actions, _ = sort_once(src, out, assignment)
    kinds = {Path(a.source).name if a.action != "remove" else "c.png": a.action for a in actions}
    assert sorted(a.action for a in actions) == ["copy", "keep", "keep", "relocate", "remove"]
    assert kinds["d.jpg"] == "copy"
    placed = tree(out)
    assert placed["p/dogs/a.jpg"] == b"aaa" and placed["p/birds/d.jpg"] == b"ddd"
    assert "p/cats/c.png" not in placed
    trash = list((out / ".neural-sorter" / "trash").rglob("c.png"))
    assert len(trash) == 1 and trash[0].read_bytes() == b"ccc"
    undo_last(out)  # back to the first run's tree, c.png restored from the trash
    assert sorted(tree(out)) == ["p/cats/a (2).jpg", "p/cats/a.jpg", "p/cats/c.png", "p/dogs/b.jpg"]


def test_undo_follows_run_order_not_run_id_order(tmp_path):
    """Run ids sort by clock time and a random suffix; runs in the same second (or after a clock
    step backwards) must still be undone newest first."""
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    first = plan_reorganization(clusters_for(src, ASSIGN), out, "p", "copy", False, "20991231T235959-ffffff")
    execute_plan(out, first, "20991231T235959-ffffff")
    moved = dict(ASSIGN, **{"a.jpg": "dogs"})
    second = plan_reorganization(clusters_for(src, moved), out, "p", "copy", False, "20000101T000000-000000")
    execute_plan(out, second, "20000101T000000-000000")
    assert "p/dogs/a.jpg" in tree(out)
    result = undo_last(out)
    assert "20000101T000000" in Path(result.manifest).name
    assert sorted(tree(out)) == ["p/cats/a (2).jpg", "p/cats/a.jpg", "p/cats/c.png", "p/dogs/b.jpg"]
    undo_last(out)
    assert tree(out) == {}


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_link_modes_never_touch_sources(tmp_path, mode):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN, mode=mode)
    target = out / "p" / "dogs" / "b.jpg"
    if mode == "symlink":
        assert target.is_symlink() and os.readlink(target) == str(src / "sub" / "b.jpg")
    else:
        assert target.stat().st_ino == (src / "sub" / "b.jpg").stat().st_ino
    undo_last(out)
    assert tree(out) == {} and {p: (src / p).read_bytes() for p in FILES} == FILES


def test_move_and_undo_restores_originals(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN, mode="move")
    assert not (src / "a.jpg").exists()
    assert sorted(tree(out).values()) == sorted(FILES.values())
    # A later run of the emptied source keeps the moved originals (never trashes them).
    actions, _ = sort_once(src, out, {})
    assert {a.action for a in actions} == {"keep"}
    report = undo_last(out)  # one undo: the keep-only run is passed over, the move is reverted
    assert len(report.passed_over) == 1 and report.reverted == len(FILES)
    assert {p: (src / p).read_bytes() for p in FILES} == FILES
    assert tree(out) == {}


def test_undo_refuses_files_changed_after_placement(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN)
    edited = out / "p" / "dogs" / "b.jpg"
    edited.write_bytes(b"user edited this")
    report = undo_last(out)
    assert edited.read_bytes() == b"user edited this"
    assert any("content changed" in reason for _, reason in report.skipped)


def test_existing_files_are_never_overwritten(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    (out / "p" / "cats").mkdir(parents=True)
    (out / ".neural-sorter").mkdir()
    (out / "p" / "cats" / "a.jpg").write_bytes(b"precious")
    sort_once(src, out, ASSIGN)
    assert (out / "p" / "cats" / "a.jpg").read_bytes() == b"precious"
    undo_last(out)
    assert (out / "p" / "cats" / "a.jpg").read_bytes() == b"precious"


def test_dry_run_writes_only_a_manifest(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    _, report = sort_once(src, out, ASSIGN, dry_run=True)
    assert tree(out) == {}
    assert Path(report.manifest).name == "manifest.dry-run.csv"
    assert len(read_manifest(Path(report.manifest))) == 4
    with pytest.raises(FileNotFoundError):
        undo_last(out)


def test_rename_prefixes_sortable_codes(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN, rename=True)
    assert all(Path(p).name.startswith("00-") for p in tree(out))


def test_unsafe_output_folders_are_refused(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    with pytest.raises(OutputDirError, match="source folder itself"):
        check_output_dir(src, [src])
    with pytest.raises(OutputDirError, match="inside the output"):
        check_output_dir(tmp_path, [src])
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "mine.txt").write_text("x")
    with pytest.raises(OutputDirError, match="--force"):
        check_output_dir(stranger, [src])
    check_output_dir(stranger, [src], force=True)
    check_output_dir(src / "sorted", [src])  # OUT inside a source is allowed (and excluded from scans)


def test_move_across_devices_verifies_the_copy_before_removing_the_source(tmp_path, monkeypatch):
    import errno

    from neural_sorter.reorganize import fs

    src = make_source(tmp_path / "src", {"a.jpg": b"precious bytes"})
    out = tmp_path / "out"
    real_link = os.link

    def no_cross_device_links(source, destination, **kw):
        if str(source).startswith(str(src)):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(source, destination, **kw)

    monkeypatch.setattr(fs.os, "link", no_cross_device_links)
    corrupting = {"on": True}
    real_copy = fs.copy_to_temp

    def flaky_copy(source, dir_fd):
        tmp = real_copy(source, dir_fd)
        if corrupting["on"]:
            fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC, dir_fd=dir_fd)
            os.write(fd, b"bit rot")
            os.close(fd)
        return tmp

    monkeypatch.setattr(fs, "copy_to_temp", flaky_copy)
    _, report = sort_once(src, out, {"a.jpg": "c"}, mode="move")
    assert (src / "a.jpg").read_bytes() == b"precious bytes"  # a bad copy never costs the original
    assert report.failures and "does not match" in report.failures[0][1]
    assert tree(out) == {}
    corrupting["on"] = False
    undo_last(out)
    sort_once(src, out, {"a.jpg": "c"}, mode="move")
    assert not (src / "a.jpg").exists() and tree(out) == {"p/c/a.jpg": b"precious bytes"}


def test_output_lock_serialises_runs_and_undo_gives_up_clearly(tmp_path):
    """A run into an OUT that another process is writing waits for it; undo gives up with a clear error."""
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN)
    # Another fd on the lock file: flock conflicts as it would with another process.
    other = FileLock(str(out / ".neural-sorter" / LOCK_NAME), thread_local=False)
    other.acquire()
    try:
        with pytest.raises(OutputBusyError, match="try again when it has finished"):
            undo_last(out, lock_timeout=0.2)
        waited: list[str] = []
        threading.Timer(0.5, other.release).start()
        with output_lock(out, timeout=30, on_wait=waited.append):
            assert not other.is_locked
        assert len(waited) == 1 and "waiting" in waited[0]
    finally:
        other.release(force=True)
    undo_last(out)
    assert tree(out) == {}
