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


def test_output_folder_is_the_source_name_and_collision_safe(tmp_path: Path):
    """Two folders called ``photos`` sorted into one OUT get ``photos`` and ``photos-2``, recorded so the choice
    never changes between runs (even once the first is removed, a third source never takes ``photos-2``)."""
    registry = SourceRegistry(tmp_path / "store")
    out = tmp_path / "out"
    first, second, third = (tmp_path / d / "photos" for d in ("a", "b", "c"))
    for folder in (first, second, third):
        folder.mkdir(parents=True)
    k1, k2, k3 = (registry.add(f, output_dir=out) for f in (first, second, third))
    assert registry.output_folder(k1, out) == out / "photos"  # a peek records nothing...
    assert registry.output_folder(k2, out) == out / "photos"
    assert registry.output_folder(k1, out, claim=True) == out / "photos"  # ...a claim does
    assert registry.output_folder(k2, out, claim=True) == out / "photos-2"
    assert registry.output_folder(k1, out) == out / "photos" and registry.output_folder(k2, out) == out / "photos-2"
    assert registry.record(k2)["output_folders"] == {str(out): "photos-2"}
    registry.add(second, output_dir=tmp_path / "elsewhere")  # re-registering keeps the recorded name
    assert registry.output_folder(k2, out) == out / "photos-2"
    assert registry.output_folder(k3, out, claim=True) == out / "photos-3"
    # another output folder is another namespace: the first there gets the plain name
    assert registry.output_folder(k3, tmp_path / "other", claim=True) == tmp_path / "other" / "photos"


def test_output_folder_avoids_folders_already_in_out_and_case_clashes(tmp_path: Path):
    registry = SourceRegistry(tmp_path / "store")
    out = tmp_path / "out"
    (out / "photos").mkdir(parents=True)  # made by someone else (another store, the user)
    upper, lower = tmp_path / "x" / "Photos", tmp_path / "y" / "photos"
    upper.mkdir(parents=True)
    lower.mkdir(parents=True)
    k_upper, k_lower = registry.add(upper), registry.add(lower)
    assert registry.output_folder(k_upper, out, claim=True) == out / "Photos-2"
    (out / "Photos-2").mkdir()  # its tree now exists: its own name stays its own
    assert registry.output_folder(k_upper, out, claim=True) == out / "Photos-2"
    # "photos-2" would be the same folder on macOS or Windows
    assert registry.output_folder(k_lower, out, claim=True) == out / "photos-3"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My Photos", "My Photos"),
        (".hidden", "hidden"),
        ("a:b*c?", "a_b_c_"),
        ("Ferien 2024 · Côte d'Azur", "Ferien 2024 · Côte d'Azur"),
        ("tab\there", "tab_here"),
        ("x" * 300, "x" * 120),
        ("...", "root"),
    ],
)
def test_folder_names_are_readable_and_safe(tmp_path: Path, name: str, expected: str):
    assert sources.folder_name_for(tmp_path / name) == expected


def test_undecodable_folder_name_gets_a_safe_name(tmp_path: Path):
    raw = os.fsdecode(b"caf\xe9")  # Latin-1 bytes on a UTF-8 system: a surrogate in Python
    assert sources.folder_name_for(tmp_path / raw) == "caf_"


def test_output_folder_of_an_unregistered_source_needs_its_path(tmp_path: Path):
    registry = SourceRegistry(tmp_path / "store")
    with pytest.raises(sources.UnknownSourceError):
        registry.output_folder("photos-0", tmp_path / "out")
    folder = tmp_path / "photos"
    folder.mkdir()
    key = partition_key_for(folder)
    assert registry.output_folder(key, tmp_path / "out", folder, claim=True) == tmp_path / "out" / "photos"
    assert registry.resolve(key) == folder


def test_a_source_whose_name_record_was_lost_takes_back_the_folder_its_files_are_in(tmp_path: Path):
    """``prefer`` (the folder the source's placements are in, from OUT's records): a source removed and added
    again, or whose recorded name was lost, gets its own folder back instead of ``photos-2`` and a relocation
    of everything; a name another source holds, or one not derived from this folder's name, is not taken."""
    registry = SourceRegistry(tmp_path / "store")
    out = tmp_path / "out"
    (out / "photos").mkdir(parents=True)  # this source's tree, sorted before its registry entry was removed
    (out / "photos-9").mkdir()
    folder = tmp_path / "a" / "photos"
    folder.mkdir(parents=True)
    key = registry.add(folder)
    assert registry.output_folder(key, out, claim=True, prefer="photos") == out / "photos"
    registry.remove(key)
    other = tmp_path / "b" / "photos"
    other.mkdir(parents=True)
    k_other = registry.add(other)
    assert registry.output_folder(k_other, out, claim=True, prefer="photos-9") == out / "photos-9"
    key = registry.add(folder)
    assert registry.output_folder(key, out, prefer="photos-9") == out / "photos-2"  # held by the other source
    assert registry.output_folder(key, out, prefer="holiday") == out / "photos-2"  # not this folder's name
    assert registry.output_folder(key, out, prefer=key) == out / "photos-2"  # the older key layout: move on
    assert registry.output_folder(key, out, claim=True, prefer="photos") == out / "photos"
