"""Embedding throughput on a folder of real-size JPEGs, for CLIP ViT-B/32 and EfficientNet-Lite0.

    python bench/throughput.py [--images 256] [--models clip,cnn] [--batch-size 32] [--workers 0]

The folder (made once, under ``--workdir``) holds JPEGs of 1920x1080 up to 6000x4000 made from the shared
tuxpaint8 images plus scikit-image's bundled photos, scaled up, with a little grain so the files are about as
large as camera photos of that size. CLIP is built from ``CLIPConfig`` with the ViT-B/32 sizes of
openai/clip-vit-base-patch32 and random weights (speed does not depend on the weights), saved to a local
folder and loaded through the pipeline's own loader. Figures per model, all in images per second:

  (a) forward: the model alone on pre-decoded, preprocessed tensors at the pipeline's batch size
  (b) decode: source files -> thumbnails (``decode_manifest``, the decoded_frames stage); thumbnails ->
      tensors (what the embeddings stage does in its threads); source files -> tensors (the streamed path's
      decode work); and, for scale, full-resolution decoding without JPEG ``draft``
  (c) files on disk -> vectors with ``decode_and_embed`` (decoding overlapped with the model) -- the (c) of
      the ratios; also ``decode_manifest`` then ``build_embeddings`` back to back (the two Dagster stages),
      and ``build_embeddings`` alone on decoded thumbnails (the embeddings stage by itself)
  (d) the original design's loop: one file at a time, full-resolution decode (``Image.open`` + EXIF
      transpose + ``convert("RGB")``, no draft), preprocess, forward with batch size 1; and (d') the same loop
      with the pipeline's decoder (draft), which shows how much of the gain is batching and overlap alone

Reduced precision (int8 dynamic quantization of the linear layers, bf16 autocast) is timed like (a) and
compared with fp32 by the cosine similarity of the vectors of the same images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from neural_sorter import encoders  # noqa: E402
from neural_sorter.decoding.frames import DecodeOptions, decode_file, decode_manifest, worker_count  # noqa: E402
from neural_sorter.decoding.images import decode_jpeg, load_image_thumbnail  # noqa: E402
from neural_sorter.inventory import build_file_manifest, source_path  # noqa: E402

TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
SKIMAGE_PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "coins.png",
]
SIZES = [(1920, 1080), (2560, 1440), (4032, 3024), (3024, 4032), (1080, 1920), (6000, 4000)]


# ---------------------------------------------------------------------------------------------- the data set
def _skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _make_one(job: tuple[str, tuple[int, int], str, int]) -> int:
    source, size, target, seed = job
    image = Image.open(source)
    image = image.convert("RGBA") if image.mode in ("RGBA", "LA", "P") else image.convert("RGB")
    if image.mode == "RGBA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    scale = max(size[0] / image.width, size[1] / image.height)  # cover, then centre-crop to the exact size
    resized = image.resize(
        (max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))), Image.Resampling.BICUBIC
    )
    left, top = (resized.width - size[0]) // 2, (resized.height - size[1]) // 2
    pixels = np.asarray(resized.crop((left, top, left + size[0], top + size[1])), dtype=np.int16)
    grain = np.random.default_rng(seed).normal(0, 3, (*pixels.shape[:2], 1)).astype(np.int16)
    Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8)).save(target, quality=90)
    return os.path.getsize(target)


def make_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` big JPEGs in ``folder`` (kept between runs); sizes cycle through ``SIZES``."""
    done = folder / ".complete"
    if done.exists() and int(done.read_text()) == count:
        return sorted(folder.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(TUXPAINT.glob("*/*.png"))
    if not sources:
        raise SystemExit(f"the shared images are missing: {TUXPAINT}")
    photos = [_skimage_dir() / name for name in SKIMAGE_PHOTOS if (_skimage_dir() / name).exists()]
    rng = np.random.default_rng(seed)
    pool = [*sources, *photos]
    order = [
        photos[i % len(photos)] if i % 16 == 0 and photos else pool[j]
        for i, j in enumerate(rng.permutation(max(count, len(pool)))[:count] % len(pool))
    ]  # every 16th a real photo
    jobs = [(str(src), SIZES[i % len(SIZES)], str(folder / f"{i:05d}.jpg"), seed + i) for i, src in enumerate(order)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool_:
        list(pool_.map(_make_one, jobs, chunksize=4))
    done.write_text(str(count))
    return sorted(folder.glob("*.jpg"))


def random_clip_dir(folder: Path) -> Path:
    """CLIP with the sizes of openai/clip-vit-base-patch32 and random weights, saved like a downloaded model
    (weights, a byte-level tokenizer without merges, the image processor)."""
    if (folder / "model.safetensors").exists():
        return folder
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTextConfig, CLIPTokenizer, CLIPVisionConfig
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *[s + "</w>" for s in symbols], "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    bos, eos = len(tokens) - 2, len(tokens) - 1
    text = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        max_position_embeddings=77,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    vision = CLIPVisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=512)
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77).save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    ).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------------ measuring
def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def forward_all(encoder: encoders.Encoder, tensors: np.ndarray, batch_size: int) -> np.ndarray:
    """The embedding loop's model work only: batches of ready tensors -> normalised vectors."""
    out = []
    for start in range(0, len(tensors), batch_size):
        batch = torch.from_numpy(tensors[start : start + batch_size]).to(encoder.device)
        with torch.inference_mode():
            out.append(torch.nn.functional.normalize(encoder.forward(batch).float(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def forward_rate(encoder: encoders.Encoder, tensors: np.ndarray, batch_size: int) -> tuple[float, np.ndarray]:
    forward_all(encoder, tensors[:batch_size], batch_size)  # warm-up (allocator, oneDNN primitives)
    seconds, vectors = timed(forward_all, encoder, tensors, batch_size)
    return len(tensors) / seconds, vectors


def original_decode(path: Path) -> Image.Image:
    """How the original design read a file: the whole image at full resolution."""
    with Image.open(path) as image:
        return (ImageOps.exif_transpose(image) or image).convert("RGB")


def baseline_loop(encoder: encoders.Encoder, paths: list[Path], thumbnail_size: int, draft: bool) -> float:
    """(d) / (d'): one file at a time: decode, preprocess, forward with batch size 1, nothing overlapped."""
    started = time.perf_counter()
    for path in paths:
        image = load_image_thumbnail(path, thumbnail_size, 178_956_970) if draft else original_decode(path)
        batch = torch.from_numpy(encoder.preprocess(image)[None]).to(encoder.device)
        with torch.inference_mode():
            torch.nn.functional.normalize(encoder.forward(batch).float(), dim=-1).cpu().numpy()
    return len(paths) / (time.perf_counter() - started)


def cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    sims = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(sims.mean()), float(sims.min())


def bf16_encoder(encoder: encoders.Encoder) -> encoders.Encoder:
    def forward(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return encoder.forward(batch)

    return dataclasses.replace(encoder, forward=forward, model_id=encoder.model_id + "+bf16")


def report(label: str, value: float, unit: str = "img/s") -> None:
    print(f"  {label:<62} {value:8.2f} {unit}   ({load()})", flush=True)


RUNTIME_PLANS = (("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"))


def bench_runtimes(name: str, args: argparse.Namespace, tensors: np.ndarray, frames, clip_dir) -> dict:
    """Every runtime and precision on the same tensors, interleaved over ``--rounds`` rounds (medians): (a)
    forward and (c'') the embeddings stage alone on stored thumbnails, with the cosine to torch fp32."""
    import statistics

    device = torch.device("cpu")
    workers = worker_count(args.workers)
    plans = [p for p in RUNTIME_PLANS if f"{p[0]}:{p[1]}" in args.runtimes.split(",") or args.runtimes == "all"]
    built = {}
    for runtime, precision in plans:
        encoder = encoders.encoder_for(name, str(clip_dir), device, None, precision=precision, runtime=runtime)
        if (encoder.runtime, encoder.precision) != (runtime, precision):
            print(f"  {runtime} {precision}: not available here (got {encoder.runtime} {encoder.precision})")
            continue
        seconds, _ = timed(forward_all, encoder, tensors[: args.batch_size], args.batch_size)  # export/compile
        print(
            f"  {runtime} {precision}: model id {encoder.model_id}; first batch incl. load/export/compile "
            f"{seconds:.1f} s",
            flush=True,
        )
        built[(runtime, precision)] = encoder
    forward: dict[tuple, list[float]] = {k: [] for k in built}
    stage: dict[tuple, list[float]] = {k: [] for k in built}
    vectors: dict[tuple, np.ndarray] = {}
    good = frames[frames["error"].isna()]
    for _ in range(args.rounds):
        for key, encoder in built.items():
            seconds, vectors[key] = timed(forward_all, encoder, tensors, args.batch_size)
            forward[key].append(len(tensors) / seconds)
            seconds, _ = timed(encoders.build_embeddings, good, encoder, batch_size=args.batch_size, workers=workers)
            stage[key].append(len(good) / seconds)
    figures = {}
    reference = vectors.get(("torch", "fp32"))
    base = statistics.median(forward[("torch", "fp32")]) if ("torch", "fp32") in forward else None
    print(
        f"  runtime table, {len(tensors)} images, batch {args.batch_size}, {args.rounds} interleaved rounds, "
        f"median img/s ({load()}):"
    )
    for key in built:
        a, c = statistics.median(forward[key]), statistics.median(stage[key])
        mean, worst = cosine(vectors[key], reference) if reference is not None else (float("nan"),) * 2
        ratio = f"x{a / base:.2f}" if base else ""
        figures[f"{key[0]}_{key[1]}"] = {"a": a, "c_stage": c, "cos_mean": mean, "cos_min": worst}
        print(
            f"    {key[0]:<12} {key[1]:<5} (a) {a:7.2f} {ratio:>6}   (c'') {c:7.2f}   cosine to torch fp32 "
            f"mean {mean:.6f} min {worst:.6f}   rounds {[round(x, 1) for x in forward[key]]}",
            flush=True,
        )
    return figures


def bench_model(name: str, args: argparse.Namespace, paths: list[Path], manifest, clip_dir: str | Path | None) -> dict:
    device = torch.device("cpu")
    options = DecodeOptions(thumbnail_size=args.thumbnail_size, workers=args.workers)
    workers = worker_count(args.workers)
    encoder = (
        encoders.encoder_for(name, str(clip_dir), device, None) if name == "clip" else encoders.cnn_encoder(device)
    )
    print(
        f"\n== {name}: {encoder.model_id}; batch {args.batch_size}, decode workers {workers}, torch threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    figures: dict[str, float] = {}

    # Decoded thumbnails and model-ready tensors, used by (a) and the embeddings-stage-alone figure.
    seconds, (frames, _) = timed(decode_manifest, manifest, options)
    figures["b_files_to_thumbnails"] = len(paths) / seconds
    good = frames[frames["error"].isna()]
    thumbs = list(good["thumbnail"])
    seconds, batches = timed(
        lambda: list(encoders._prefetched_batches(thumbs, encoder.preprocess, args.batch_size, workers))
    )
    figures["b_thumbnails_to_tensors"] = len(thumbs) / seconds
    tensors = np.concatenate(batches)
    if args.runtimes:
        figures["runtimes"] = bench_runtimes(name, args, tensors, frames, clip_dir)
        if args.runtimes_only:
            return figures

    def file_to_tensors(row) -> list[np.ndarray]:
        rows = decode_file(source_path(row.path_bytes), row.kind, options)
        return [encoder.preprocess(decode_jpeg(r["thumbnail"])) for r in rows if r["error"] is None]

    rows = list(manifest.itertuples(index=False))
    with ThreadPoolExecutor(workers) as pool:
        seconds, _ = timed(lambda: list(pool.map(file_to_tensors, rows)))
    figures["b_files_to_tensors"] = len(rows) / seconds
    if args.full_decode:
        with ThreadPoolExecutor(workers) as pool:
            seconds, _ = timed(lambda: list(pool.map(lambda p: Image.open(p).convert("RGB").size, paths)))
        figures["b_full_resolution_decode"] = len(paths) / seconds

    # (a)
    figures["a_forward"], reference = forward_rate(encoder, tensors, args.batch_size)
    report("(a) forward on ready tensors", figures["a_forward"])
    report("(b) decode: files -> thumbnails (decode_manifest)", figures["b_files_to_thumbnails"])
    report("(b) decode: thumbnails -> tensors (embeddings stage threads)", figures["b_thumbnails_to_tensors"])
    report("(b) decode: files -> tensors (streamed path, no model)", figures["b_files_to_tensors"])
    if args.full_decode:
        report("(b) for scale: full-resolution decode, no draft", figures["b_full_resolution_decode"])

    # (c)
    seconds, (_, _, table, _) = timed(encoders.decode_and_embed, manifest, encoder, options, batch_size=args.batch_size)
    figures["c_streamed"] = len(table) / seconds
    report("(c) files -> vectors, decode_and_embed (overlapped)", figures["c_streamed"])
    seconds, _ = timed(
        lambda: encoders.build_embeddings(
            decode_manifest(manifest, options)[0], encoder, batch_size=args.batch_size, workers=workers
        )
    )
    figures["c_two_stages"] = len(rows) / seconds
    report("(c') files -> vectors, decode_manifest then build_embeddings", figures["c_two_stages"])
    seconds, _ = timed(encoders.build_embeddings, frames, encoder, batch_size=args.batch_size, workers=workers)
    figures["c_embeddings_stage"] = len(thumbs) / seconds
    report("(c'') embeddings stage alone (build_embeddings on thumbnails)", figures["c_embeddings_stage"])

    # (d)
    subset = paths[: args.baseline_images] if args.baseline_images else paths
    figures["d_baseline"] = baseline_loop(encoder, subset, args.thumbnail_size, draft=False)
    report(f"(d) original loop: full decode, batch 1, one after the other ({len(subset)})", figures["d_baseline"])
    figures["d_baseline_draft"] = baseline_loop(encoder, subset, args.thumbnail_size, draft=True)
    report(f"(d') the same loop with the pipeline's draft decoder ({len(subset)})", figures["d_baseline_draft"])

    for label, c in (("c", "c_streamed"), ("c'", "c_two_stages"), ("c''", "c_embeddings_stage")):
        print(
            f"  ratio ({label})/(a) = {figures[c] / figures['a_forward']:.3f}   "
            f"({label})/(d) = {figures[c] / figures['d_baseline']:.2f}   "
            f"({label})/(d') = {figures[c] / figures['d_baseline_draft']:.2f}"
        )
    # On a CPU, decoding and the model share the same cores; each alone already uses all of them, so their
    # times per image add up and no overlap can hide decoding: (c) <= 1 / (1/(a) + 1/(b files -> tensors)).
    bound = 1.0 / (1.0 / figures["a_forward"] + 1.0 / figures["b_files_to_tensors"])
    figures["c_cpu_bound"] = bound
    print(
        f"  CPU budget: with decoding and the model on the same cores, (c) can reach at most "
        f"{bound:.2f} img/s = {bound / figures['a_forward']:.3f} of (a)"
    )

    # Reduced precision
    for precision in args.precisions.split(","):
        if not precision:
            continue
        if precision == "int8" and name != "clip":
            print(
                "  int8: nothing to quantize (dynamic quantization covers linear layers; these features come "
                "from convolutions)"
            )
            continue
        if precision == "int8":
            reduced = encoders.encoder_for(name, str(clip_dir), device, None, precision="int8")
        elif precision == "bf16":
            reduced = bf16_encoder(encoder)
        else:
            raise SystemExit(f"unknown precision {precision}")
        sample = tensors if precision != "bf16" else tensors[: args.bf16_images]
        rate, vectors = forward_rate(reduced, sample, args.batch_size)
        mean, worst = cosine(vectors, reference[: len(sample)])
        figures[f"a_forward_{precision}"] = rate
        figures[f"cosine_{precision}_mean"], figures[f"cosine_{precision}_min"] = mean, worst
        report(
            f"(a) forward {precision} ({len(sample)} images): x{rate / figures['a_forward']:.2f} of fp32, "
            f"cosine mean {mean:.4f} min {worst:.4f}",
            rate,
        )
        if precision in encoders.PRECISIONS and precision != "fp32":
            seconds, (_, _, table, _) = timed(
                encoders.decode_and_embed, manifest, reduced, options, batch_size=args.batch_size
            )
            figures[f"c_streamed_{precision}"] = len(table) / seconds
            report(f"(c) files -> vectors, decode_and_embed, {precision}", figures[f"c_streamed_{precision}"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--models", default="clip,cnn")
    parser.add_argument("--batch-size", type=int, default=32, help="the pipeline's default is 32")
    parser.add_argument("--workers", type=int, default=0, help="decode threads; 0 = one per core (the default)")
    parser.add_argument("--thumbnail-size", type=int, default=256)
    parser.add_argument("--precisions", default="int8,bf16", help="reduced precisions to compare with fp32")
    parser.add_argument("--bf16-images", type=int, default=64, help="bf16 is slow on CPUs without AMX: a subset")
    parser.add_argument("--baseline-images", type=int, default=0, help="files for (d); 0 = all")
    parser.add_argument("--full-decode", action="store_true", help="also time full-resolution decoding (no draft)")
    parser.add_argument(
        "--runtimes",
        default="all",
        help="runtime:precision list for the runtime table "
        "(torch:fp32,onnxruntime:fp32,openvino:fp32,openvino:bf16), 'all', or '' for none",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the runtime table")
    parser.add_argument("--runtimes-only", action="store_true", help="only the runtime table")
    parser.add_argument("--torch-threads", type=int, default=0, help="0 = torch's default")
    parser.add_argument(
        "--clip-model",
        help="a real CLIP (hub id or folder) instead of random ViT-B/32 weights, "
        "e.g. to check int8's cosine to fp32 on trained weights",
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "neural-sorter-bench")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    folder = args.workdir / f"photos-{args.images}"
    seconds, paths = timed(make_photos, folder, args.images)
    sizes = [os.path.getsize(p) for p in paths]
    print(
        f"{len(paths)} JPEGs in {folder} ({np.mean(sizes) / 2**20:.2f} MB each on average, "
        f"sizes {', '.join(f'{w}x{h}' for w, h in SIZES)}; ready in {seconds:.0f} s)"
    )
    print(f"cores {os.cpu_count()}, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {load()}")
    manifest = build_file_manifest(folder)
    clip_dir = None
    if "clip" in args.models:
        clip_dir = args.clip_model or random_clip_dir(args.workdir / "clip-vit-b-32-random")
    results = {}
    for name in args.models.split(","):
        results[name] = bench_model(name, args, paths, manifest, clip_dir)
    print(f"\nsummary ({load()}):")
    for name, figures in results.items():
        if args.runtimes_only:
            continue
        a, d = figures["a_forward"], figures["d_baseline"]
        print(
            f"  {name}: (a) {a:.2f}  (d) {d:.2f}  (d') {figures['d_baseline_draft']:.2f} img/s; "
            f"CPU-budget bound for (c) {figures['c_cpu_bound']:.2f}"
        )
        for label, key in (("c", "c_streamed"), ("c''", "c_embeddings_stage")):
            c = figures[key]
            print(
                f"    ({label}) {c:.2f} img/s   ({label})/(a) = {c / a:.3f} "
                f"[target >= 0.9: {'met' if c / a >= 0.9 else 'MISSED'}]   ({label})/(d) = {c / d:.2f} "
                f"[target >= 3: {'met' if c / d >= 3 else 'MISSED'}]"
            )


if __name__ == "__main__":
    main()
