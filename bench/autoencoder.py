"""The self-trained backend's variants against the raw-pixel baseline: NMI/ARI/ACC over seeds, training seconds.

    python bench/autoencoder.py                                   # tuxpaint8: pixels, vae, simclr; 3 seeds
    python bench/autoencoder.py SET --variants simclr --epochs 150 --set-option temperature=0.5
    python bench/autoencoder.py --embed head                      # embed the projection head's output instead

Each seed trains from scratch on the set's own pictures (``train_autoencoder``, the function the
``trained_autoencoder`` stage calls), embeds them with ``autoencoder_encoder`` + ``build_embeddings`` (as the
embeddings stage does, L2-normalised) and clusters them with k-means at the true k (seeded the same). The
decoded frames are cached under ~/.cache/neural-sorter-bench/frames so repeated runs skip decoding; the
figures are the same as ``bench/quality.py --backend autoencoder --variant V --method kmeans --seeds 3`` (whose
``--variant`` choices predate simclr), plus training seconds and the simclr-only options (``--set-option``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from neural_sorter.clustering import cluster_embeddings
from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
from neural_sorter.device import pick_device
from neural_sorter.encoders import autoencoder_encoder, build_embeddings, vectors_of
from neural_sorter.inventory import build_file_manifest
from neural_sorter.models.autoencoder import train_autoencoder
from neural_sorter.settings import AutoencoderOptions
from neural_sorter.stages.trained_autoencoder import training_tensor

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "shared" / "datasets" / "tuxpaint8"
CACHE = Path.home() / ".cache" / "neural-sorter-bench" / "frames"


def frames_of(folder: Path) -> pd.DataFrame:
    """Decoded frames (relative_path, content_hash, frame_index, thumbnail) of ``folder``, cached by name."""
    cached = CACHE / f"{folder.name}.parquet"
    if cached.exists():
        return pd.read_parquet(cached)
    manifest = build_file_manifest(folder)
    frames, _ = decode_manifest(manifest, DecodeOptions())
    frames = frames[frames["error"].isna()].reset_index(drop=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    frames.to_parquet(cached)
    return frames


def scores(truth: np.ndarray, table: pd.DataFrame, x: np.ndarray, k: int, seed: int) -> tuple[float, float, float]:
    from quality import clustering_accuracy

    labels, _ = cluster_embeddings(table, x, "kmeans", k, (2, 12), 5, [], 1.0, seed)
    by_path = dict(zip(labels["relative_path"], labels["cluster_id"]))
    predicted = np.array([by_path[p] for p in table["relative_path"]])
    return (
        normalized_mutual_info_score(truth, predicted),
        adjusted_rand_score(truth, predicted),
        clustering_accuracy(truth, predicted),
    )


def parse_value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    import sys

    sys.path.insert(0, str(HERE))
    from quality import pixel_vectors

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--variants", default="pixels,vae,simclr", help="pixels and/or AutoencoderOptions.variant")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--epochs", type=int, default=None, help="default: AutoencoderOptions' default")
    parser.add_argument("--set-option", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--embed", default="features", choices=["features", "head"], help="simclr embedding")
    args = parser.parse_args()
    extra = {name: parse_value(value) for name, value in (o.split("=", 1) for o in args.set_option)}
    if args.epochs is not None:
        extra["epochs"] = args.epochs

    frames = frames_of(args.dataset)
    truth = np.array([p.split("/")[0] for p in frames["relative_path"]])
    k = len(set(truth))
    device = pick_device()
    print(f"{args.dataset.name}: {len(frames)} images, {k} classes, {device}, {torch.get_num_threads()} threads")
    print("| variant | options | NMI | ARI | ACC | train s | seeds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for variant in args.variants.split(","):
        rows, seconds = [], []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if variant == "pixels":
                x = pixel_vectors(frames["thumbnail"])
                table = frames[["relative_path", "content_hash"]].assign(vector=list(x), category_probs=None)
                described = "32x32 raw"
            else:
                options = AutoencoderOptions(**({"variant": variant} | extra))
                data = training_tensor(list(frames["thumbnail"]), options.image_size)
                cpu = time.process_time()
                model, report = train_autoencoder(data, options, device, seed=seed)
                cpu = time.process_time() - cpu
                seconds.append(report.seconds)
                if args.embed == "head" and variant == "simclr":
                    model.embed = torch.inference_mode()(model.forward)
                table, _ = build_embeddings(frames, autoencoder_encoder(model, variant, device))
                x = vectors_of(table)
                described = ", ".join(f"{n}={v}" for n, v in sorted(extra.items())) or "defaults"
                print(
                    f"<!-- seed {seed}: final loss {report.losses[-1]:.3f}, {report.seconds:.1f}s wall, "
                    f"{cpu:.1f}s CPU (all threads) -->",
                    flush=True,
                )
            rows.append(scores(truth, table, x, k, seed))
            print(f"<!-- {variant} seed {seed}: NMI {rows[-1][0]:.3f} ARI {rows[-1][1]:.3f} ACC {rows[-1][2]:.3f} -->")
        mean, sd = np.mean(rows, axis=0), np.std(rows, axis=0)
        figures = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, sd))
        train = f"{np.mean(seconds):.0f}" if seconds else "-"
        print(f"| {variant} | {described} | {figures} | {train} | {args.seeds} |", flush=True)
    started = time.strftime("%H:%M UTC", time.gmtime())
    print(f"<!-- finished {started}; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} -->")


if __name__ == "__main__":
    main()
