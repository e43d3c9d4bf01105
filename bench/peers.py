"""Our cold sort against fastdup and cleanvision on the same real images, interleaved, in one run (issue 15).

    python bench/peers.py --n 540 --repeats 2
    python bench/peers.py --n 2000 --repeats 2 [--beside-load]
    python bench/peers.py --forward-only          # just the forward-rate table

The folder (flat, ``~/.cache/neural-sorter-bench/peers-<n>``; ``NEURAL_SORTER_BENCH_CACHE`` moves it, built
once) holds ``--n`` files of distinct content (sha1 of the bytes), taken in this order until there are enough:
tuxpaint8 (read from /work/shared), the sets of ``bench/build_sets.py``, scikit-image's data images, then the
PNG/JPEGs Debian packages ship under /usr/share (openclipart, game art, icons). Files are copied as they are
(no synthetic pictures); anything Pillow cannot decode, smaller than 32 px a side, over 24 MP or grey+alpha
(cleanvision cannot read those) is skipped, so every tool sees pictures it can read.

Each repeat runs the three tools one after another, the order rotated per repeat so none always runs first:

- ours: ``.venv/bin/neural-sorter sort FOLDER --out TMP --json`` with a fresh ``NEURAL_SORTER_HOME`` (defaults,
  nothing cached: a first sort on a new machine);
- fastdup (own venv, ``SENTRY_OPT_OUT`` set: fastdup 2.x's documented telemetry opt-out): ``fastdup.create``
  then its default ``run()``;
- cleanvision (own venv): ``Imagelab(data_path).find_issues()`` with its default issue types.

Wall time, CPU time (user+sys of the child and everything it waited for, from ``os.wait4``) and peak RSS (the
largest single process of that tree, ``ru_maxrss``) per run; medians per tool; our per-stage times read from the
Dagster run's step stats in that run's own instance (start-up = process start to run start, Dagster between
steps = run time not inside any step, after = run end to process exit). ``--beside-load`` starts one busy
Python loop (a second CPU-bound process) before each measurement and stops it after.

``--forward`` adds the forward-rate table (batch 32) of EfficientNet-Lite0 at 224 px (``--forward-cnn`` adds
other sizes, e.g. the default Lite1 at 240 px) and CLIP ViT-B/32's vision tower at 224 px for every runtime and
precision the pipeline offers (``encoder_for`` with each runtime/precision; a pair it does not honour on this
CPU is left out), interleaved rounds, with ``bench/throughput.py``'s forward loop and cosine, on thumbnails of
this folder. CLIP has no weights offline: it is throughput's randomly initialised CLIP with ViT-B/32 sizes,
good for speed only (the cosine column of CLIP says nothing about trained weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from labelled import CACHE
from venvs import make_venv

REPO = Path(__file__).resolve().parents[1]
TUXPAINT8 = REPO.parent / "shared" / "datasets" / "tuxpaint8"
VENVS = CACHE / "venvs"
NEURAL_SORTER = REPO / ".venv" / "bin" / "neural-sorter"
SUFFIXES = {".png", ".jpg", ".jpeg"}
MIN_SIDE = 32
# cleanvision 0.3.7 crashes on two-channel (grey + alpha) PNGs (IndexError in calc_percentile_brightness): the
# folder holds only modes every tool reads, so a peer's failure never ends the comparison.
MODES = {"RGB", "RGBA", "L", "P"}
MAX_PIXELS = 24_000_000  # a few openclipart PNGs are 168 MP posters: larger than any camera photo, skipped
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

FASTDUP_RUNNER = """
import json, os, sys
os.environ["SENTRY_OPT_OUT"] = "1"
import fastdup
fd = fastdup.create(work_dir=sys.argv[2], input_dir=sys.argv[1])
fd.run()
print(json.dumps({"fastdup": fastdup.__version__, "similarity_pairs": len(fd.similarity()),
                  "components": len(fd.connected_components()[0])}))
