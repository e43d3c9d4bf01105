"""A sort into a full disk: the files that fit are placed, the rest are named, the exit status is 3 (partly
placed, distinct from a failed run), no temporary file is left, and the next sort with room places the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neural_sorter.inventory import content_hash
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("neural-sorter"))


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a small tmpfs (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=900)


def test_a_full_disk_places_what_fits_exits_3_and_leaves_no_temporaries(tmp_path, small_disk):
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    src = copy_images(tmp_path / "photos", 30)
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert total > 256 * 1024, "the test needs more bytes than the small disk holds"
    out = small_disk / "OUT"
    home = tmp_path / "home"
    done = run("sort", str(src), "--out", str(out), "--backend", "cnn", "--projection", "pca", home=home)
    assert done.returncode == 3, done.stderr[-3000:]
    last = [line for line in done.stderr.splitlines() if line.startswith("neural-sorter: error:")]
    assert len(last) == 1 and "could not be placed" in last[0]
    placed = [p for p in out.rglob("*") if p.is_file() and ".neural-sorter" not in p.parts]
    assert placed and len(placed) < 30
    assert not [p for p in out.rglob("*") if ".ns-tmp" in p.name], "temporary files left behind"
    originals = {content_hash(p) for p in src.rglob("*") if p.is_file()}
    assert {content_hash(p) for p in placed} <= originals  # what was placed is whole
