"""Files with identical bytes are decoded once and share their frames (decode_manifest and decode_and_embed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neural_sorter import encoders
from neural_sorter.decoding import frames as frames_module
from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
from neural_sorter.inventory import build_file_manifest


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "copies").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root / name)
    shutil.copy2(root / "a.png", root / "copies" / "a1.png")
    shutil.copy2(root / "a.png", root / "copies" / "a2.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    shutil.copy2(root / "broken.jpg", root / "copies" / "broken.jpg")
    return root


def _counting(monkeypatch: pytest.MonkeyPatch, module) -> list[str]:
    calls: list[str] = []
    original = frames_module.decode_file

    def decode_file(path, kind, options):
        calls.append(str(path))
        return original(path, kind, options)

    monkeypatch.setattr(module, "decode_file", decode_file)
    return calls


def test_identical_files_are_decoded_once(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, frames_module)
    manifest = build_file_manifest(folder)
    table, stats = decode_manifest(manifest, DecodeOptions(thumbnail_size=32, workers=2))
    assert len(calls) == 3  # a, b, broken: not their copies
    assert stats == {"reused": 0, "decoded": 4, "failed": 2}
    assert sorted(table["relative_path"]) == sorted(manifest["relative_path"])
    by_path = table.set_index("relative_path")
    assert by_path.loc["copies/a2.png", "thumbnail"] == by_path.loc["a.png", "thumbnail"]
    assert by_path.loc["copies/broken.jpg", "error"] == by_path.loc["broken.jpg", "error"]


def test_decode_and_embed_decodes_identical_files_once(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, encoders)
    manifest = build_file_manifest(folder)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1)[:, :8] + 1.0

    encoder = encoders.Encoder(
        "toy", "toy", lambda im: np.asarray(im.resize((4, 4)), np.float32).T, forward, torch.device("cpu")
    )
    _frames, decode_stats, table, stats = encoders.decode_and_embed(
        manifest, encoder, DecodeOptions(thumbnail_size=32, workers=2), batch_size=2
    )
    assert len(calls) == 3
    assert decode_stats == {"reused": 0, "decoded": 4, "failed": 2}
    assert len(table) == 4 and stats["embedded"] == 2
    vectors = table.set_index("relative_path")["vector"]
    np.testing.assert_array_equal(vectors["copies/a1.png"], vectors["a.png"])
