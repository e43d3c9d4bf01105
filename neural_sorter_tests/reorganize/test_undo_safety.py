"""Issue 10 inside the reorganize package: failed undos, source folder identity, interrupted runs adopted by
the re-run, Ctrl-C between placements, symlinks planted in OUT, a full disk, and what the records expose.

Each test fails on the single-module ``reorganize.py`` this package replaced.
"""

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from neural_sorter.reorganize import (
    ActionKind,
    ManifestError,
    OutputDirError,
    UndoOutcome,
    check_output_dir,
    history_files,
    new_run_id,
    output_lock,
    plan_reorganization,
    undo_last,
)
from neural_sorter.reorganize import apply as apply_module
from neural_sorter_tests.reorganize.test_reorganize import ASSIGN, FILES, clusters_for, make_source, sort_once, tree

ROOT = Path(__file__).resolve().parents[2]
TEST_USER = "ns-test-user"


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ item 1: a failed undo is not an undo


@pytest.fixture
def other_user():
    """(uid, gid) of an unprivileged user: this one if not root, else ``ns-test-user`` (created if missing)."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", TEST_USER], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create {TEST_USER}: {made.stderr.decode().strip()}")
        entry = pwd.getpwnam(TEST_USER)
    return entry.pw_uid, entry.pw_gid


@pytest.fixture
def shared_tmp(other_user):
    """A folder the unprivileged user owns (pytest's own tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="ns-undo-"))
    folder.chmod(0o755)
    os.chown(folder, *other_user)
    yield folder
    for dirpath, _dirs, _files in os.walk(folder):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(folder)


def _system_python() -> str:
    for candidate in ("/usr/bin/python3.11", shutil.which("python3.11")):
        if candidate and os.access(candidate, os.X_OK) and not candidate.startswith("/root"):
            return candidate
    pytest.skip("no python3.11 outside /root for the unprivileged child")


def as_user(user: tuple[int, int], *args: str) -> tuple[int, dict]:
    """Runs ``user_worker`` as ``user`` with the system interpreter (the venv's lives under /root, 0700)."""
    site = ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "PYTHONPATH": f"{ROOT}:{site}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TQDM_DISABLE": "1",
    }
    uid, gid = user
    switch = {} if os.geteuid() != 0 else {"user": uid, "group": gid, "extra_groups": []}
    result = subprocess.run(
        [_system_python(), "-m", "neural_sorter_tests.reorganize.user_worker", *args],
        cwd="/tmp",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **switch,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # three child interpreters as another user: about 10 s
def test_undo_into_a_read_only_source_fails_keeps_the_record_and_a_retry_does_exactly_the_rest(shared_tmp, other_user):
    src, out = shared_tmp / "src", shared_tmp / "out"
    files = {f"{folder}/f{n:02d}.bin": f"{folder}-{n}".encode() for folder in ("locked", "open") for n in range(10)}
    make_source(src, files)
    for dirpath, _dirs, names in os.walk(shared_tmp):
        for path in [dirpath, *(os.path.join(dirpath, name) for name in names)]:
            os.chown(path, *other_user)
    code, sorted_ = as_user(other_user, "sort", str(src), str(out), "move")
    assert code == 0 and not sorted_["failures"]
    assert contents(src) == {}  # every original now lives in OUT
    (src / "locked").chmod(0o555)  # the user's own folder, now read-only: restoring into it fails

    code, first = as_user(other_user, "undo", str(out))
    assert code != 0 and first["complete"] is False
    assert first["reverted"] == 10
    failed = {Path(path).name: why for path, why in first["failures"]}
    assert sorted(failed) == [f"f{n:02d}.bin" for n in range(10)]
    assert all("Permission denied" in why for why in failed.values())
    assert [p.name for p in history_files(out)], "the record of a failed undo is kept"
    assert not list((out / ".neural-sorter" / "history").glob("*.undone"))
    assert Counter(tree(out).values()) == Counter(v for k, v in files.items() if k.startswith("locked/"))

    (src / "locked").chmod(0o755)
    code, second = as_user(other_user, "undo", str(out))
    assert code == 0 and second["complete"] is True
    assert second["reverted"] == 10 and not second["failures"] and not second["missing"]  # exactly the rest
    assert contents(src) == files and tree(out) == {}
    assert history_files(out) == []


def test_a_second_user_cannot_undo_or_wait_on_another_users_output(shared_tmp, other_user):
    if os.geteuid() != 0:
        pytest.skip("needs root to own the first user's output")
    src, out = make_source(shared_tmp / "src", {"a.jpg": b"aaa"}), shared_tmp / "out"
    sort_once(src, out, {"a.jpg": "c"}, mode="move")  # as root: the first user
    started = time.monotonic()
    code, result = as_user(other_user, "undo", str(out))
    assert code == 2 and "belongs to another user" in result["error"]
    assert time.monotonic() - started < 30, "refused at once, not after waiting on the lock"
    assert tree(out) == {"p/c/a.jpg": b"aaa"} and len(history_files(out)) == 1


def test_files_renamed_or_removed_inside_out_are_reported_not_dropped(tmp_path):
    src = make_source(tmp_path / "src", FILES)
    out = tmp_path / "out"
    sort_once(src, out, ASSIGN)
    (out / "p" / "dogs" / "b.jpg").unlink()
    (out / "p" / "cats" / "c.png").rename(out / "p" / "cats" / "renamed.png")
    report = undo_last(out)
    assert report.complete and report.reverted == 2
    assert sorted(Path(path).name for path, _ in report.missing) == ["b.jpg", "c.png"]
    assert all("renamed or removed" in why for _, why in report.missing)
    assert tree(out) == {"p/cats/renamed.png": b"ccc"}  # the user's rename is theirs to keep


def test_something_else_at_the_original_path_is_a_failure_and_is_retried(tmp_path):
    src = make_source(tmp_path / "src", {"a.jpg": b"original"})
    out = tmp_path / "out"
    sort_once(src, out, {"a.jpg": "c"}, mode="move")
    (src / "a.jpg").write_bytes(b"a new file the user made")
    report = undo_last(out)
    assert not report.complete and "other content" in report.failures[0][1]
    assert (out / "p" / "c" / "a.jpg").read_bytes() == b"original" and len(history_files(out)) == 1
    (src / "a.jpg").rename(src / "new.jpg")
    retry = undo_last(out)
    assert retry.complete and retry.reverted == 1 and (src / "a.jpg").read_bytes() == b"original"


# ------------------------------------------------------------ item 2: only into the folder they came from


@pytest.mark.parametrize("change", ["recreated-by-another-user", "now-writable-by-others", "now-a-symlink"])
def test_undo_restores_originals_only_into_the_folder_they_came_from(tmp_path, change):
    src = make_source(tmp_path / "src", {"sub/a.jpg": b"aaa", "sub/b.jpg": b"bbb"})
    (src / "sub").chmod(0o755)
    out = tmp_path / "out"
    sort_once(src, out, {"sub/a.jpg": "c", "sub/b.jpg": "c"}, mode="move")
    folder = src / "sub"
    if change == "recreated-by-another-user":
        folder.rmdir()
        folder.mkdir()
        os.chown(folder, 54321, 54321)
        expected = "re-created by another user"
    elif change == "now-writable-by-others":
        folder.chmod(0o777)
        expected = "writable by its group and others"
    else:
        folder.rmdir()
        (tmp_path / "elsewhere").mkdir()
        folder.symlink_to(tmp_path / "elsewhere")
        expected = "symlink"
    report = undo_last(out)
    assert not report.complete and len(report.failures) == 2
    assert all(expected in why and "stays at" in why for _, why in report.failures)
    assert sorted(tree(out).values()) == [b"aaa", b"bbb"] and len(history_files(out)) == 1
    assert not any((tmp_path / "elsewhere").glob("*")) if change == "now-a-symlink" else True
    # Put right by the user: the retry restores them.
    if folder.is_symlink():
        folder.unlink()
    else:
        shutil.rmtree(folder)
    assert undo_last(out).complete
    assert contents(src) == {"sub/a.jpg": b"aaa", "sub/b.jpg": b"bbb"}


def test_undo_recreates_a_source_folder_the_user_removed(tmp_path):
    src = make_source(tmp_path / "src", {"sub/a.jpg": b"aaa"})
    out = tmp_path / "out"
    sort_once(src, out, {"sub/a.jpg": "c"}, mode="move")
    (src / "sub").rmdir()  # emptied by the move, tidied away by the user
    assert undo_last(out).complete and contents(src) == {"sub/a.jpg": b"aaa"}


# ------------------------------------------- item 4 and Ctrl-C: an interrupted run, completed by a re-run


def interrupt_at(monkeypatch, step: int, after: bool):
    """Makes the ``step``-th placement raise KeyboardInterrupt, before doing anything or once it is done."""
    real = apply_module.apply_action
    calls = {"n": 0}

    def flaky(action, out=None):
        calls["n"] += 1
        if calls["n"] == step and not after:
            raise KeyboardInterrupt
        real(action, out)
        if calls["n"] == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(apply_module, "apply_action", flaky)


@pytest.mark.parametrize("mode", ["copy", "move"])
def test_interrupted_run_completed_by_a_rerun_is_undone_by_one_undo(tmp_path, monkeypatch, mode):
    steps = len(FILES)
    for step in range(1, steps + 1):
        for after in (False, True):
            base = tmp_path / f"{step}-{after}"
            src, out = make_source(base / "src", FILES), base / "out"
            interrupt_at(monkeypatch, step, after)
            with pytest.raises(KeyboardInterrupt):
                sort_once(src, out, ASSIGN, mode=mode)
            monkeypatch.undo()
            assert not [p for p in base.rglob(".ns-tmp-*")]
            assert len(history_files(out)) == 1
            still_there = {name: cluster for name, cluster in ASSIGN.items() if (src / name).exists()}
            _actions, report = sort_once(src, out, still_there, mode=mode)  # the re-run completes it
            assert not report.failures
            assert Counter(tree(out).values()) == Counter(FILES.values())
            assert len(history_files(out)) == 1, "the re-run adopts the interrupted run's record"
            undo_last(out)
            assert tree(out) == {} and contents(src) == FILES and history_files(out) == []


def test_interrupted_relocating_run_is_adopted_and_one_undo_restores_the_run_before(tmp_path, monkeypatch):
    later = {"a.jpg": "dogs", "sub/b.jpg": "dogs", "sub/a.jpg": "birds", "d.jpg": "birds"}
    for step in range(1, 6):  # the second run has five actions
        base = tmp_path / str(step)
        src, out = make_source(base / "src", FILES), base / "out"
        sort_once(src, out, ASSIGN)
        first = tree(out)
        (src / "c.png").unlink()
        (src / "d.jpg").write_bytes(b"ddd")
        interrupt_at(monkeypatch, step, after=True)
        with pytest.raises(KeyboardInterrupt):
            sort_once(src, out, later)
        monkeypatch.undo()
        sort_once(src, out, later)
        assert sorted(tree(out)) == ["p/birds/a.jpg", "p/birds/d.jpg", "p/dogs/a.jpg", "p/dogs/b.jpg"]
        assert len(history_files(out)) == 2
        undo_last(out)
        assert tree(out) == first, step


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C behaviour (KeyboardInterrupt), whatever an earlier test in this process left
    installed (a SIGINT handler set to ignore would make the interrupt a no-op), restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigint_stops_between_placements_not_in_the_middle_of_one(tmp_path, monkeypatch, python_ctrl_c):
    src, out = make_source(tmp_path / "src", FILES), tmp_path / "out"
    real = apply_module.apply_action
    started: list[str] = []

    def signalled(action, out=None):
        started.append(action.destination)
        if len(started) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # lands while the second placement is under way
        real(action, out)

    monkeypatch.setattr(apply_module, "apply_action", signalled)
    with pytest.raises(KeyboardInterrupt):
        sort_once(src, out, ASSIGN, mode="move")
    assert len(started) == 2, "no placement starts after the interrupt"
    assert all(os.path.exists(path) for path in started), "the placement under way was finished"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.undo()
    undo_last(out)  # the interrupted run alone is undone just as well
    assert contents(src) == FILES and tree(out) == {}


# ------------------------------------------------------------------------- symlinks planted inside OUT


def test_nothing_is_written_through_a_symlinked_cluster_or_partition_folder(tmp_path):
    src, out, elsewhere = make_source(tmp_path / "src", FILES), tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "p").mkdir(parents=True)
    (out / ".neural-sorter").mkdir()
    (out / "p" / "cats").symlink_to(elsewhere)
    _, report = sort_once(src, out, ASSIGN)
    assert sorted(Path(source).name for source, _ in report.failures) == ["a.jpg", "a.jpg", "c.png"]
    assert all("symlink" in why for _, why in report.failures)
    assert list(elsewhere.iterdir()) == [] and tree(out) == {"p/dogs/b.jpg": b"bbb"}

    out2 = tmp_path / "out2"
    (out2 / "p").parent.mkdir()
    (out2 / "p").symlink_to(elsewhere)
    _, report2 = sort_once(src, out2, ASSIGN)
    assert len(report2.failures) == 4 and list(elsewhere.iterdir()) == []


