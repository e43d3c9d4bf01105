"""One dynamic partition per registered source folder."""

import dagster as dg

from neural_sorter.sources import PARTITIONS_NAME

source_dirs = dg.DynamicPartitionsDefinition(name=PARTITIONS_NAME)
