"""The folder sensor knows what was last sorted (issue 11): a folder sorted from the CLI or the UI is not
re-sorted when the sensor is switched on, is re-sorted once a file changes, and watch-root folders never
take an output folder for a source."""

import json
import os
from pathlib import Path

import dagster as dg

from neural_sorter.defs.automation import source_directory_sensor
from neural_sorter.defs.resources import SorterResource
from neural_sorter.inventory import build_file_manifest
from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry, default_output_dir
from neural_sorter.store import Store
from neural_sorter.tables import FILE_MANIFEST


def tick(instance, sorter, cursor=None):
    result = source_directory_sensor(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"sorter": sorter})
    )
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(PARTITIONS_NAME, list(request.partition_keys))
    return result


def test_sorted_folder_is_left_alone_until_it_changes(tmp_path: Path):
    store_root = tmp_path / "store"
    src = tmp_path / "scans"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes(b"a")
    (src / "sub" / "b.png").write_bytes(b"bb")
    # Sorted from the CLI into a folder that lies in a watch root.
    key = SourceRegistry(str(store_root)).add(src, output_dir=tmp_path / "inbox" / "scans-out")
    Store(str(store_root)).write(FILE_MANIFEST, key, build_file_manifest(src))  # what the CLI's sort stored
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"watch_roots": [str(tmp_path / "inbox")]}))
    sorter = SorterResource(config_file=str(config), store=str(store_root))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        first = tick(instance, sorter)
        assert first.run_requests == []
        assert first.skip_reason and "no changes in 1 source folder" in first.skip_reason.skip_message

        os.utime(src / "a.png", ns=(1, 1))
        changed = tick(instance, sorter, first.cursor)
        assert [r.partition_key for r in changed.run_requests] == [key]
        assert tick(instance, sorter, changed.cursor).run_requests == []  # requested once, not every tick

        inbox = tmp_path / "inbox"
        (inbox / "garden").mkdir(parents=True)
        (inbox / "garden" / "c.png").write_bytes(b"c")
        (inbox / "scans-out").mkdir()  # a recorded output folder is no source, even before its first file
        added = tick(instance, sorter, changed.cursor)
        (new_key,) = added.dynamic_partitions_requests[0].partition_keys
        assert new_key.startswith("garden-") and [r.partition_key for r in added.run_requests] == [new_key]
        record = SourceRegistry(str(store_root)).record(new_key)
        assert record["output_dir"] == default_output_dir(inbox)  # <root>-sorted beside the watch root
        (Path(default_output_dir(inbox))).mkdir()
        assert tick(instance, sorter, added.cursor).dynamic_partitions_requests == []
