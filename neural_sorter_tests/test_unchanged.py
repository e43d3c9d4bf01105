"""An unchanged re-sort is answered from the last run's stamp without Dagster or torch, and every kind of
change makes a full run again (issue 15). The real ``neural-sorter`` command in subprocesses, stdout parsed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neural_sorter import unchanged
from neural_sorter.sources import partition_key_for

ROOT = Path(__file__).resolve().parents[1]
TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
CLI = Path(sys.executable).with_name("neural-sorter")
HEAVY = ("torch", "dagster", "sklearn", "umap", "numba", "torchvision", "openvino", "onnxruntime")


def environment(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment; its code is the snapshot ``code`` made at the test's start when there is one."""
    env = {**os.environ, "NEURAL_SORTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    if (tmp_path / "code").is_dir():
        env["PYTHONPATH"] = str(tmp_path / "code")
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return env


def copy_images(dest: Path, classes=("birds", "fish", "fruit"), per_class: int = 3, skip: int = 0) -> list[Path]:
    """Real images copied with their mtimes kept (as ``cp -p`` or a camera import does)."""
    if not TUXPAINT.is_dir():
        pytest.skip(f"real-image data set not found at {TUXPAINT}")
    copied = []
    for cls in classes:
        for image in sorted((TUXPAINT / cls).glob("*.png"))[skip : skip + per_class]:
            (dest / cls).mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copy2(image, dest / cls / image.name)))
    return copied


def snapshot_code(tmp_path: Path) -> Path:
    """A copy of the package for the CLI to run. A stamp is bound to the code that wrote it (a changed install
    may sort differently), and in a shared working tree other people's edits would otherwise turn an
    unchanged re-sort into a full run halfway through the test."""
    return Path(
        shutil.copytree(
            ROOT / "neural_sorter", tmp_path / "code" / "neural_sorter", ignore=shutil.ignore_patterns("__pycache__")
        )
    )


def settle() -> None:
    """A change's ctime is fresh; a walk within RACY_CTIME_NS of it rightly writes no stamp, so the tests wait
    that long after changing something whose *next* run they expect to be answered from the stamp."""
    time.sleep(unchanged.RACY_CTIME_NS / 1e9 + 0.1)


