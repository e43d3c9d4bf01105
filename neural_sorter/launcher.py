"""Starts ``dagster dev`` (webserver + daemon, so sensors and schedules run) on the neural-sorter home.

Signal handlers are reset before exec: a process started in the background by a shell inherits ignored
SIGINT/SIGTERM, and ``dagster dev`` would then never shut down when asked.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from neural_sorter import settings
from neural_sorter.defs.automation import AUTOMATION_ENV, CRON_ENV

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neural_sorter.launcher")
    parser.add_argument("what", choices=["ui"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    home = settings.prepare_dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        config = settings.load_config()
    except settings.ConfigError as exc:
        print(f"neural-sorter: error: {exc}", file=sys.stderr)
        return 2
    # Definitions read no YAML when they load: the sensor's and schedule's start state and the cron are
    # handed over here, from the config file, through the environment.
    os.environ.setdefault(AUTOMATION_ENV, "1" if config.automation else "0")
    os.environ.setdefault(CRON_ENV, config.schedule_cron)
    workspace = ROOT / "workspace.yaml"
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    print(f"DAGSTER_HOME={home}\n{' '.join(command)}", flush=True)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
