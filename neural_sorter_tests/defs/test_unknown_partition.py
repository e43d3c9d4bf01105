"""A partition key no folder was registered under (typed into the UI's "Add partition") fails the first step
in one line that says how to register the folder, not with a KeyError trace (issue 11)."""

import dagster as dg

from neural_sorter.defs.assets.file_manifest import file_manifest
from neural_sorter.defs.resources import SorterResource
from neural_sorter.sources import PARTITIONS_NAME

# Resolved at import: Dagster binds definitions state storage to the first instance alive at resolution time,
# and test instances are short-lived (see test_automation).
JOB = dg.Definitions(
    assets=[file_manifest], resources={"sorter": SorterResource.configure_at_launch()}
).resolve_implicit_global_asset_job_def()


def test_unregistered_partition_fails_in_one_line(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["typed-by-hand"])
        result = JOB.execute_in_process(
            partition_key="typed-by-hand",
            instance=instance,
            run_config={"resources": {"sorter": {"config": {"store": str(tmp_path / "store")}}}},
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert "neural-sorter sources add PATH" in error.message and "KeyError" not in error.message
    assert failure.step_failure_data.user_failure_data is not None  # a dg.Failure: no user code trace shown
