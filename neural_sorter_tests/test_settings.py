from pathlib import Path

import pytest

from neural_sorter.settings import ConfigError, SorterConfig, load_config, validate_config
from neural_sorter.sources import SourceRegistry, UnknownSourceError, partition_key_for, walk_source


def test_defaults_are_what_a_first_run_uses():
    config = SorterConfig()
    assert (config.backend, config.method, config.k, config.projection, config.mode) == (
        "auto",
        "spectral",  # chosen by measurement on labelled sets (bench/README.md, quality)
        "auto",
        "umap",
        "copy",
    )
    assert config.precision == "fp32"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"backend": "resnet"}, "backend"),
        ({"k": 0}, "k"),
        ({"mode": "delete"}, "mode"),
        ({"precision": "fp16"}, "precision"),
        ({"autoencoder": {"epochs": 0}}, "autoencoder.epochs"),
        ({"colour": "red"}, "colour"),
        ({"seed": -1}, "seed"),
        ({"k": True}, "k"),
        ({"k": "many"}, "k"),
        ({"sources": "not-a-list"}, "sources"),
    ],
)
def test_invalid_values_name_the_field(data, field):
    with pytest.raises(ConfigError) as error:
        validate_config(data)
    assert f"{field}:" in str(error.value)


def test_yaml_file_and_overrides(tmp_path: Path):
    path = tmp_path / "sorter.yaml"
    path.write_text("backend: clip\ncategories: [cats, dogs]\nk: 4\n")
    config = load_config(path)
    assert config.backend == "clip" and config.categories == ["cats", "dogs"] and config.k == 4
    assert config.updated(k=None, method="hdbscan").method == "hdbscan"
    with pytest.raises(ConfigError, match="method"):
        config.updated(method="dbscan")


def test_bad_yaml_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("backend: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"not text|not valid YAML"):
        load_config(binary)
    listing = tmp_path / "list.yaml"
    listing.write_text("- backend\n- cnn\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)


def test_partition_keys_are_short_slugs_unique_per_path(tmp_path: Path):
    a = partition_key_for(tmp_path / "My Photos!")
    b = partition_key_for(tmp_path / "other" / "My Photos!")
    assert a != b and a.startswith("my-photos-") and len(a) <= 33
    assert all(c.isalnum() or c == "-" for c in a)


def test_registry_round_trip(tmp_path: Path):
    registry = SourceRegistry(str(tmp_path / "store"))
    key = registry.add(tmp_path)
    assert registry.resolve(key) == tmp_path
    with pytest.raises(UnknownSourceError, match="sources add"):
        registry.resolve("nope-00000000")
    assert registry.resolve(partition_key_for("/data/x"), extra_sources=["/data/x"]) == Path("/data/x")
    assert registry.remove(key) == key and registry.entries() == {}


def test_walk_skips_hidden_output_and_outside_links(tmp_path: Path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / ".hidden").mkdir()
    (src / "out").mkdir()
    (src / "a.jpg").write_bytes(b"x")
    (src / "sub" / "b.png").write_bytes(b"y")
    (src / ".hidden" / "c.jpg").write_bytes(b"z")
    (src / "out" / "d.jpg").write_bytes(b"w")
    (tmp_path / "outside.jpg").write_bytes(b"o")
    (src / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    (src / "loop").symlink_to(src)
    found = {e.relative_path: e for e in walk_source(src, exclude=[src / "out"])}
    assert set(found) == {"a.jpg", "sub/b.png", "link.jpg", "loop"}
    assert "outside" in found["link.jpg"].reason
    assert "not followed" in found["loop"].reason