def test_a_symlinked_state_folder_is_refused(tmp_path):
    src, out, elsewhere = make_source(tmp_path / "src", FILES), tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / ".neural-sorter").symlink_to(elsewhere)
    with pytest.raises(OutputDirError, match="symlink"):
        check_output_dir(out, [src])
    with pytest.raises(OutputDirError, match="symlink"), output_lock(out):
        pass
    with pytest.raises(OSError, match="symlink"):
        sort_once(src, out, ASSIGN)
    assert list(elsewhere.iterdir()) == []


# -------------------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a small tmpfs (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_fails_the_files_that_do_not_fit_and_leaves_no_temporaries(tmp_path, small_disk):
    files = {f"f{n}.bin": os.urandom(300_000) for n in range(6)}  # 1.8 MB into 1 MB
    src, out = make_source(tmp_path / "src", files), small_disk / "out"
    _, report = sort_once(src, out, dict.fromkeys(files, "c"))
    assert report.failures and all("No space left" in why for _, why in report.failures)
    placed = tree(out)
    assert len(placed) + len(report.failures) == len(files)
    assert all(files[Path(name).name] == data for name, data in placed.items())
    assert not list(out.rglob(".ns-tmp-*")), "a copy cut short by the full disk is removed"
    result = undo_last(out)
    assert result.complete and not result.missing and tree(out) == {}
    assert contents(src) == files