"""

CLEANVISION_RUNNER = """
import json, sys
import cleanvision
from cleanvision import Imagelab
lab = Imagelab(data_path=sys.argv[1])
lab.find_issues(verbose=False)
summary = lab.issue_summary
print(json.dumps({"cleanvision": cleanvision.__version__,
                  "issues": {r["issue_type"]: int(r["num_images"]) for _, r in summary.iterrows()}}))
"""

PEERS = {
    "fastdup": ("fastdup", [["fastdup==2.54"]], FASTDUP_RUNNER),
    "cleanvision": ("cleanvision", [["cleanvision==0.3.7"]], CLEANVISION_RUNNER),
}


# ------------------------------------------------------------------------------------------------- the folder


def _candidates():
    """(origin, image file) in the order the folder takes them: labelled sets first, then what packages ship,
    the packages' folders taken in turn (one file from each, round-robin) so no one folder of icons dominates."""
    for path in sorted(TUXPAINT8.rglob("*.png")):
        yield "tuxpaint8", path
    for path in sorted(p for p in (CACHE / "sets").rglob("*") if p.suffix.lower() in SUFFIXES):
        yield f"sets/{path.relative_to(CACHE / 'sets').parts[0]}", path
    import skimage.data

    for path in sorted(p for p in Path(skimage.data.__file__).parent.iterdir() if p.suffix.lower() in SUFFIXES):
        yield "skimage.data", path
    for root in ("/usr/share/openclipart", "/usr/share/games", "/usr/share/icons", "/usr/share/backgrounds"):
        folders: dict[Path, list[Path]] = {}
        for path in sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
            folders.setdefault(path.parent, []).append(path)
        queues = [iter(files) for files in folders.values()]
        while queues:
            for queue in list(queues):
                path = next(queue, None)
                if path is None:
                    queues.remove(queue)
                else:
                    yield str(Path(*path.parts[:5])), path


def build_folder(n: int) -> Path:
    """``n`` distinct, decodable real images, flat, built once (a marker says the folder is complete)."""
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # those are skipped by size anyway
    folder = CACHE / f"peers-{n}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seen: set[str] = set()
    origins: dict[str, int] = {}
    for origin, path in _candidates():
        data = path.read_bytes()
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen:
            continue
        try:
            with Image.open(path) as image:
                if min(image.size) < MIN_SIDE or image.size[0] * image.size[1] > MAX_PIXELS or image.mode not in MODES:
                    continue
                image.load()
        except Exception:  # a file Pillow cannot read is not a picture for this bench
            continue
        seen.add(digest)
        origins[origin] = origins.get(origin, 0) + 1
        (folder / f"{len(seen):05d}-{path.name}").write_bytes(data)
        if len(seen) == n:
            break
    if len(seen) < n:
        raise SystemExit(f"only {len(seen)} distinct images found, {n} wanted: apt-get install openclipart-png")
    (folder / ".complete").write_text(json.dumps(origins, indent=1))
    return folder


# ------------------------------------------------------------------------------------------------- measuring


def load() -> str:
    return "load " + "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_description() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    have = [f for f in CPU_FLAGS if f in flags]
    lacking = [f for f in CPU_FLAGS if f not in flags]
    return f"{model}, {os.cpu_count()} cores; flags {' '.join(have)}; lacking {' '.join(lacking) or '-'}"


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Runs ``argv``; wall, CPU (user+sys of the child tree), peak RSS (largest process), stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.time()
        wall0 = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - wall0
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "started": started,
            "ended": started + wall,
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024,
            "rc": child.returncode,
            "stdout": out.read(),
            "stderr": err.read(),
        }


