"""Sorting quality against folder names: NMI, ARI and clustering accuracy.

    python bench/quality.py                        # old vs new default on every labelled set, cached vectors
    python bench/quality.py --compare SET... --methods kmeans,spectral --seeds 3
    python bench/quality.py [DATASET] --backend cnn --method kmeans --k 8
    python bench/quality.py --backend pixels          # raw 32x32 pixels baseline
    python bench/quality.py --backend autoencoder     # VAE trained on the dataset itself

DATASET defaults to ../shared/datasets/tuxpaint8 (one class per folder). Runs the pipeline's own functions
(inventory, decoding, embedding, clustering) without Dagster so the figure is about the models.

With no arguments (or ``--compare``) it compares the older defaults (k-means, then spectral, on Lite0's pooled
features) with today's (``clustering.DEFAULT_METHOD`` on the pipeline's default cnn recipe) on tuxpaint8 and on
every set ``bench/build_sets.py`` built, with the true k and with k='auto' (default ``k_range`` 2..12), over
``--seeds`` seeds; vectors are embedded once and cached by ``bench/labelled.py``. ``--runs`` lists
``features:method`` pairs, where features is ``default`` (the pipeline's own cnn encoder) or a bench recipe
such as ``lite1-flip-stage`` (``labelled.recipe_vectors``); ``--features A,B --methods X,Y`` runs every pair.
Each row: set, features, method, k asked, k chosen (per seed), NMI/ARI/ACC mean ± sd, clustering seconds.

    python bench/quality.py --compare --features lite0,lite1,lite1-flip --methods spectral
"""

from __future__ import annotations

import argparse
import time
import typing
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from neural_sorter.clustering import DEFAULT_METHOD, METHODS, cluster_embeddings
from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
from neural_sorter.decoding.images import decode_jpeg
from neural_sorter.device import pick_device
from neural_sorter.encoders import autoencoder_encoder, build_embeddings, encoder_for, vectors_of
from neural_sorter.inventory import build_file_manifest
from neural_sorter.models.autoencoder import images_to_tensor, train_autoencoder
from neural_sorter.models.preprocess import resize_center_crop
from neural_sorter.settings import AutoencoderOptions

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tuxpaint8"


