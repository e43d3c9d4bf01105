"""The ``neural-sorter`` console script. It installs the Ctrl-C handler before anything heavy is imported, so
an interrupt while the command starts (imports, option checks: nothing changed yet) ends in one line and
exit status 130 instead of a traceback from deep inside an import.

It also chooses the process's one thread-pool size before numpy, torch or any BLAS/OpenMP library loads
(they read their thread counts once, when they load). Each library otherwise sizes its own pool from the
machine, and torch's OpenMP pool, OpenBLAS's, numba's and the inference runtime's then compete for the same
cores; with another CPU-bound process beside them, threads spin at barriers waiting for a peer that is not
running (issue 15 measured torch at 2 threads falling to 20 img/s while 1 thread gave 44).
"""

import contextlib
import os
import signal
import sys

# The thread-count variables of the libraries a run loads: OpenMP (torch, sklearn), MKL, OpenBLAS (numpy,
# scipy), numexpr, Apple's Accelerate and numba (UMAP).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
)
# The pool size the user asked for; when unset, OMP_NUM_THREADS if the user set that, else the CPUs this
# process may run on.
THREADS_VARIABLE = "NEURAL_SORTER_THREADS"


def _positive(value: str | None) -> int | None:
    try:
        number = int(value) if value else 0
    except ValueError:
        return None
    return number if number > 0 else None


def pool_size() -> int:
    """One thread count for every pool: ``NEURAL_SORTER_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs in
    this process's affinity mask (what ``taskset``, cgroups cpusets and containers leave it), not the
    machine's count."""
    chosen = _positive(os.environ.get(THREADS_VARIABLE)) or _positive(os.environ.get("OMP_NUM_THREADS"))
    if chosen:
        return chosen
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_thread_pools(environ=os.environ) -> int:
    """Sets every library's thread-count variable to ``pool_size()`` where the user has not set it (a value
    the user gave is kept), and records the size in ``NEURAL_SORTER_THREADS`` for torch (``match_torch``) and
    child processes. Must run before numpy or torch is imported to take effect for them."""
    size = pool_size()
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(size))
    environ.setdefault(THREADS_VARIABLE, str(size))
    return size


def match_torch(torch) -> None:
    """torch's intra-op pool to the process's pool size, its inter-op pool to one thread: eager inference runs
    one operator at a time, so a second pool only adds threads competing for the same cores. Called where
    torch is first set up (``neural_sorter.device``); inter-op threads can only be set before torch's first
    parallel work, so a late call keeps torch's own."""
    torch.set_num_threads(pool_size())
    with contextlib.suppress(RuntimeError):  # parallel work already started here: torch refuses
        torch.set_num_interop_threads(1)


def _interrupted_while_starting(_signum, _frame) -> None:
    sys.stderr.write("neural-sorter: error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    set_thread_pools()
    from neural_sorter.cli import main as cli_main

    sys.exit(cli_main())
