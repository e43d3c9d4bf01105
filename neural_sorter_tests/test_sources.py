"""Source folders: keys that never collide, a registry that refuses to share a key and heals when damaged."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from neural_sorter import sources
from neural_sorter.sources import SourceKeyCollision, SourceRegistry, partition_key_for


def test_keys_carry_64_bits_of_the_path(tmp_path: Path):
    key = partition_key_for(tmp_path / "photos")
    assert len(key.rsplit("-", 1)[1]) * 4 >= 64


def test_same_folder_same_key_however_written(tmp_path: Path, monkeypatch):
    real = tmp_path / "real" / "photos"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setenv("HOME", str(tmp_path / "real"))
    monkeypatch.chdir(tmp_path / "real")
    spellings = [real, "~/photos", "photos", "./photos/", tmp_path / "link" / "photos"]
    assert len({partition_key_for(s) for s in spellings}) == 1


def test_registry_refuses_a_key_bound_to_another_folder(tmp_path: Path, monkeypatch):
    registry = SourceRegistry(tmp_path / "store")
    (tmp_path / "a" / "photos").mkdir(parents=True)
    (tmp_path / "b" / "photos").mkdir(parents=True)
    monkeypatch.setattr(sources, "_DIGEST_HEX", 0)  # force every "photos" onto one key, as a hash collision would
    key = registry.add(tmp_path / "a" / "photos")
    with pytest.raises(SourceKeyCollision, match="already belongs to"):
        registry.add(tmp_path / "b" / "photos")
    assert registry.entries() == {key: str(tmp_path / "a" / "photos")}


def test_a_folder_registered_under_an_older_key_keeps_it(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    folder = tmp_path / "photos"
    folder.mkdir()
    (store / "sources.json").write_text(json.dumps({"photos-1a2b3c4d": str(folder)}))  # an older, 32-bit key
    registry = SourceRegistry(store)
    assert registry.key_for(folder) == "photos-1a2b3c4d"
    assert registry.add(folder, output_dir=tmp_path / "out") == "photos-1a2b3c4d"
    assert registry.record("photos-1a2b3c4d")["output_dir"] == str(tmp_path / "out")


@pytest.mark.parametrize("damage", [b"", b'{"photos-1": "/x"', b"\x00\x01\x02", b"[1, 2]"])
def test_damaged_registry_is_set_aside_and_rebuilt(tmp_path: Path, damage: bytes, caplog):
    store = tmp_path / "store"
    store.mkdir()
    (store / "sources.json").write_bytes(damage)
    folder = tmp_path / "photos"
    folder.mkdir()
    with caplog.at_level(logging.WARNING):
        key = SourceRegistry(store).add(folder)
    assert SourceRegistry(store).entries() == {key: str(folder)}
    kept = [p for p in os.listdir(store) if p.startswith("sources.json.damaged-")]
    assert len(kept) == 1 and (store / kept[0]).read_bytes() == damage
    assert "sources.json" in caplog.text and "damaged" in caplog.text
