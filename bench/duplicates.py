"""Near-duplicate and quality-flag benchmark: the tool against imagededup's PHash and cleanvision, same run.

Builds a labelled set from real images (``../shared/datasets/tuxpaint8`` and scikit-image's photos): every
original gets one copy per transformation family (exact copy, resized, re-encoded as JPEG, another format,
cropped a little, rotated by 90/180/270°, mirrored, lightly colour-adjusted), each at a strength drawn from
several; the distinct-but-similar negatives are the other pictures of the same class (tuxpaint's eight
classes of look-alike clip art) and non-overlapping crops of the same photo. The pipeline's own stages make the
vectors (inventory, decoding, the offline CNN encoder), cached under /tmp; competitors run in throwaway venvs
under /tmp (never project dependencies). Pairs are scored: a predicted pair is two files the method puts in one
group (imagededup: one file listed as the other's duplicate); a true pair is two files made from one original.

    python bench/duplicates.py                 # the table at the default threshold, all three methods
    python bench/duplicates.py --sweep         # the tool's P/R/F1 over thresholds (to choose the default)
    python bench/duplicates.py --no-competitors --quality
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from venvs import make_venv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TUXPAINT8 = REPO.parent / "shared" / "datasets" / "tuxpaint8"
WORK = Path(os.environ.get("NEURAL_SORTER_DUP_BENCH", "/tmp/neural-sorter-bench-duplicates"))
VENVS = Path("/tmp/neural-sorter-bench-venvs")
SKIMAGE_PHOTOS = [
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "rocket",
    "text",
]
# Large photos split into non-overlapping parts: the same scene, different pictures (hard negatives).
SKIMAGE_SPLIT = ["hubble_deep_field", "retina"]

FAMILIES: dict[str, list[str]] = {
    "exact copy": ["copy"],
    "resized": ["x0.5", "x0.75", "x1.5"],
    "re-encoded JPEG": ["q85", "q50", "q25"],
    "other format": ["webp", "gif", "bmp"],
    "cropped": ["5%", "10%", "15%"],
    "rotated": ["90", "180", "270"],
    "mirrored": ["horizontal", "vertical"],
    "colour-adjusted": ["light", "medium"],
}


# ----------------------------------------------------------------------------------------------- the set


def _rgb(image: Image.Image) -> Image.Image:
    """As the decoder sees it: transparency flattened on white."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _originals() -> list[tuple[str, str, Image.Image, bytes | None]]:
    """(name, class, RGB image, original bytes or None) of every source picture."""
    out = []
    for path in sorted(TUXPAINT8.glob("*/*.png")):
        with Image.open(path) as image:
            out.append((f"tux-{path.parent.name}-{path.stem}", path.parent.name, _rgb(image), path.read_bytes()))
    import skimage.data

    for name in SKIMAGE_PHOTOS:
        array = getattr(skimage.data, name)()
        image = Image.fromarray(array if array.ndim == 3 else np.stack([array] * 3, -1).astype(np.uint8))
        out.append((f"sk-{name}", "photo", _rgb(image), None))
    for name in SKIMAGE_SPLIT:
        array = getattr(skimage.data, name)()
        image = _rgb(Image.fromarray(array))
        w, h = image.size
        out.append((f"sk-{name}-left", f"split-{name}", image.crop((0, 0, w // 2, h)), None))
        out.append((f"sk-{name}-right", f"split-{name}", image.crop((w // 2, 0, w, h)), None))
    return out


def _save(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def _colour(image: Image.Image, strength: str, rng: random.Random) -> Image.Image:
    amount = 0.12 if strength == "light" else 0.25
    kind = rng.choice(["brightness", "contrast", "saturation", "gamma"])
    factor = 1 + amount * rng.choice([-1, 1])
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(factor)
    if kind == "contrast":
        return ImageEnhance.Contrast(image).enhance(factor)
    if kind == "saturation":
        return ImageEnhance.Color(image).enhance(factor)
    table = [round(255 * (i / 255) ** factor) for i in range(256)] * 3
    return image.point(table)


def transform(image: Image.Image, family: str, strength: str, rng: random.Random) -> tuple[bytes, str]:
    """(file bytes, extension) of one transformed copy."""
    w, h = image.size
    if family == "resized":
        f = float(strength[1:])
        return _save(image.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.LANCZOS), "PNG"), "png"
    if family == "re-encoded JPEG":
        return _save(image, "JPEG", quality=int(strength[1:])), "jpg"
    if family == "other format":
        if strength == "webp":
            return _save(image, "WEBP", quality=80), "webp"
        if strength == "gif":
            return _save(image.quantize(256), "GIF"), "gif"
        return _save(image, "BMP"), "bmp"
    if family == "cropped":
        f = float(strength.rstrip("%")) / 100
        dx, dy = round(w * f), round(h * f)
        left, top = rng.randint(0, dx), rng.randint(0, dy)
        return _save(image.crop((left, top, w - (dx - left), h - (dy - top))), "PNG"), "png"
    if family == "rotated":
        turns = {"90": Image.Transpose.ROTATE_90, "180": Image.Transpose.ROTATE_180, "270": Image.Transpose.ROTATE_270}
        return _save(image.transpose(turns[strength]), "PNG"), "png"
    if family == "mirrored":
        return _save(ImageOps.mirror(image) if strength == "horizontal" else ImageOps.flip(image), "PNG"), "png"
    if family == "colour-adjusted":
        return _save(_colour(image, strength, rng), "PNG"), "png"
    raise ValueError(family)


def build_set(folder: Path, seed: int = 0) -> pd.DataFrame:
    """Writes the labelled near-duplicate set into ``folder`` (flat, unique names); returns its labels."""
    labels_path = folder / "labels.csv"
    if labels_path.exists():
        return pd.read_csv(labels_path)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for name, cls, image, raw in _originals():
        original = raw if raw is not None else _save(image, "JPEG", quality=95)
        ext = "png" if raw is not None else "jpg"
        (images / f"{name}.{ext}").write_bytes(original)
        rows.append((f"{name}.{ext}", name, cls, "original", ""))
        for family, strengths in FAMILIES.items():
            strength = rng.choice(strengths)
            if family == "exact copy":
                data, vext = original, ext
            else:
                data, vext = transform(image, family, strength, rng)
            fname = f"{name}__{family.split()[0]}-{strength.rstrip('%')}.{vext}"
            (images / fname).write_bytes(data)
            rows.append((fname, name, cls, family, strength))
    labels = pd.DataFrame(rows, columns=["file", "group", "class", "family", "strength"])
    labels.to_csv(labels_path, index=False)
    return labels


# ----------------------------------------------------------------------------------------------- the tool


def pipeline_tables(images: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """(file_manifest, decoded_frames, embeddings, seconds) through the pipeline's own stages, cached."""
    key = hashlib.sha1("\n".join(sorted(p.name for p in images.iterdir())).encode()).hexdigest()[:12]
    cache = images.parent / f"tables-{key}"
    if (cache / "embeddings.parquet").exists():
        timing = json.loads((cache / "seconds.json").read_text())
        manifest, frames, embeddings = (
            pd.read_parquet(cache / f"{t}.parquet") for t in ("manifest", "frames", "embeddings")
        )
        return manifest, frames, embeddings, timing
    import torch

    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.encoders import build_embeddings, cnn_encoder
    from neural_sorter.inventory import build_file_manifest

    timing = {}
    started = time.perf_counter()
    manifest = build_file_manifest(images)
    frames, _ = decode_manifest(manifest, DecodeOptions())
    timing["decode_s"] = time.perf_counter() - started
    started = time.perf_counter()
    embeddings, _ = build_embeddings(frames, cnn_encoder(torch.device("cpu")))
    timing["embed_s"] = time.perf_counter() - started
    cache.mkdir(parents=True, exist_ok=True)
    manifest.drop(columns=["path_bytes"]).to_parquet(cache / "manifest.parquet")
    frames.to_parquet(cache / "frames.parquet")
    embeddings.to_parquet(cache / "embeddings.parquet")
    (cache / "seconds.json").write_text(json.dumps(timing))
    return manifest, frames, embeddings, timing


def first_thumbnails(frames: pd.DataFrame) -> list[tuple[str, bytes]]:
    first = frames[frames["error"].isna()].drop_duplicates("relative_path")
    return list(zip(first["relative_path"], first["thumbnail"]))


# ----------------------------------------------------------------------------------------------- scoring


def group_pairs(groups: list[list[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in combinations(sorted(set(g)), 2)}


def true_pairs(labels: pd.DataFrame) -> set[frozenset[str]]:
    return group_pairs([list(g["file"]) for _, g in labels.groupby("group")])


def score(predicted: set[frozenset[str]], labels: pd.DataFrame) -> pd.DataFrame:
    """P/R/F1 per transformation family (pairs that involve a copy of that family) and over all pairs."""
    truth = true_pairs(labels)
    family = dict(zip(labels["file"], labels["family"]))
    rows = []
    for fam in [*FAMILIES, "all"]:

        def involves(pair: frozenset[str], fam: str = fam) -> bool:
            return fam == "all" or any(family.get(f) == fam for f in pair)

        t = {p for p in truth if involves(p)}
        p = {q for q in predicted if involves(q)}
        tp = len(t & p)
        precision = tp / len(p) if p else 1.0
        recall = tp / len(t) if t else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"family": fam, "true": len(t), "found": len(p), "P": precision, "R": recall, "F1": f1})
    return pd.DataFrame(rows).set_index("family")


def tool_pairs(result: pd.DataFrame) -> set[frozenset[str]]:
    grouped = result[result["duplicate_group"].notna()]
    return group_pairs([list(g["relative_path"]) for _, g in grouped.groupby("duplicate_group")])


# ----------------------------------------------------------------------------------------------- competitors

IMAGEDEDUP_RUNNER = """
import json, sys, types
# imagededup's package __init__s import its CNN method and model, which need torch; only PHash is used here.
sys.modules["imagededup.methods.cnn"] = types.SimpleNamespace(CNN=None)
sys.modules["imagededup.utils.models"] = types.SimpleNamespace(CustomModel=None)
from imagededup.methods import PHash
phasher = PHash(verbose=False)
encodings = phasher.encode_images(image_dir=sys.argv[1])
dups = phasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
json.dump(dups, open(sys.argv[2], "w"))
"""

CLEANVISION_RUNNER = """
import json, sys, os
from cleanvision import Imagelab
lab = Imagelab(data_path=sys.argv[1])
lab.find_issues({"near_duplicates": {}, "exact_duplicates": {}}, verbose=False)
keys = ("near_duplicates", "exact_duplicates")
sets = [[os.path.basename(p) for p in s] for key in keys for s in lab.info[key]["sets"]]
json.dump(sets, open(sys.argv[2], "w"))
"""

COMPETITORS = {
    # imagededup: --no-deps, then what its hashing methods import (torch/torchvision only serve its CNN).
    "imagededup PHash": (
        "imagededup",
        [
            ["--no-deps", "imagededup==0.3.3.post2"],
            ["numpy", "Pillow", "tqdm", "scikit-learn", "PyWavelets", "matplotlib", "scipy"],
        ],
        IMAGEDEDUP_RUNNER,
    ),
    "cleanvision": ("cleanvision", [["cleanvision==0.3.7"]], CLEANVISION_RUNNER),
}


def _venv(name: str, installs: list[list[str]]) -> Path:
    """A throwaway venv under /tmp with ``installs`` done (once; a marker file says it is complete)."""
    return make_venv(VENVS, name, installs)


def run_competitor(label: str, images: Path, out: Path) -> tuple[set[frozenset[str]] | None, float, str]:
    """(predicted pairs or None, seconds, note)."""
    venv_name, installs, runner = COMPETITORS[label]
    try:
        python = _venv(venv_name, installs)
    except subprocess.CalledProcessError as exc:
        return None, 0.0, f"could not install: {(exc.stderr or '').strip().splitlines()[-1:]}"
    script = out / f"{venv_name}_runner.py"
    script.write_text(runner)
    result = out / f"{venv_name}.json"
    started = time.perf_counter()
    done = subprocess.run([str(python), str(script), str(images), str(result)], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        return None, seconds, f"failed: {done.stderr.strip().splitlines()[-1:]}"
    data = json.loads(result.read_text())
    if isinstance(data, dict):
        pairs = {frozenset((a, b)) for a, dups in data.items() for b in dups if a != b}
    else:
        pairs = group_pairs(data)
    return pairs, seconds, "ok"


# ----------------------------------------------------------------------------------------------- quality

DEGRADATIONS = ["clean", "blurry", "too_dark", "too_bright", "low_information", "tiny"]


def build_quality_set(folder: Path, seed: int = 1) -> pd.DataFrame:
    """Clean pictures (short side >= 100 px) and degraded copies: blurred, darkened, washed out, blanked, shrunk."""
    labels_path = folder / "labels.csv"
    if labels_path.exists():
        return pd.read_csv(labels_path)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for name, _cls, image, _raw in _originals():
        w, h = image.size
        if min(w, h) < 100:
            continue
        variants: dict[str, Image.Image] = {"clean": image}
        radius = rng.uniform(0.012, 0.025) * min(w, h)
        variants["blurry"] = image.filter(ImageFilter.GaussianBlur(max(1.5, radius)))
        dark = rng.uniform(0.12, 0.25)
        variants["too_dark"] = ImageEnhance.Brightness(image).enhance(dark)
        washed = rng.uniform(0.2, 0.4)
        grey = Image.new("RGB", image.size, (255, 255, 255))
        variants["too_bright"] = Image.blend(grey, image, washed)
        tone = tuple(rng.randint(0, 255) for _ in range(3))
        blank = Image.new("RGB", image.size, tone)
        noise = np.asarray(blank, dtype=np.int16) + np.random.default_rng(rng.randint(0, 1 << 30)).integers(
            -3, 4, (h, w, 3)
        )
        variants["low_information"] = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        side = rng.randint(24, 56)
        scale = side / min(w, h)
        variants["tiny"] = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        for kind, picture in variants.items():
            fname = f"{name}__{kind}.png"
            picture.save(images / fname)
            rows.append((fname, kind))
    labels = pd.DataFrame(rows, columns=["file", "degradation"])
    labels.to_csv(labels_path, index=False)
    return labels


def quality_bench(folder: Path) -> pd.DataFrame:
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.inventory import build_file_manifest
    from neural_sorter.quality_flags import FLAG_NAMES, quality_flags

    labels = build_quality_set(folder)
    manifest = build_file_manifest(folder / "images")
    frames, _ = decode_manifest(manifest, DecodeOptions())
    started = time.perf_counter()
    flags = quality_flags(manifest, first_thumbnails(frames))
    seconds = time.perf_counter() - started
    truth = dict(zip(labels["file"], labels["degradation"]))
    flags["truth"] = flags["relative_path"].map(truth)
    rows = []
    for flag in FLAG_NAMES:
        if flag not in set(labels["degradation"]):
            continue
        predicted = flags[flag].astype(bool)
        actual = flags["truth"] == flag
        tp = int((predicted & actual).sum())
        precision = tp / max(1, int(predicted.sum()))
        recall = tp / max(1, int(actual.sum()))
        rows.append(
            {"flag": flag, "degraded": int(actual.sum()), "flagged": int(predicted.sum()), "P": precision, "R": recall}
        )
    table = pd.DataFrame(rows).set_index("flag")
    clean = flags[flags["truth"] == "clean"]
    flagged_clean = clean[[f for f in FLAG_NAMES if f in clean]].any(axis=1)
    print(
        f"\nquality flags: {len(flags)} files, {seconds:.2f} s;"
        f" clean files flagged: {int(flagged_clean.sum())}/{len(clean)}"
    )
    return table


# ----------------------------------------------------------------------------------------------- main


def _fmt(table: pd.DataFrame) -> str:
    return table.to_string(float_format=lambda v: f"{v:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true", help="P/R/F1 of the tool over near thresholds")
    parser.add_argument("--threshold", type=float, default=None, help="near threshold (default: the tool's)")
    parser.add_argument("--no-competitors", action="store_true")
    parser.add_argument("--no-hash", action="store_true", help="the tool without its perceptual-hash signal")
    parser.add_argument("--quality", action="store_true", help="also the quality-flag bench")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from neural_sorter.duplicates import DuplicateOptions, find_duplicates

    labels = build_set(WORK / "near")
    images = WORK / "near" / "images"
    print(
        f"near-duplicate set: {len(labels)} files, {labels['group'].nunique()} originals,"
        f" {len(true_pairs(labels))} true pairs"
    )
    manifest, frames, embeddings, timing = pipeline_tables(images)
    print(f"pipeline: decode {timing['decode_s']:.1f} s, embed (cnn) {timing['embed_s']:.1f} s")
    thumbs = first_thumbnails(frames)
    options = DuplicateOptions() if args.threshold is None else DuplicateOptions(near_threshold=args.threshold)
    if args.no_hash:
        options = options.model_copy(update={"use_hash": False})

    if args.sweep:
        rows = []
        for t in np.round(np.arange(0.80, 0.961, 0.01), 2):
            res = find_duplicates(embeddings, manifest, thumbs, options.model_copy(update={"near_threshold": float(t)}))
            s = score(tool_pairs(res), labels).loc["all"]
            rows.append({"threshold": t, "P": s["P"], "R": s["R"], "F1": s["F1"]})
        print(_fmt(pd.DataFrame(rows).set_index("threshold")))

    started = time.perf_counter()
    result = find_duplicates(embeddings, manifest, thumbs, options)
    seconds = time.perf_counter() - started
    tables = {f"neural-sorter (t={options.near_threshold})": score(tool_pairs(result), labels)}
    notes = {next(iter(tables)): f"{seconds:.2f} s"}
    if not args.no_competitors:
        for label in COMPETITORS:
            pairs, secs, note = run_competitor(label, images, WORK / "near")
            print(f"{label}: {note} ({secs:.1f} s)")
            if pairs is not None:
                tables[label] = score(pairs, labels)
                notes[label] = f"{secs:.1f} s"
    joined = pd.concat({k: v[["P", "R", "F1"]] for k, v in tables.items()}, axis=1)
    joined.insert(0, ("", "true pairs"), next(iter(tables.values()))["true"])
    print(_fmt(joined))
    print("seconds:", notes)
    wrong = [p for p in tool_pairs(result) - true_pairs(labels)]
    if wrong:
        print(f"tool's false pairs ({len(wrong)}):", [sorted(p) for p in wrong[:15]])
    if args.quality:
        print(_fmt(quality_bench(WORK / "quality")))


if __name__ == "__main__":
    main()
