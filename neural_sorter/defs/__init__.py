"""The Dagster skin: one small module per asset, plus the resources, IO manager, partitions, jobs, sensor,
schedule and asset checks. Everything here resolves options, reads the previous value, calls the stage in
``neural_sorter.stages`` and turns its report into metadata; ``neural_sorter.definitions`` composes it."""
