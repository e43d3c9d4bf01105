"""The Dagster run that materialized a partition's ``3d_projection``, for the header (best effort)."""

from __future__ import annotations

import logging
import os
from typing import Any

from neural_sorter.tables import PROJECTION_3D

log = logging.getLogger(__name__)


class RunLookup:
    """Asks the Dagster instance of this home, opened once and only when one exists (it is never created)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._runs: dict[tuple[str, str], str | None] = {}
        self._instance: Any = None
        self._instance_checked = False

    def run_id(self, key: str, version: str) -> str | None:
        """The run id for a partition's projection at ``version``; None when the instance cannot say."""
        if not self.enabled:
            return None
        cache_key = (key, version)
        if cache_key in self._runs:
            return self._runs[cache_key]
        run = None
        try:
            instance = self._dagster_instance()
            if instance is not None:
                import dagster as dg

                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(PROJECTION_3D), asset_partitions=[key]), limit=1
                ).records
                run = records[0].run_id if records else None
        except Exception as exc:  # the header is informative only; never fail a page over it
            log.info("no run id from the Dagster instance: %s", exc)
        self._runs[cache_key] = run
        return run

    def _dagster_instance(self) -> Any:
        if self._instance_checked:
            return self._instance
        self._instance_checked = True
        from neural_sorter import settings

        home = settings.dagster_home()
        if not (home / "dagster.yaml").is_file() and not (home / "history").is_dir():
            return None
        import dagster as dg

        if os.environ.get("DAGSTER_HOME"):
            self._instance = dg.DagsterInstance.get()
        else:
            self._instance = dg.DagsterInstance.from_config(str(home))
        return self._instance