def stage_times(home: Path, run_id: str, started: float, ended: float) -> dict[str, float]:
    """Seconds per step of our run, read from the Dagster instance that run wrote in ``home``."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_run_stats(run_id)
        steps = instance.get_run_step_stats(run_id)
    times = {"start-up": run.start_time - started}
    inside = 0.0
    for step in sorted(steps, key=lambda s: s.start_time or 0):
        seconds = (step.end_time or 0) - (step.start_time or 0)
        times[step.step_key] = seconds
        inside += seconds
    times["dagster between steps"] = (run.end_time - run.start_time) - inside
    times["after the run"] = ended - run.end_time
    return times


def run_ours(folder: Path, scratch: Path) -> dict:
    home, out = scratch / "home", scratch / "out"
    env = os.environ | {"NEURAL_SORTER_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    result = measure([str(NEURAL_SORTER), "sort", str(folder), "--out", str(out), "--json"], env)
    if result["rc"]:
        raise SystemExit(f"neural-sorter sort failed ({result['rc']}): {result['stderr'][-2000:]}")
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    result["stages"] = stage_times(home, summary["run_id"], result["started"], result["ended"])
    clusters = summary.get("clusters")
    count = len(clusters) if isinstance(clusters, dict) else clusters
    result["note"] = f"{summary.get('decoded')} decoded, {count} clusters, model {summary.get('model_id')}"
    return result


def run_peer(name: str, folder: Path, scratch: Path) -> dict:
    venv_name, installs, runner = PEERS[name]
    python = make_venv(VENVS, venv_name, installs)
    script = scratch / f"{name}_runner.py"
    script.write_text(runner)
    env = os.environ | {"SENTRY_OPT_OUT": "1"}
    result = measure([str(python), str(script), str(folder), str(scratch / "work")], env)
    if result["rc"]:
        raise SystemExit(f"{name} failed ({result['rc']}): {result['stderr'][-2000:]}")
    result["note"] = result["stdout"].strip().splitlines()[-1]
    return result


class BesideLoad:
    """A second CPU-bound process (a busy Python loop) for the length of one measurement."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BesideLoad:
        if self.enabled:
            self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait()