def clustering_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Best one-to-one matching of clusters to classes (Hungarian), as a fraction of files."""
    classes, clusters = np.unique(truth), np.unique(predicted)
    table = np.zeros((len(clusters), len(classes)), dtype=int)
    for i, c in enumerate(clusters):
        for j, t in enumerate(classes):
            table[i, j] = np.sum((predicted == c) & (truth == t))
    rows, cols = linear_sum_assignment(-table)
    return table[rows, cols].sum() / len(truth)


def pixel_vectors(frames) -> np.ndarray:
    arrays = [np.asarray(resize_center_crop(decode_jpeg(t), 32), dtype=np.float32).ravel() / 255 for t in frames]
    x = np.stack(arrays)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def labelled_sets() -> list[Path]:
    """tuxpaint8 and whichever sets bench/build_sets.py has built."""
    from labelled import CACHE

    built = CACHE / "sets"
    return [DEFAULT, *(sorted(p for p in built.iterdir() if p.is_dir()) if built.is_dir() else [])]


def compare(sets: list[Path], runs: list[tuple[str, str]], seeds: int, k_range: tuple[int, int]) -> None:
    """The markdown table of every (features, method) run on every set, with the true k and with k='auto'."""
    import pandas as pd
    from labelled import recipe_vectors, vectors_for

    print("| set | n | classes | features | method | k | k chosen | NMI | ARI | ACC | cluster s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in sets:
        costs = []
        for features, method in runs:
            if features == "default":
                x, truth, paths, timings = vectors_for(folder)
            else:
                x, truth, paths, timings = recipe_vectors(folder, features)
            costs.append(f"{features} embed {timings['embed_s']:.1f}s")
            table = pd.DataFrame(
                {"relative_path": paths, "content_hash": paths, "vector": list(x), "category_probs": None}
            )
            true_k = len(set(truth))
            for k in (true_k, "auto"):
                scores, chosen, seconds = [], [], []
                for seed in range(seeds):
                    t0 = time.perf_counter()
                    labels_table, result = cluster_embeddings(table, x, method, k, k_range, 5, [], 1.0, seed)
                    seconds.append(time.perf_counter() - t0)
                    by_path = dict(zip(labels_table["relative_path"], labels_table["cluster_id"]))
                    predicted = np.array([by_path[p] for p in paths])
                    scores.append(
                        (
                            normalized_mutual_info_score(truth, predicted),
                            adjusted_rand_score(truth, predicted),
                            clustering_accuracy(truth, predicted),
                        )
                    )
                    chosen.append(result.chosen_k)
                mean, sd = np.mean(scores, axis=0), np.std(scores, axis=0)
                ks = ",".join(str(c) for c in chosen) if len(set(chosen)) > 1 else str(chosen[0])
                figures = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, sd))
                print(
                    f"| {folder.name} | {len(x)} | {true_k} | {features} | {method} | {k} | {ks} | {figures} | "
                    f"{np.mean(seconds):.2f} |",
                    flush=True,
                )
        print(f"<!-- {folder.name}: {'; '.join(dict.fromkeys(costs))} -->", flush=True)


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    compare_flags = ("--compare", "--runs", "--features", "--methods")
    if len(sys.argv) == 1 or any(a.split("=")[0] in compare_flags for a in sys.argv[1:]):
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--compare", nargs="*", type=Path, default=None, help="labelled set folders")
        parser.add_argument("--runs", default=f"lite0:kmeans,lite0:spectral,default:{DEFAULT_METHOD}")
        parser.add_argument("--features", default=None, help="with --methods: every features/method pair")
        parser.add_argument("--methods", default=None)
        parser.add_argument("--seeds", type=int, default=3)
        parser.add_argument("--k-range", default="2,12")
        args = parser.parse_args()
        low, high = (int(v) for v in args.k_range.split(","))
        if args.features or args.methods:
            features = (args.features or "default").split(",")
            runs = [(f, m) for f in features for m in (args.methods or DEFAULT_METHOD).split(",")]
        else:
            runs = [tuple(r.split(":")) for r in args.runs.split(",")]
        compare(args.compare or labelled_sets(), runs, args.seeds, (low, high))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--backend", default="cnn", choices=["cnn", "clip", "autoencoder", "pixels"])
    parser.add_argument("--clip-model", default="openai/clip-vit-base-patch32")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS))
    parser.add_argument("--k", default="8")
    variants = typing.get_args(AutoencoderOptions.model_fields["variant"].annotation)  # declared once there
    parser.add_argument("--variant", default="vae", choices=list(variants))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=1, help="repeat clustering/training over this many seeds")
    args = parser.parse_args()
    k = args.k if args.k == "auto" else int(args.k)

    started = time.perf_counter()
    manifest = build_file_manifest(args.dataset)
    frames, _ = decode_manifest(manifest, DecodeOptions())
    frames = frames[frames["error"].isna()].reset_index(drop=True)
    truth = np.array([p.split("/")[0] for p in frames["relative_path"]])
    decoded = time.perf_counter() - started
    device = pick_device()
    scores = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        if args.backend == "pixels":
            x = pixel_vectors(frames["thumbnail"])
            table = frames[["relative_path", "content_hash"]].assign(vector=list(x), category_probs=None)
        else:
            if args.backend == "autoencoder":
                options = AutoencoderOptions(variant=args.variant, epochs=args.epochs)
                data = images_to_tensor(
                    [np.asarray(resize_center_crop(decode_jpeg(t), options.image_size)) for t in frames["thumbnail"]]
                )
                model, report = train_autoencoder(data, options, device, seed=seed)
                encoder = autoencoder_encoder(model, "autoencoder", device)
                print(
                    f"  trained {args.variant}: {report.seconds:.1f}s, final loss {report.losses[-1]:.1f}, "
                    f"KL {report.kl[-1]:.2f}"
                )
            else:
                encoder = encoder_for(args.backend, args.clip_model, device, None)
            table, _ = build_embeddings(frames, encoder)
            x = vectors_of(table)
        labels_table, result = cluster_embeddings(table, x, args.method, k, (2, 12), 5, [], 1.0, seed)
        by_path = dict(zip(labels_table["relative_path"], labels_table["cluster_id"]))
        predicted = np.array([by_path[p] for p in frames["relative_path"]])
        nmi = normalized_mutual_info_score(truth, predicted)
        ari = adjusted_rand_score(truth, predicted)
        acc = clustering_accuracy(truth, predicted)
        scores.append((nmi, ari, acc))
        print(
            f"seed {seed}: NMI {nmi:.3f}  ARI {ari:.3f}  ACC {acc:.3f}  clusters {result.chosen_k}  "
            f"({time.perf_counter() - t0:.1f}s)"
        )
    mean = np.mean(scores, axis=0)
    print(
        f"{args.dataset.name}: {len(frames)} images, {len(set(truth))} classes, backend {args.backend}, "
        f"method {args.method}, k {args.k}, decode {decoded:.1f}s on {device} ({torch.get_num_threads()} threads)"
    )
    print(f"NMI {mean[0]:.3f}  ARI {mean[1]:.3f}  ACC {mean[2]:.3f}  (mean of {len(scores)} seed(s))")


if __name__ == "__main__":
    main()
