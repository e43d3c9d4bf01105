"""The real ``neural-sorter`` command in a subprocess (issue 11): machine-readable stdout, a quiet and
informative stderr, one-line failures, and sources that read the same however their folder is written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from neural_sorter.sources import partition_key_for

ROOT = Path(__file__).resolve().parents[1]
TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
CLI = Path(sys.executable).with_name("neural-sorter")


def images(dest: Path, per_class: int = 3) -> list[Path]:
    if not TUXPAINT.is_dir():
        pytest.skip(f"real-image data set not found at {TUXPAINT}")
    copied = []
    for cls in ("birds", "fish", "fruit"):
        for image in sorted((TUXPAINT / cls).glob("*.png"))[:per_class]:
            (dest / cls).mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copy2(image, dest / cls / image.name)))
    return copied


def environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return env


def run(tmp_path: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=environment(tmp_path), cwd=cwd, timeout=300
    )


def run_with_terminal_stderr(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Runs the CLI with stderr on a pseudo-terminal (as in a shell), so progress bars draw; (rc, stdout, stderr)."""
    master, slave = os.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = subprocess.Popen(
        [str(CLI), *args], stdout=subprocess.PIPE, stderr=slave, env=environment(tmp_path), text=True
    )
    os.close(slave)
    stdout, _ = process.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_cli_json_stdout_parses_line_by_line_and_stderr_shows_progress(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    images(first)
    images(second, per_class=2)
    out = tmp_path / "sorted"
    code, stdout, stderr = run_with_terminal_stderr(
        tmp_path, "sort", str(first), str(second), "--out", str(out), "--backend", "cnn", "--json"
    )
    assert code == 0, stderr
    summaries = [json.loads(line) for line in stdout.splitlines()]  # nothing but JSON on stdout
    assert [s["source"] for s in summaries] == [str(first), str(second)]
    assert [s["files"] for s in summaries] == [9, 6] and all(s["backend"] == "cnn" for s in summaries)
    assert summaries[0]["undo"] == f"neural-sorter undo {out}"
    assert summaries[0]["manifest"] == str(out / ".neural-sorter" / "manifest.csv")
    # each source's tree is named after its folder, the summary says where
    assert [s["output"] for s in summaries] == [str(out / "first"), str(out / "second")]
    assert {p.name for p in out.iterdir()} == {"first", "second", ".neural-sorter"}
    # stderr: a line per long stage and tqdm bars with counts and ETA; no library chatter, no warnings.
    assert "decoding 9 files…" in stderr and "embedding 9 files (cnn backend)…" in stderr
    assert re.search(r"embed \(cnn\):.*\d+/9 \[.*<", stderr), stderr[-2000:]
    for noise in ("Loaded pretrained weights", "Warning", "warn(", "Traceback"):
        assert noise not in stderr and noise not in stdout, noise

    # The same folder again, for a person: folders with counts, the manifest, the undo command.
    again = run(tmp_path, "sort", str(first), "--backend", "cnn")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert f"sorted into {out / 'first'}:" in lines  # the output folder and the folder name in it were remembered
    folders = [line for line in lines if re.match(r"  \S+/ +\d+ files?$", line)]
    assert sum(int(line.split()[-2]) for line in folders) == 9
    assert f"manifest: {out / '.neural-sorter' / 'manifest.csv'}" in lines
    assert f"undo: neural-sorter undo {out}" in lines
    assert not again.stderr.strip().startswith("{") and "Loaded pretrained" not in again.stdout + again.stderr


@pytest.mark.slow
def test_cli_failures_are_one_line(tmp_path):
    src = tmp_path / "src"
    images(src, per_class=1)
    no_weights = run(tmp_path, "sort", str(src), "--out", str(tmp_path / "o"), "--backend", "clip")
    assert no_weights.returncode == 1 and no_weights.stdout == ""
    lines = no_weights.stderr.splitlines()
    errors = [line for line in lines if line.startswith("neural-sorter: error:")]
    assert len(errors) == 1 and "--clip-model" in errors[0] and "--backend cnn" in errors[0], lines
    assert len(lines) <= 4 and "Traceback" not in no_weights.stderr, lines  # "sorting ...", stage lines, error

    missing = run(tmp_path, "sort", str(src), "--out", str(tmp_path / "o"), "--clip-model", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"neural-sorter: error: CLIP model folder not found: {tmp_path / 'nope'} "
        "(pass --clip-model with a folder that holds a saved model)"
    ]


@pytest.mark.slow
def test_sources_same_key_however_written_list_and_remove(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (tmp_path / "link").symlink_to(photos)
    key = partition_key_for(photos)
    added = [run(tmp_path, "sources", "add", spelled, cwd=tmp_path) for spelled in ("~/photos", "photos", "link")]
    assert all(a.returncode == 0 for a in added), [a.stderr for a in added]
    assert {a.stdout.split("\t")[0] for a in added} == {key}
    out = tmp_path / "elsewhere"
    run(tmp_path, "sources", "add", str(photos), "--out", str(out))
    listed = run(tmp_path, "sources", "list").stdout.splitlines()
    assert listed == [f"{key}\t{photos}\t{out}"]

    import dagster as dg

    store = tmp_path / "home" / "store"
    (store / "clusters").mkdir(parents=True)
    (store / "clusters" / f"{key}.parquet").write_bytes(b"x")
    kept = run(tmp_path, "sources", "remove", "~/photos")
    assert kept.returncode == 0 and "kept" in kept.stdout
    assert (store / "clusters" / f"{key}.parquet").exists()
    assert run(tmp_path, "sources", "list").stdout == ""
    with dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster")) as instance:
        assert instance.get_dynamic_partitions("source_dirs") == []

    run(tmp_path, "sources", "add", "link", cwd=tmp_path)
    deleted = run(tmp_path, "sources", "remove", key, "--delete-data")
    assert deleted.returncode == 0 and not (store / "clusters" / f"{key}.parquet").exists()
    unknown = run(tmp_path, "sources", "remove", key)
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1
