"""The same folder sorted in-process and on two Celery workers (Redis broker, Postgres instance, moto S3
store), on this machine: wall time of each, and Dagster/Celery's scheduling overhead per step.

On one 2-core box Celery cannot be faster (the workers share the cores and every step crosses the broker and
the S3 store); this measures what the overhead is, so a user knows what scaling out costs before it pays.
Services are started and stopped by PID exactly as the end-to-end test does (neural_sorter_tests/distributed).

    python bench/distributed.py --images 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_sort import CLI, sort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neural_sorter_tests.distributed.services import Services, ensure_debian_packages  # noqa: E402

TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
BUCKET = "neural-sorter-bench"


def build_folder(target: Path, images: int) -> Path:
    """``images`` real pictures: tuxpaint8 repeated, each repeat slightly resized so none is a byte copy."""
    from PIL import Image

    sources = sorted(TUXPAINT.glob("*/*.png"))
    if not sources:
        raise SystemExit(f"no images in {TUXPAINT}")
    for n in range(images):
        source = sources[n % len(sources)]
        out = target / source.parent.name / f"{source.stem}-{n:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if n < len(sources):
            shutil.copy2(source, out)
        else:
            with Image.open(source) as image:
                scale = 1 - 0.02 * (n // len(sources) % 10)
                image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale)))).save(out)
    return target


def step_seconds(run_id: str, env: dict[str, str]) -> dict[str, float]:
    """Each step's own duration from the run's events (start to success), from the instance."""
    code = (
        "import json,sys,dagster as dg\n"
        "inst=dg.DagsterInstance.get()\n"
        "starts,ends={},{}\n"
        f"for r in inst.all_logs({run_id!r}):\n"
        "    e=r.dagster_event\n"
        "    if e is None or not e.step_key: continue\n"
        "    if e.event_type_value=='STEP_START': starts[e.step_key]=r.timestamp\n"
        "    if e.event_type_value=='STEP_SUCCESS': ends[e.step_key]=r.timestamp\n"
        "print(json.dumps({k: ends[k]-starts[k] for k in ends if k in starts}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    ensure_debian_packages()
    work = Path(tempfile.mkdtemp(prefix="ns-bench-distributed-"))
    folder = build_folder(work / "photos", args.images)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NEURAL_SORTER_", "DAGSTER_"))}
    base["HF_HUB_OFFLINE"] = "1"

    local_env = base | {"NEURAL_SORTER_HOME": str(work / "local-home")}
    local_s, local = sort(local_env, folder, work / "local-out", [])
    local_steps = step_seconds(local["run_id"], local_env | {"DAGSTER_HOME": str(work / "local-home" / "dagster")})

    services = Services()
    try:
        redis = services.start_redis()
        services.start_postgres()
        services.start_s3(BUCKET)
        (work / "dagster").mkdir()
        shutil.copy(ROOT / "docs" / "scaling-out" / "dagster.yaml", work / "dagster" / "dagster.yaml")
        env = base | services.env | {"DAGSTER_HOME": str(work / "dagster"), "NEURAL_SORTER_HOME": str(work / "home")}
        broker = ["--celery-broker", f"{redis}/0", "--celery-backend", f"{redis}/1"]
        for name in ("w1", "w2"):
            services.spawn([CLI, "worker", "--queue", "dagster", "--name", name, *broker], name, env=env)
        deadline = time.monotonic() + 120
        while not all(" ready." in services.log(n) for n in ("w1", "w2")):
            if time.monotonic() > deadline:
                raise SystemExit("workers not ready after 120 s")
            time.sleep(0.5)
        env |= {"NEURAL_SORTER_STORE": f"s3://{BUCKET}/store"}
        celery_s, celery = sort(env, folder, work / "celery-out", ["--executor", "celery", *broker])
        celery_steps = step_seconds(celery["run_id"], env)
    finally:
        services.stop()

    print(f"{args.images} images, 2 cores, backend cnn; wall seconds (cold):")
    print(f"  in-process       {local_s:8.1f}   steps' own work {sum(local_steps.values()):7.1f}")
    print(f"  celery, 2 workers {celery_s:7.1f}   steps' own work {sum(celery_steps.values()):7.1f}")
    overhead = (celery_s - sum(celery_steps.values())) - (local_s - sum(local_steps.values()))
    print(
        f"  scheduling overhead beyond in-process: {overhead:.1f} s over {len(celery_steps)} steps "
        f"({overhead / max(1, len(celery_steps)):.2f} s a step)"
    )
    for step in sorted(local_steps):
        print(f"    {step:<45} {local_steps[step]:7.1f} {celery_steps.get(step, float('nan')):7.1f}")
    same = local["clusters"] == celery["clusters"]
    print(f"  same clusters both ways: {same}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