def compare(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    folder = build_folder(args.n)
    print(f"{args.n} images in {folder} (ready in {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"sources: {(folder / '.complete').read_text().replace(chr(10), ' ')}")
    tools = ["ours", *args.peers]
    results: dict[str, list[dict]] = {tool: [] for tool in tools}
    for repeat in range(args.repeats):
        order = tools[repeat % len(tools) :] + tools[: repeat % len(tools)]
        for tool in order:
            with tempfile.TemporaryDirectory(prefix=f"peers-{tool}-") as tmp, BesideLoad(args.beside_load):
                before = load()
                result = run_ours(folder, Path(tmp)) if tool == "ours" else run_peer(tool, folder, Path(tmp))
            results[tool].append(result)
            print(
                f"  repeat {repeat + 1} {tool:<12} wall {result['wall']:6.1f} s  cpu {result['cpu']:6.1f} s  "
                f"peak RSS {result['rss_mb']:6.0f} MB   ({before} -> {load()})  {result['note']}",
                flush=True,
            )
            if tool == "ours":
                print("      " + ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items()), flush=True)
    print(
        f"\nmedians over {args.repeats} repeats, {args.n} images{' , beside a busy loop' if args.beside_load else ''}:"
    )
    print(f"  {'tool':<12} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12} {'wall / fastest peer':>20}")
    medians = {t: {k: statistics.median(r[k] for r in results[t]) for k in ("wall", "cpu", "rss_mb")} for t in tools}
    best_peer = min((medians[p]["wall"] for p in args.peers), default=None)
    for tool in tools:
        m = medians[tool]
        ratio = f"x{m['wall'] / best_peer:.2f}" if best_peer else ""
        print(f"  {tool:<12} {m['wall']:8.1f} {m['cpu']:8.1f} {m['rss_mb']:12.0f} {ratio:>20}")
    stages = [r["stages"] for r in results["ours"]]
    print(
        "  our stages (median s): " + ", ".join(f"{k} {statistics.median(s[k] for s in stages):.1f}" for k in stages[0])
    )


# ------------------------------------------------------------------------------------------------- forward


def forward_table(args: argparse.Namespace) -> None:
    """Every runtime/precision the pipeline offers, interleaved rounds, medians; throughput.py's forward loop
    (``forward_all``: batches of ready tensors -> unit vectors) and cosine, on thumbnails of this folder. Its
    own runtime table cannot be reused as is: it builds the CNN with the pipeline's default recipe (Lite1 at
    240 px), while issue 15's table is EfficientNet-Lite0 at 224 px."""
    import numpy as np
    import throughput
    import torch

    from neural_sorter import encoders
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest, worker_count
    from neural_sorter.inventory import build_file_manifest
    from neural_sorter.models.cnn_recipe import Recipe

    source = build_folder(args.n)
    folder = CACHE / f"peers-forward-{args.forward_images}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for path in sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES)[: args.forward_images]:
            os.link(path, folder / path.name)
    clip_dir = str(throughput.random_clip_dir(CACHE / "clip-vit-b-32-random"))
    frames, _ = decode_manifest(build_file_manifest(folder), DecodeOptions(thumbnail_size=256))
    thumbs = list(frames.loc[frames["error"].isna(), "thumbnail"])
    cpu = torch.device("cpu")
    plans = (("torch", "fp32"), ("torch", "int8"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"))
    print(f"\nforward table: {len(thumbs)} thumbnails of {folder}, batch 32, torch threads {torch.get_num_threads()}")
    models = [(f"EfficientNet-{m.capitalize()}", "cnn", Recipe(m, False)) for m in args.forward_cnn.split(",")]
    models.append(("CLIP ViT-B/32 vision (random weights)", "clip", None))
    for label, backend, recipe in models:
        built = {}
        for runtime, precision in plans:
            encoder = encoders.encoder_for(backend, clip_dir, cpu, None, precision, runtime, recipe)
            if (encoder.runtime, encoder.precision) != (runtime, precision):
                continue  # not offered for this model here (e.g. int8 is CLIP only; bf16 needs native bf16)
            built[(runtime, precision)] = encoder
        tensors = np.concatenate(
            list(encoders._prefetched_batches(thumbs, built[("torch", "fp32")].preprocess, 32, worker_count(0)))
        )
        for encoder in built.values():  # export/compile and warm-up outside the timed rounds
            throughput.forward_all(encoder, tensors[:32], 32)
        rates: dict[tuple[str, str], list[float]] = {key: [] for key in built}
        vectors = {}
        for _ in range(args.forward_rounds):
            for key, encoder in built.items():
                seconds, vectors[key] = throughput.timed(throughput.forward_all, encoder, tensors, 32)
                rates[key].append(len(tensors) / seconds)
        base = statistics.median(rates[("torch", "fp32")])
        print(f"== {label}, {tensors.shape[-1]} px, {args.forward_rounds} interleaved rounds, median img/s ({load()})")
        for key, encoder in built.items():
            mean, worst = throughput.cosine(vectors[key], vectors[("torch", "fp32")])
            rate = statistics.median(rates[key])
            print(
                f"  {key[0]:<12} {key[1]:<5} {rate:7.1f} img/s  x{rate / base:5.2f}  cosine to torch fp32 mean "
                f"{mean:.5f} min {worst:.5f}  rounds {[round(r, 1) for r in rates[key]]}  ({encoder.model_id})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="images in the folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", default="fastdup,cleanvision", help="comma list; '' for ours alone")
    parser.add_argument("--beside-load", action="store_true", help="a busy Python loop beside each measurement")
    parser.add_argument("--forward", action="store_true", help="also the forward-rate table")
    parser.add_argument("--forward-only", action="store_true", help="only the forward-rate table")
    parser.add_argument("--forward-images", type=int, default=256)
    parser.add_argument("--forward-rounds", type=int, default=3)
    parser.add_argument(
        "--forward-cnn", default="lite0", help="EfficientNet-Lite sizes for the table, e.g. lite0,lite1"
    )
    args = parser.parse_args()
    args.peers = [p for p in args.peers.split(",") if p]
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {cpu_description()}")
    print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)
    if not args.forward_only:
        compare(args)
    if args.forward or args.forward_only:
        forward_table(args)
    print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
