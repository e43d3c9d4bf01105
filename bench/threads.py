"""Thread pools with and without ``neural_sorter.entry.set_thread_pools`` (issue 15), idle and with a second
CPU-bound process beside it. Each measurement runs in a fresh process (the pools are sized when the libraries
load), interleaved over rounds so every configuration sees the same load:

  embed: the embeddings stage's own loop (``encoders.embed_thumbnails``, batch 32, 2 decode threads) over
         stored real thumbnails, with torch and with the default runtime (``auto``)
  clusters: ``clustering.cluster_embeddings`` with the default recipe on the stored real embeddings

Configurations: ``defaults`` (each library sizes its own pool), ``one-pool`` (what ``neural-sorter`` does at
start: every pool the CPUs in the affinity mask, torch's inter-op pool 1), ``one-pool-1`` (the same with
``NEURAL_SORTER_THREADS=1``).

    .venv/bin/python bench/threads.py --store ~/.cache/neural-sorter-bench/resort/home-2000/store
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, os, sys, time
config, store_root, images, what = sys.argv[1:5]
if config != "defaults":
    from neural_sorter.entry import set_thread_pools
    set_thread_pools()
import numpy as np, torch
if config != "defaults":
    from neural_sorter.entry import match_torch
    match_torch(torch)
from neural_sorter.store import Store
from neural_sorter.tables import DECODED_FRAMES, EMBEDDINGS
store = Store(store_root)
key = store.keys(EMBEDDINGS)[0]
result = {"threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads()}
if what.startswith("embed"):
    from neural_sorter import encoders
    frames = store.read(DECODED_FRAMES, key, columns=["content_hash", "frame_index", "error"])
    frames = frames[frames["error"].isna()].drop_duplicates("content_hash").head(int(images))
    thumbs = list(store.iter_thumbnails(key, frames))
    encoder = encoders.cnn_encoder(torch.device("cpu"), runtime=what.split("-", 1)[1])
    encoders.embed_thumbnails(thumbs[:32], encoder)  # warm-up: loads (or exports) the model
    started = time.perf_counter()
    encoders.embed_thumbnails(thumbs, encoder)
    result["rate"] = len(thumbs) / (time.perf_counter() - started)
    result["runtime"] = encoder.runtime
else:
    from neural_sorter import clustering
    from neural_sorter.encoders import vectors_of
    table = store.read(EMBEDDINGS, key)
    vectors = vectors_of(table)
    started = time.perf_counter()
    clustering.cluster_embeddings(table, vectors, clustering.DEFAULT_METHOD, "auto", (2, 12), 5, [], 0.35, 0)
    result["seconds"] = time.perf_counter() - started
    result["files"] = len(table)
print(json.dumps(result))
"""


def measure(config: str, store: Path, images: int, what: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_NUM_THREADS", "_MAX_THREADS", "_THREADS"))}
    if config == "one-pool-1":
        env["NEURAL_SORTER_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, config, str(store), str(images), what],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=3600,
    )
    if done.returncode:
        raise SystemExit(f"{config} {what} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a store holding one sorted partition")
    parser.add_argument("--images", type=int, default=512, help="thumbnails embedded per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="defaults,one-pool,one-pool-1")
    parser.add_argument("--work", default="embed-torch,embed-auto,clusters")
    parser.add_argument("--busy", default="0,1", help="second CPU-bound processes to run beside, per condition")
    args = parser.parse_args()
    configs, works = args.configs.split(","), args.work.split(",")
    print(f"cores {len(os.sched_getaffinity(0))} ({os.cpu_count()} in the machine); {load()}")
    for busy in (int(b) for b in args.busy.split(",")):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(1 if busy else 0)
            results: dict[tuple[str, str], list[dict]] = {}
            for _ in range(args.rounds):
                for what in works:
                    for config in configs:
                        result = measure(config, args.store, args.images, what)
                        results.setdefault((what, config), []).append(result)
                        print(f"  busy={busy} {what} {config}: {json.dumps(result)}; {load()}", flush=True)
            for (what, config), runs in results.items():
                key = "rate" if what.startswith("embed") else "seconds"
                unit = "img/s" if key == "rate" else "s"
                values = [r[key] for r in runs]
                extra = f", runtime {runs[0]['runtime']}" if "runtime" in runs[0] else f", {runs[0]['files']} files"
                print(
                    f"busy={busy} {what:<12} {config:<11} median {statistics.median(values):7.2f} {unit} "
                    f"(min {min(values):.2f}, max {max(values):.2f}; torch threads {runs[0]['threads']}, "
                    f"inter-op {runs[0]['interop']}{extra})"
                )
            print(f"  after busy={busy}: {load()}")
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
