"""Cold run vs unchanged re-run vs +1% new files, through the real Dagster job.

    python bench/incremental.py [--images 2000] [--backend cnn]

Builds a folder of real images (the shared tuxpaint8 set, each copied with variations: flips, rotations,
crops, colour shifts) in a temporary directory, then times three runs of the `sort_source` job on one
Dagster instance. Targets: unchanged re-run <= 5% of the cold run; +1% new files <= 6% of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dagster as dg
from PIL import Image, ImageEnhance, ImageOps

from neural_sorter.definitions import defs
from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tuxpaint8"

VARIATIONS = [
    lambda im: im,
    ImageOps.mirror,
    ImageOps.flip,
    lambda im: im.rotate(90, expand=True),
    lambda im: im.rotate(270, expand=True),
    lambda im: im.crop((im.width // 10, im.height // 10, im.width * 9 // 10, im.height * 9 // 10)),
    lambda im: ImageEnhance.Color(im).enhance(0.4),
    lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    lambda im: ImageEnhance.Contrast(im).enhance(0.7),
    lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2))),
]


def make_images(source: Path, dest: Path, count: int, offset: int = 0) -> int:
    """Writes ``count`` distinct JPEGs made from the source images; returns how many were written."""
    originals = sorted(source.glob("*/*.png"))
    written = 0
    for n in range(offset, offset + count):
        variation = VARIATIONS[(n // len(originals)) % len(VARIATIONS)]
        image = Image.open(originals[n % len(originals)]).convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
        out = variation(flat)
        if n >= len(originals) * len(VARIATIONS):  # beyond the variation set: a distinct hue shift
            out = ImageEnhance.Color(out).enhance(1.0 + (n % 97) / 50)
        target = dest / originals[n % len(originals)].parent.name / f"{n:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        out.save(target, quality=90)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--backend", default="cnn")
    parser.add_argument("--projection", default="umap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        base = Path(tmp)
        src, out, store = base / "photos", base / "sorted", base / "store"
        import os

        os.environ["NEURAL_SORTER_STORE"] = str(store)
        t = time.perf_counter()
        make_images(args.dataset, src, args.images)
        print(f"made {args.images} images in {time.perf_counter() - t:.1f}s")
        key = SourceRegistry(str(store)).add(src)
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        job = defs.resolve_job_def("sort_source")
        config = {
            "resources": {"sorter": {"config": {"backend": args.backend, "output_dir": str(out)}}},
            "ops": {"clusters": {"config": {"k": "8"}}, "3d_projection": {"config": {"projection": args.projection}}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        }

        def run(label: str) -> float:
            started = time.perf_counter()
            result = job.execute_in_process(run_config=config, instance=instance, partition_key=key)
            seconds = time.perf_counter() - started
            meta = instance.get_latest_materialization_event(dg.AssetKey("embeddings")).asset_materialization.metadata
            steps = (
                {
                    e.step_key: round(e.event_specific_data.duration_ms / 1000, 2)
                    for e in result.all_events
                    if e.is_step_success
                }
                if hasattr(result, "all_events")
                else {}
            )
            print(
                f"{label:<18} {seconds:7.1f}s  embedded {meta['embedded'].value:>5}  reused {meta['reused'].value:>5}"
                f"  steps {steps}"
            )
            return seconds

        cold = run("cold")
        unchanged = run("unchanged re-run")
        extra = max(1, args.images // 100)
        make_images(args.dataset, src, extra, offset=args.images)
        grown = run(f"+{extra} new files")
        print(f"unchanged / cold = {unchanged / cold:.1%} (target <= 5%)")
        print(f"+1% new / cold   = {grown / cold:.1%} (target <= 6%)")


if __name__ == "__main__":
    main()
