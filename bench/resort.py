"""Unchanged re-sort time (issue 15): the real CLI on a folder of N real images, sorted once cold, then sorted
again with nothing changed, answered from the stamp (``neural_sorter/unchanged.py``), and for comparison the
same re-sort with the stamp deleted first (a full Dagster run that changes nothing: what every re-sort cost
before). Prints each figure with the load average.

    .venv/bin/python bench/resort.py --images 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from cli_sort import sort

ROOT = Path(__file__).resolve().parents[1]
TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"


def build_folder(target: Path, images: int) -> Path:
    """``images`` real pictures: tuxpaint8, then re-encoded copies (each slightly resized, so no two files
    share bytes), every file with its original's mtime (as ``cp -p`` keeps it)."""
    from PIL import Image

    sources = sorted(TUXPAINT.glob("*/*.png"))
    if not sources:
        raise SystemExit(f"no images in {TUXPAINT}")
    for n in range(images):
        source = sources[n % len(sources)]
        out = target / source.parent.name / f"{source.stem}-{n:05d}.png"
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if n < len(sources):
            shutil.copy2(source, out)
        else:
            with Image.open(source) as image:
                scale = 1 - 0.02 * (1 + n // len(sources) % 10)
                image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale)))).save(out)
            info = source.stat()
            os.utime(out, ns=(info.st_atime_ns, info.st_mtime_ns))
    return target


def snapshot_code(work: Path) -> Path:
    """A copy of the package for the CLI to run: a stamp is bound to the code that wrote it, and in a shared
    working tree someone's edit between two runs would make the re-sort a full run."""
    target = work / "code"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "neural_sorter", target / "neural_sorter", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "neural-sorter-bench" / "resort")
    parser.add_argument("--reuse", action="store_true", help="keep the store and OUT of an earlier run (no cold sort)")
    parser.add_argument("--no-full", action="store_true", help="time only the unchanged re-sorts")
    args = parser.parse_args()

    folder = build_folder(args.work / f"src-{args.images}", args.images)
    home, out = args.work / f"home-{args.images}", args.work / f"out-{args.images}"
    if not args.reuse:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = str(snapshot_code(args.work))
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    time.sleep(1)  # the copies' ctimes are fresh: a walk within half a second of them writes no stamp
    print(f"{args.images} files in {folder}; cores {len(os.sched_getaffinity(0))}; {load()}")
    cold, first = sort(env, folder, out)
    kind = "unchanged" if first["unchanged"] else "full, " + ("store kept" if args.reuse else "cold")
    print(f"first sort ({kind}): {cold:.1f} s (files {first['files']}); {load()}")
    stamp = home / "store" / "unchanged" / f"{first['partition']}.json"
    fast, full, fast_cpu, full_cpu = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so both see the same load
        seconds, summary = sort(env, folder, out)
        if not summary.get("unchanged"):
            raise SystemExit(f"the re-sort was not answered from the stamp: {summary.get('run_id')}")
        fast.append(seconds)
        fast_cpu.append(summary["_cpu"])
        line = f"  unchanged {fast[-1]:.2f} s ({fast_cpu[-1]:.2f} s CPU)"
        if not args.no_full:
            stamp.unlink()
            seconds, summary = sort(env, folder, out)
            if summary.get("unchanged"):
                raise SystemExit("a re-sort without a stamp claimed to be unchanged")
            full.append(seconds)
            full_cpu.append(summary["_cpu"])
            line += f", full run of the same {full[-1]:.2f} s ({full_cpu[-1]:.2f} s CPU)"
        print(f"{line}; {load()}")
    print(
        f"unchanged re-sort of {first['files']} files: median {statistics.median(fast):.2f} s "
        f"(min {min(fast):.2f}, max {max(fast):.2f}; CPU median {statistics.median(fast_cpu):.2f} s) over "
        f"{args.repeats}; {load()}"
    )
    if full:
        print(
            f"the same as a full run: median {statistics.median(full):.2f} s (min {min(full):.2f}, max "
            f"{max(full):.2f}; CPU median {statistics.median(full_cpu):.2f} s)"
        )


if __name__ == "__main__":
    main()