# ------------------------------------------------------------------------ what the records expose


def test_records_and_trash_are_readable_by_their_owner_only(tmp_path):
    src, out = make_source(tmp_path / "src", FILES), tmp_path / "out"
    sort_once(src, out, ASSIGN)
    for record in [out / ".neural-sorter" / "manifest.csv", *history_files(out)]:
        assert stat.S_IMODE(record.stat().st_mode) == 0o600, record
    assert stat.S_IMODE((out / ".neural-sorter").stat().st_mode) == 0o700


def test_undo_outcomes_and_action_kinds_are_enums():
    assert UndoOutcome.FAILED == "failed" and f"{UndoOutcome.MISSING}" == "missing"
    assert ActionKind.REMOVE == "remove" and str(ActionKind.REMOVE) == "remove"


# ------------------------------------------------------------------ partial work and damaged records


def test_a_file_retried_after_a_failed_placement_keeps_its_own_name(tmp_path, monkeypatch):
    src, out = make_source(tmp_path / "src", FILES), tmp_path / "out"
    real_hash = apply_module.hash_matches
    # c.png "changes" between inventory and placement, so its copy fails this time.
    monkeypatch.setattr(
        apply_module, "hash_matches", lambda path, digest: not path.endswith("c.png") and real_hash(path, digest)
    )
    _, report = sort_once(src, out, ASSIGN)
    monkeypatch.undo()
    assert [Path(source).name for source, _ in report.failures] == ["c.png"]
    actions, report = sort_once(src, out, ASSIGN)
    assert not report.failures
    assert [Path(a.destination).name for a in actions if a.action == ActionKind.COPY] == ["c.png"]
    assert sorted(tree(out)) == ["p/cats/a (2).jpg", "p/cats/a.jpg", "p/cats/c.png", "p/dogs/b.jpg"]


