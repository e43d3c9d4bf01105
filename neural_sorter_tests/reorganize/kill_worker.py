"""Runs one reorganization of SRC into OUT as a separate process, so tests can SIGKILL it mid-way.

python -m neural_sorter_tests.reorganize.kill_worker SRC OUT MODE
"""

import sys
from pathlib import Path

import pandas as pd

from neural_sorter.inventory import content_hash
from neural_sorter.reorganize import execute_plan, new_run_id, plan_reorganization


def clusters_of(src: Path) -> pd.DataFrame:
    rows = []
    for n, path in enumerate(sorted(p for p in src.rglob("*") if p.is_file())):
        relative = str(path.relative_to(src))
        rows.append(
            {
                "source": str(path),
                "relative_path": relative,
                "content_hash": content_hash(path),
                "cluster_name": f"cluster-{n % 3:02d}",
                "hier_code": f"{n % 3:02d}-{n:05d}",
            }
        )
    return pd.DataFrame(rows)


def main(src: str, out: str, mode: str) -> int:
    run_id = new_run_id()
    actions = plan_reorganization(clusters_of(Path(src)), Path(out), "p", mode, False, run_id)
    report = execute_plan(Path(out), actions, run_id)
    for source, reason in report.failures:
        print(f"FAILED {source}: {reason}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
