"""Manifest and history CSVs stay valid UTF-8 whatever the file names are (issue 10, item 13).

On Linux a file name is any bytes; ``caf\\xe9.png`` (Latin-1) is not UTF-8. The records must still decode
strictly as UTF-8 and load with ``pandas.read_csv`` (spreadsheets, scripts), keep the exact bytes of every
such name in an extra column, and ``undo`` must put the original bytes back.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pandas as pd
import pytest

from neural_sorter.reorganize.actions import Action, ActionKind
from neural_sorter.reorganize.manifest import read_manifest, write_manifest
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

CLI = str(Path(sys.executable).with_name("neural-sorter"))
# Latin-1 names (not UTF-8), a valid UTF-8 name that looks like an escape, a comma and a line break.
AWKWARD = [b"caf\xe9.png", b"na\xefve \xff\xfe.png", b"looks\\xe9escaped.png", b"comma, \xe9 and\nbreak.png"]


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600)


def tree_bytes(folder: Path) -> dict[bytes, bytes]:
    """Every file under ``folder`` by its exact relative name in bytes, with its content."""
    root = os.fsencode(folder)
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def check_record(path: Path, expected: set[bytes]) -> pd.DataFrame:
    """The record decodes strictly, pandas reads it, and its bytes column names exactly ``expected``."""
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: raises on any byte that is not UTF-8
    table = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    assert "source_bytes" in table.columns and "destination_bytes" in table.columns
    exact = {unquote_to_bytes(value) for value in table["source_bytes"] if value}
    assert {os.path.basename(name) for name in exact} == expected
    return table


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_undecodable_names_sorted_by_the_cli_recorded_as_utf8_and_undone_byte_exact(tmp_path):
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    src, out, home = tmp_path / "photos", tmp_path / "OUT", tmp_path / "home"
    copy_images(src, 9)
    images = sorted(p for p in src.rglob("*.png"))
    for image, name in zip(images, AWKWARD, strict=False):  # four of the nine get awkward names
        os.rename(os.fsencode(image), os.path.join(os.fsencode(image.parent), name))
    before = tree_bytes(src)
    assert set(AWKWARD) <= {os.path.basename(name) for name in before}

    sort = run_cli("sort", str(src), "--out", str(out), "--backend", "cnn", "--k", "2", "--mode", "move", home=home)
    assert sort.returncode == 0, sort.stderr[-3000:]
    assert tree_bytes(src) == {}  # moved: every file is in OUT now
    placed = tree_bytes(out)
    assert sorted(c for n, c in placed.items() if b".neural-sorter" not in n) == sorted(before.values())

    undecodable = {name for name in AWKWARD if not _is_utf8(name)}
    manifest = out / ".neural-sorter" / "manifest.csv"
    table = check_record(manifest, undecodable)
    assert len(table) == len(before)
    history = sorted((out / ".neural-sorter" / "history").glob("*.csv"))
    assert len(history) == 1
    check_record(history[0], undecodable)
    # The text columns hold a readable escaped form, and valid names are left exactly as they are.
    sources = set(table["source"])
    assert any(s.endswith("caf\\xe9.png") for s in sources)
    assert any(s.endswith("looks\\xe9escaped.png") for s in sources)

    undo = run_cli("undo", str(out), home=home)
    assert undo.returncode == 0, undo.stderr[-3000:]
    assert tree_bytes(src) == before  # names restored byte for byte, contents unchanged


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_manifest_round_trip_keeps_exact_names(tmp_path):
    """write_manifest then read_manifest gives back the very strings (surrogates included) undo acts on."""
    names = [os.fsdecode(b"/src/" + name) for name in AWKWARD] + ["/src/plain.png"]
    actions = [
        Action(
            source=name,
            destination=name.replace("/src/", "/OUT/p/c/"),
            content_hash=f"h{i}",
            cluster="c",
            action=ActionKind.MOVE,
            partition="p",
            run_id="r",
            previous_destination=name.replace("/src/", "/OUT/p/old/") if i == 0 else "",
        )
        for i, name in enumerate(names)
    ]
    path = tmp_path / "manifest.csv"
    write_manifest(path, actions)
    path.read_bytes().decode("utf-8")
    table = read_manifest(path)
    assert list(table["source"]) == names
    assert list(table["destination"]) == [a.destination for a in actions]
    assert list(table["previous_destination"]) == [a.previous_destination for a in actions]
    assert list(pd.read_csv(path, dtype=str, keep_default_na=False)["content_hash"]) == [
        a.content_hash for a in actions
    ]


def test_old_manifest_with_raw_bytes_still_reads(tmp_path):
    """Records written before this change hold the raw bytes (surrogateescape); undo must still read them."""
    path = tmp_path / "manifest.csv"
    header = b"source,destination,content_hash,cluster,action,partition,run_id,previous_destination,source_folder\n"
    path.write_bytes(header + b"/src/caf\xe9.png,/OUT/p/c/caf\xe9.png,h,c,move,p,r,,\n")
    table = read_manifest(path)
    assert table["source"].iloc[0] == os.fsdecode(b"/src/caf\xe9.png")
    assert table["destination"].iloc[0] == os.fsdecode(b"/OUT/p/c/caf\xe9.png")
