"""Runs one sort or undo as whatever user starts it, printing a JSON summary; tests start it as a non-root
user (root ignores file permissions, so read-only folders only bite an ordinary user).

    python -m neural_sorter_tests.reorganize.user_worker sort SRC OUT MODE
    python -m neural_sorter_tests.reorganize.user_worker undo OUT
"""

import json
import sys
from pathlib import Path

from neural_sorter.reorganize import execute_plan, new_run_id, plan_reorganization, undo_last
from neural_sorter_tests.reorganize.kill_worker import clusters_of


def main(argv: list[str]) -> int:
    if argv[0] == "sort":
        src, out, mode = Path(argv[1]), Path(argv[2]), argv[3]
        run_id = new_run_id()
        report = execute_plan(out, plan_reorganization(clusters_of(src), out, "p", mode, False, run_id), run_id)
        print(json.dumps({"failures": report.failures}))
        return 0
    try:
        report = undo_last(Path(argv[1]))
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(
        json.dumps(
            {
                "reverted": report.reverted,
                "failures": report.failures,
                "missing": report.missing,
                "skipped": report.skipped,
                "complete": report.complete,
            }
        )
    )
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
