"""Each option is declared once (in its stage's options model): the CLI, the launchpad and the YAML defaults
all follow that declaration."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from neural_sorter.clustering import DEFAULT_METHOD
from neural_sorter.defs.assets.clusters import ClustersConfig
from neural_sorter.defs.config import set_values

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, sys
    from neural_sorter.stages.clusters import ClusterOptions
    # The one declaration, changed before anything derives from it.
    ClusterOptions.model_fields["min_cluster_size"].default = 9
    ClusterOptions.model_rebuild(force=True)
    from neural_sorter import settings
    settings.SorterConfig.model_rebuild(force=True)
    from neural_sorter.cli import build_parser
    from neural_sorter.defs.assets.clusters import ClustersConfig
    from dagster._config.pythonic_config import infer_schema_from_config_class
    sort = build_parser()._subparsers._group_actions[0].choices["sort"]
    schema = infer_schema_from_config_class(ClustersConfig).config_type.fields
    print(json.dumps({
        "yaml_default": settings.validate_config({}).min_cluster_size,
        "cli_help": sort.format_help(),
        "launchpad": schema["min_cluster_size"].description,
    }))
    """
)


def test_changing_a_default_in_its_declaration_changes_cli_launchpad_and_yaml():
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["yaml_default"] == 9
    assert "Default: 9." in seen["launchpad"]
    unchanged = subprocess.run(
        [sys.executable, "-m", "neural_sorter.cli", "sort", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert f"Default: {DEFAULT_METHOD}." in " ".join(unchanged.stdout.split())  # the CLI shows declared defaults
    assert "Default: 9." not in unchanged.stdout
    probe_cli = PROBE.replace('"min_cluster_size"].default = 9', '"method"].default = "hdbscan"').replace(
        "settings.validate_config({}).min_cluster_size", "settings.validate_config({}).method"
    )
    seen = json.loads(
        subprocess.run([sys.executable, "-c", probe_cli], cwd=ROOT, capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert seen["yaml_default"] == "hdbscan"
    assert "Clustering method. Default: hdbscan." in " ".join(seen["cli_help"].split())  # ... and follows them


def test_launchpad_offers_choices_and_rejects_a_bad_value_before_the_run():
    @dg.asset
    def probe(config: ClustersConfig) -> dict:
        return set_values(config)

    with dg.instance_for_test() as instance:  # its own instance: never one another test left behind
        good = {"ops": {"probe": {"config": {"method": "hdbscan", "k": "5"}}}}
        ok = dg.materialize([probe], run_config=good, instance=instance)
        assert ok.output_for_node("probe") == {"method": "hdbscan", "k": "5"}
        with pytest.raises(dg.DagsterInvalidConfigError, match="not in enum"):
            bad = {"ops": {"probe": {"config": {"method": "nearest"}}}}
            dg.materialize([probe], run_config=bad, instance=instance)


def test_unset_launchpad_fields_fall_through():
    assert set_values(ClustersConfig()) == {}