def test_undo_removes_temporaries_a_killed_restore_left_in_the_source_folder(tmp_path):
    src, out = make_source(tmp_path / "src", {"sub/a.jpg": b"aaa"}), tmp_path / "out"
    sort_once(src, out, {"sub/a.jpg": "c"}, mode="move")
    (src / "sub" / ".ns-tmp-0123456789ab").write_bytes(b"half a restore")
    assert undo_last(out).complete
    assert contents(src) == {"sub/a.jpg": b"aaa"}


def test_a_garbled_record_is_named_with_its_line_and_other_sources_still_plan(tmp_path):
    src, out = make_source(tmp_path / "src", FILES), tmp_path / "out"
    sort_once(src, out, ASSIGN)
    record = history_files(out)[-1]
    lines = record.read_text().splitlines(keepends=True)
    width = len(lines[0].split(","))  # the record's own columns (names' exact bytes columns included)
    record.write_text("".join([*lines[:2], "/x,/y,h,c,teleport,p,r" + "," * (width - 7) + "\n", *lines[2:]]))
    with pytest.raises(ManifestError, match=rf"{record.name}, line 3: unknown action 'teleport'"):
        undo_last(out)
    record.write_text("".join([*lines[:2], "/x,/y\n", *lines[2:]]))
    with pytest.raises(ManifestError, match=rf"line 3: 2 fields where the header has {width}"):
        undo_last(out)
    run_id = new_run_id()
    other = plan_reorganization(clusters_for(src, {"a.jpg": "x"}), out, "q", "copy", False, run_id)
    assert [a.action for a in other] == [ActionKind.COPY]
