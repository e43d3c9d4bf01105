"""Peak memory of a cold run on a large folder, through the CLI users run.

    python bench/memory.py [--images 20000] [--backend cnn] [--projection umap]

Makes ``--images`` real images (the shared tuxpaint8 set copied with variations, as ``incremental.py`` does;
made once and kept under ``--workdir``), then runs ``neural-sorter sort SRC --out OUT --json`` in a child
process with a fresh ``NEURAL_SORTER_HOME``. The child runs the whole Dagster job in process (decode threads
included), so its ``ru_maxrss`` is the peak resident memory of the run. A sampler also records the RSS every
half second, so the printout shows how memory grows over the run. Target: under 2 GB at 20,000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from incremental import DEFAULT, make_images

ROOT = Path(__file__).resolve().parents[1]


def _make_chunk(job: tuple[Path, Path, int, int]) -> int:
    dataset, dest, count, offset = job
    return make_images(dataset, dest, count, offset)


def make_folder(dataset: Path, dest: Path, count: int) -> None:
    done = dest / ".complete"
    if done.exists() and done.read_text() == str(count):
        return
    shutil.rmtree(dest, ignore_errors=True)
    chunk = 500
    jobs = [(dataset, dest, min(chunk, count - start), start) for start in range(0, count, chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        written = sum(pool.map(_make_chunk, jobs))
    assert written == count
    done.write_text(str(count))


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def step_starts(dagster_home: Path) -> list[tuple[str, float]]:
    """(step, wall-clock start) of the latest run in that Dagster instance."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        return sorted(((e.step_key, e.timestamp) for e in events), key=lambda item: item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--backend", default="cnn")
    parser.add_argument("--projection", default="umap")
    parser.add_argument("--dataset", type=Path, default=DEFAULT)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "neural-sorter-bench")
    args = parser.parse_args()

    src = args.workdir / f"folder-{args.images}"
    started = time.perf_counter()
    make_folder(args.dataset, src, args.images)
    print(f"{args.images} images in {src} (ready in {time.perf_counter() - started:.0f} s); cores {os.cpu_count()}")

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NEURAL_SORTER_HOME=str(Path(tmp) / "home"), HF_HUB_OFFLINE="1")
        env.pop("DAGSTER_HOME", None)
        env.pop("NEURAL_SORTER_STORE", None)
        command = [
            sys.executable,
            "-m",
            "neural_sorter.cli",
            "sort",
            str(src),
            "--out",
            str(Path(tmp) / "sorted"),
            "--backend",
            args.backend,
            "--projection",
            args.projection,
            "--json",
        ]
        samples: list[tuple[float, float]] = []
        started = time.perf_counter()
        log = open(Path(tmp) / "run.log", "w")  # noqa: SIM115 -- closed after the run
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        while process.poll() is None:
            samples.append((time.time(), rss_mb(process.pid)))
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        output = process.stdout.read()
        log.close()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        steps = step_starts(Path(tmp) / "home" / "dagster")
    if process.returncode != 0:
        raise SystemExit(f"the run failed ({process.returncode}):\n{output}")
    summary = json.loads(output.strip().splitlines()[-1])
    t0 = samples[0][0] if samples else 0.0
    top = max(samples, key=lambda s: s[1]) if samples else (0.0, 0.0)
    print(
        f"cold run: {seconds:.0f} s, files {summary.get('files')}, actions {summary.get('actions')}, "
        f"backend {summary.get('backend')}"
    )
    print(
        f"peak RSS (ru_maxrss of the run's process): {peak:.0f} MB  [target < 2048 MB: "
        f"{'met' if peak < 2048 else 'MISSED'}]"
    )
    print(f"sampled peak {top[1]:.0f} MB at {top[0] - t0:.0f} s")
    print("per stage (sampled every 0.5 s): seconds, peak RSS")
    bounds = [*steps, ("(after the run: summary)", float("inf"))]
    for (name, begin), (_, end) in zip([("(start-up)", 0.0), *steps], bounds):
        inside = [rss for when, rss in samples if begin <= when < end]
        if inside:
            span = min(end, samples[-1][0]) - max(begin, t0)
            print(f"  {name:<28} {span:7.0f} s  {max(inside):6.0f} MB")


if __name__ == "__main__":
    main()