def sort(tmp_path: Path, src: Path, out: Path, *extra: str) -> dict:
    done = subprocess.run(
        [str(CLI), "sort", str(src), "--out", str(out), "--backend", "cnn", "--json", *extra],
        capture_output=True,
        text=True,
        env=environment(tmp_path),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()  # one JSON document per source, nothing else
    return json.loads(line)


@pytest.mark.slow
def test_unchanged_resort_answers_from_the_stamp_and_every_change_runs_in_full(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    code = snapshot_code(tmp_path)
    copy_images(src)
    settle()
    first = sort(tmp_path, src, out)
    assert first["unchanged"] is False and first["files"] == 9

    second = sort(tmp_path, src, out)
    assert second["unchanged"] is True
    assert second["run_id"] == first["run_id"]  # the last run's id: no new run
    # The fast path imports none of the heavy libraries: the same command through neural_sorter.cli.main.
    probe = (
        "import json, sys\n"
        "from neural_sorter.cli import main\n"
        f"code = main(['sort', {str(src)!r}, '--out', {str(out)!r}, '--backend', 'cnn', '--json'])\n"
        f"print(json.dumps({{'code': code, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=environment(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary_line, probe_line = done.stdout.splitlines()
    assert json.loads(summary_line)["unchanged"] is True
    assert json.loads(probe_line) == {"code": 0, "loaded": []}

    # The same document a full run of the unchanged folder prints (--force makes one: another option).
    forced = sort(tmp_path, src, out, "--force")
    assert forced["unchanged"] is False and forced["run_id"] != first["run_id"]
    assert forced["embedded_new"] == 0 and forced["actions"] == {"keep": 9}
    ignore = ("unchanged", "run_id")
    assert {k: v for k, v in second.items() if k not in ignore} == {k: v for k, v in forced.items() if k not in ignore}

    def full_then_unchanged(why: str, *extra: str) -> dict:
        ran = sort(tmp_path, src, out, *extra)
        assert ran["unchanged"] is False, why
        settle()
        again = sort(tmp_path, src, out, *extra)
        assert again["unchanged"] is True and again["run_id"] == ran["run_id"], why
        return ran

    full_then_unchanged("options back from --force")
    (code / "naming.py").write_text((code / "naming.py").read_text() + "\n")  # the code changed (an upgrade)
    full_then_unchanged("the code changed")

    # (a) the source tree: a file added, one touched (content and size kept), one removed.
    copy_images(src, classes=("birds",), per_class=1, skip=5)
    settle()
    added = full_then_unchanged("a file was added")
    assert added["files"] == 10
    touched = src / "fish" / sorted(os.listdir(src / "fish"))[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 1_000_000_000))
    settle()
    full_then_unchanged("a file was touched")
    (src / "fruit" / sorted(os.listdir(src / "fruit"))[0]).unlink()
    settle()
    assert full_then_unchanged("a file was removed")["files"] == 9

    # (b) an option changed, then back; a dry run always runs and leaves no stamp.
    assert full_then_unchanged("another method", "--method", "kmeans", "--k", "2")["clusters"]
    full_then_unchanged("the default method again")
    assert sort(tmp_path, src, out, "--dry-run")["unchanged"] is False
    full_then_unchanged("after a dry run")

    # (d) a placed file deleted from OUT.
    placed = next(Path(first["output"]).rglob("*.png"))
    placed.unlink()
    full_then_unchanged("a placed file was deleted")

    # (c) a hand correction added (as the viewer saves it), then a table rewritten by another run.
    from neural_sorter import corrections
    from neural_sorter.store import Store
    from neural_sorter.tables import CLUSTERS, PROJECTION_3D

    store = Store(tmp_path / "home" / "store")
    key = partition_key_for(src)
    table = store.read(CLUSTERS, key)
    corrections.add_correction(store, key, corrections.rename(table, int(table["cluster_id"].iloc[0]), "by-hand"))
    renamed = full_then_unchanged("a correction was added")
    assert "by-hand" in renamed["clusters"]
    store.write(PROJECTION_3D, key, store.read(PROJECTION_3D, key))  # same rows, a new table (a UI run)
    full_then_unchanged("a stored table was rewritten")


@pytest.mark.slow
def test_files_changed_just_before_the_walk_write_no_stamp(tmp_path):
    """A file whose mtime is seconds before the scan (or after it: a clock ahead, an NFS server's) may change
    again without its mtime changing (coarse clocks): the sort that sees it runs in full and stamps nothing,
    so the next one runs in full too. The mtime is set ten minutes ahead so that the walk, however late the
    loaded machine starts it, still falls within the window."""
    src, out = tmp_path / "src", tmp_path / "out"
    snapshot_code(tmp_path)
    copy_images(src, classes=("fish",), per_class=3)
    fresh = src / "fish" / "fresh.png"
    shutil.copyfile(next((src / "fish").glob("*.png")), fresh)
    ahead = time.time_ns() + 600_000_000_000
    os.utime(fresh, ns=(ahead, ahead))
    first = sort(tmp_path, src, out)
    assert first["unchanged"] is False
    assert not (tmp_path / "home" / "store" / "unchanged" / f"{partition_key_for(src)}.json").exists()
    assert sort(tmp_path, src, out)["unchanged"] is False


def test_source_signature_sees_what_the_scan_sees(tmp_path):
    """Hidden names and the output folder are left out like walk_source leaves them out; anything else counts."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1")
    (tmp_path / "out").mkdir()
    base, _, _ = unchanged.source_signature(tmp_path, [tmp_path / "out"])
    (tmp_path / ".hidden").write_bytes(b"2")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"3")
    (tmp_path / "out" / "placed.png").write_bytes(b"4")
    assert unchanged.source_signature(tmp_path, [tmp_path / "out"])[0] == base
    (tmp_path / "a" / "y.png").write_bytes(b"5")
    assert unchanged.source_signature(tmp_path, [tmp_path / "out"])[0] != base
    (tmp_path / "a" / "y.png").unlink()
    os.utime(tmp_path / "a" / "x.png", ns=(0, 5))
    assert unchanged.source_signature(tmp_path, [tmp_path / "out"])[0] != base
    (tmp_path / "link").symlink_to(tmp_path / "a")
    with_link, _, _ = unchanged.source_signature(tmp_path, [tmp_path / "out"])
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to(tmp_path / "out")
    assert unchanged.source_signature(tmp_path, [tmp_path / "out"])[0] != with_link


def test_an_unreadable_folder_is_a_doubt_not_a_skipped_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a").chmod(0)
    try:
        if os.access(tmp_path / "a", os.R_OK):
            pytest.skip("running as root: an unreadable folder cannot be made")
        with pytest.raises(unchanged.Doubt):
            unchanged.source_signature(tmp_path, [])
    finally:
        (tmp_path / "a").chmod(0o755)


def test_a_stamp_does_not_match_changed_options_or_a_missing_placed_file(tmp_path):
    """The comparison itself, without a run: options and OUT are part of the stamp."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.png").write_bytes(b"1")
    os.utime(src / "x.png", ns=(0, 10**18))
    placed = tmp_path / "out" / "x.png"
    placed.parent.mkdir()
    placed.write_bytes(b"1")
    manifest = tmp_path / "out" / "manifest.csv"
    manifest.write_text("source,destination\n")
    time.sleep(unchanged.RACY_CTIME_NS / 1e9 + 0.1)

    def before(config):
        return unchanged.take_before(src, [tmp_path / "out"], config, {"out": "o"}, None)

    path = tmp_path / "stamp.json"
    last = {"run_id": "r1", "files": 1, "embedded_new": 1, "embedded_reused": 0, "actions": {"copy": 1}}
    assert unchanged.write(path, before({"k": 3}), ["tables"], [str(placed)], manifest, last)
    # What a full run of the unchanged folder would report: nothing embedded or placed anew, the file kept.
    replayed = {"run_id": "r1", "files": 1, "embedded_new": 0, "embedded_reused": 1, "actions": {"keep": 1}}
    assert unchanged.check(path, before({"k": 3}), ["tables"]) == replayed
    assert unchanged.check(path, before({"k": 4}), ["tables"]) is None
    assert unchanged.check(path, before({"k": 3}), ["other tables"]) is None
    placed.unlink()
    assert unchanged.check(path, before({"k": 3}), ["tables"]) is None
