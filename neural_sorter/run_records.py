"""No CLI run stays ``STARTED`` forever (issue 10, item 6).

The CLI executes its job in its own process (``dagster.execute_job``), so nothing but that process ever
writes the run's end: a CLI killed with SIGKILL, by the OOM killer or a power cut leaves the run
``STARTED`` in the instance for good, the UI shows it running, and the daemon's run queue counts it against
its concurrency limits. Each CLI run is therefore tagged with the process that runs it (host, pid, and the
process's start time, so a pid the kernel has since given to another process is not mistaken for it), and
the next CLI start fails every run of this host whose process is gone.

Runs launched from the UI (``dagster dev``'s default run launcher: one run-worker process per run) tag
themselves the same way: the job's executor (``defs.run_worker.ProcessTaggingExecutor``) runs in the process
that orchestrates the run, whether the steps run inside it or in child processes, and writes that process's
tags before the first step. While ``dagster dev`` lives its code server fails a run whose worker died; when
``dagster dev`` itself is killed nothing is left to do so, and the daemon's run monitoring cannot check a
default-launched run's worker. The ``stale_run_sensor`` (on by default, once a minute) therefore runs the same
check in the restarted ``dagster dev``, and the daemon's run monitoring (switched on in the dagster.yaml that
``settings.prepare_dagster_home`` writes) still fails runs stuck starting, before any tag could be written.

Dagster is imported inside the functions: ``neural-sorter --help`` and the viewer import this module's
callers without needing Dagster loaded.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST_TAG = "neural-sorter/host"
PID_TAG = "neural-sorter/pid"
# "<boot id>:<start time in clock ticks since boot>" on Linux; the pair names one process for good.
PROCESS_START_TAG = "neural-sorter/process-start"
# Where the start time cannot be read (no /proc): existence only, so a reused pid counts as alive
# (the safe side: a live run is never failed).
UNKNOWN_START = "unknown"

_swept = False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The identity of the running process ``pid`` (``PROCESS_START_TAG``'s value); None when no process has it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here (macOS) or not readable: existence is all that can be told
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # another user's process: it exists
        return UNKNOWN_START
    # Field 22 is the start time; the name (field 2) is in parentheses and may hold spaces or ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has finished running; only its exit status is left to collect
        return None
    return f"{_boot_id()}:{fields[19]}"


def process_tags() -> dict[str, str]:
    """Tags naming this process, for a run it executes itself."""
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        PROCESS_START_TAG: process_start(os.getpid()) or UNKNOWN_START,
    }


def process_gone(tags: dict[str, str]) -> bool:
    """Whether the process a run's tags name has ended (same host only: another host's cannot be told)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    now = process_start(int(tags[PID_TAG]))
    if now is None:
        return True
    recorded = tags.get(PROCESS_START_TAG, UNKNOWN_START)
    return UNKNOWN_START not in (now, recorded) and now != recorded


def tag_run(instance, run_id: str) -> bool:
    """Tags the run with this process (the one orchestrating it) unless its tags already name it.

    The CLI tags its runs when it creates them; a run launched from the UI is created by the webserver
    before any process runs it, so its run worker tags it here, once it runs. Returns whether tags were written.
    """
    tags = process_tags()
    run = instance.get_run_by_id(run_id)
    if run is None or all(run.tags.get(key) == value for key, value in tags.items()):
        return False
    instance.add_run_tags(run_id, tags)
    return True


def fail_orphaned_runs(instance, by: str = "the next neural-sorter start") -> list[str]:
    """Marks FAILURE every unfinished run of this host whose process is gone; returns their run ids.

    Only runs carrying this module's tags are looked at, so runs of other hosts, and runs no process has
    tagged yet (queued, or starting: the daemon's run monitoring times those out), are never touched, and
    neither is a run whose process still lives (a sort in another terminal, a UI run in progress). ``by``
    says in the failure message who noticed.
    """
    from dagster import DagsterRunStatus, RunsFilter

    unfinished = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    runs = instance.get_runs(filters=RunsFilter(statuses=unfinished, tags={HOST_TAG: socket.gethostname()}))
    failed = []
    for run in runs:
        if not process_gone(run.tags):
            continue
        current = instance.get_run_by_id(run.run_id)  # the process wrote its end before it exited?
        if current is None or current.is_finished:
            continue
        message = (
            f"The process running it (pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) is gone: it was killed "
            f"or crashed before it could record the run's end. Marked failed by {by}."
        )
        instance.report_run_failed(current, message)
        failed.append(run.run_id)
    return failed


def sweep_once(instance) -> list[str]:
    """``fail_orphaned_runs`` the first time a process calls it; later calls do nothing (one look per CLI call)."""
    global _swept
    if _swept:
        return []
    _swept = True
    return fail_orphaned_runs(instance)
