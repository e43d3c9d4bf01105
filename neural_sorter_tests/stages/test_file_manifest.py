"""``file_manifest`` as UI, sensor and schedule runs resolve it: an output folder written with ``~`` inside a
``~`` source is never ingested again."""

import json

import dagster as dg

from neural_sorter.defs.assets.file_manifest import file_manifest
from neural_sorter.defs.io_manager import ParquetIOManagerFactory
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.sources import PARTITIONS_NAME


def test_tilde_output_inside_tilde_source_is_not_reingested(tmp_path, monkeypatch):
    home = tmp_path / "home"
    photos = home / "photos"
    (photos / "sorted" / "src-1" / "cluster-00").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(b"\xff\xd8 not really")
    (photos / "sorted" / "src-1" / "cluster-00" / "a.jpg").write_bytes(b"\xff\xd8 a placed copy")
    monkeypatch.setenv("HOME", str(home))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"sources": ["~/photos"], "output_dir": "~/photos/sorted"}))
    sorter = SorterResource(config_file=str(config), store=str(tmp_path / "store"))
    key = sorter.registry().add("~/photos")  # as the UI's register job or the sensor would
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        result = dg.materialize(
            [file_manifest],
            partition_key=key,
            instance=instance,
            resources={"sorter": sorter, "io_manager": ParquetIOManagerFactory(sorter=sorter)},
        )
        assert result.success
        table = result.output_for_node("file_manifest")
    assert table["relative_path"].tolist() == ["a.jpg"]
    assert source_dirs.name == PARTITIONS_NAME
