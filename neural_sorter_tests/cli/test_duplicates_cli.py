"""Copies of one picture through the real CLI: reported in --json, kept together, separated into
``_duplicates/<group>/`` by default, never a cluster of their own, and undone by one ``undo``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from neural_sorter.inventory import content_hash
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("neural-sorter"))


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=900)


def test_copies_are_reported_kept_together_separated_and_undone(tmp_path):
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    src = copy_images(tmp_path / "photos", 30)
    original = sorted(src.rglob("*.png"))[0]
    copies = []
    for n in range(11):  # one picture copied eleven times: bytes, sizes, formats, turned, mirrored
        target = src / "copies" / f"copy-{n:02d}"
        target.parent.mkdir(exist_ok=True)
        if n < 4:
            path = target.with_suffix(".png")
            shutil.copy2(original, path)
        else:
            with Image.open(original) as image:
                image = image.convert("RGB")
                image = [
                    lambda i: i.resize((i.width // 2, i.height // 2)),
                    lambda i: i.transpose(Image.Transpose.ROTATE_90),
                    lambda i: i.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                    lambda i: i,
                    lambda i: i.resize((i.width * 3 // 4, i.height * 3 // 4)),
                    lambda i: i.crop((2, 2, i.width - 2, i.height - 2)),
                    lambda i: i.resize((i.width // 3, i.height // 3)),
                ][n - 4](image)
                path = target.with_suffix(".jpg")
                image.save(path, quality=88)
        copies.append(path)
    before = {p: content_hash(p) for p in src.rglob("*") if p.is_file()}
    out, home = tmp_path / "OUT", tmp_path / "home"

    done = run("sort", str(src), "--out", str(out), "--backend", "cnn", "--projection", "pca", "--json", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    groups = summary["duplicates"]["group_list"]
    mine = [g for g in groups if original.relative_to(src).as_posix() in [g["representative"], *g["copies"]]]
    assert len(mine) == 1, groups
    members = {mine[0]["representative"], *mine[0]["copies"]}
    found = {p.relative_to(src).as_posix() for p in copies} & members
    assert len(found) >= 10, f"only {len(found)} of 11 copies grouped: {mine[0]}"
    assert summary["duplicates"]["exact_copies"] >= 3

    tree = Path(summary["output"])
    assert tree == out / src.name  # OUT/<source folder name>
    in_duplicates = [p for p in (tree / "_duplicates").rglob("*") if p.is_file()]
    assert len({p.parent for p in in_duplicates if p.parent.name == mine[0]["group"]}) == 1
    assert len(in_duplicates) >= len(found) - 1  # every copy but the representative
    clusters = {p.name: p for p in tree.iterdir() if p.is_dir() and not p.name.startswith("_")}
    holding = [name for name, folder in clusters.items() if any(folder.iterdir())]
    representative_folder = next(
        name for name, folder in clusters.items() if (folder / Path(mine[0]["representative"]).name).exists()
    )
    # One point per group: the copies did not make a cluster of their own around the representative.
    assert sum(1 for _ in clusters[representative_folder].iterdir()) > 1, holding
    # Every file is somewhere in OUT exactly once (copy mode, default separate).
    placed = sorted(content_hash(p) for p in tree.rglob("*") if p.is_file())
    assert placed == sorted(before.values())

    undo = run("undo", str(out), home=home)
    assert undo.returncode == 0, undo.stderr
    assert not [p for p in tree.rglob("*") if p.is_file()] if tree.exists() else True
    assert {p: content_hash(p) for p in src.rglob("*") if p.is_file()} == before
