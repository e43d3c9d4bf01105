"""One thread-pool size for the whole process, chosen at start from the CPUs the process may use (issue 15):
checked in fresh processes, since the libraries read it once when they load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, sys
os.sched_setaffinity(0, {0})  # as `taskset -c 0` would leave it: one CPU although the machine has more
from neural_sorter.entry import set_thread_pools
set_thread_pools()
import numpy, threadpoolctl, torch
import neural_sorter.device  # where torch is set up for a run
pools = {info["internal_api"]: info["num_threads"] for info in threadpoolctl.threadpool_info()}
print(json.dumps({"pools": pools, "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                  "omp": os.environ["OMP_NUM_THREADS"], "numba": os.environ["NUMBA_NUM_THREADS"]}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.endswith(("_NUM_THREADS", "_MAX_THREADS", "_THREADS"))}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=clean | env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a machine with 2 CPUs or more")
def test_every_pool_follows_the_cpus_this_process_may_use():
    seen = probe()
    assert seen["omp"] == seen["numba"] == "1"
    assert set(seen["pools"].values()) == {1}, seen  # OpenBLAS and OpenMP alike
    assert seen["torch"] == 1 and seen["interop"] == 1


def test_a_count_the_user_set_is_kept_and_becomes_the_pool_size():
    seen = probe(OMP_NUM_THREADS="3")
    assert seen["omp"] == seen["numba"] == "3" and seen["torch"] == 3
    assert probe(NEURAL_SORTER_THREADS="2")["torch"] == 2
