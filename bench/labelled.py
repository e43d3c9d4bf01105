"""Labelled image sets for the quality bench, and their embeddings cached outside the repository.

A labelled set is a folder with one sub-folder per class. ``vectors_for(folder)`` runs the pipeline's own
inventory, decoding and embedding (without Dagster) once and caches the L2-normalised vectors with the class
of each file under ``~/.cache/neural-sorter-bench/vectors`` (``NEURAL_SORTER_BENCH_CACHE`` moves it), keyed
by the folder's path, its file list and the encoder's model id, so clustering recipes can be compared in
seconds.

    python bench/labelled.py FOLDER...     # embed (or load) and print the size of each set

``backend='cnn-flip'`` (bench only, not a pipeline option) averages each image's features with its mirror
image's, to measure flip-averaged views.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("NEURAL_SORTER_BENCH_CACHE", Path.home() / ".cache" / "neural-sorter-bench"))
TUXPAINT8 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tuxpaint8"


def _key(folder: Path, backend: str) -> str:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha1("\n".join([str(folder.resolve()), backend, *files]).encode()).hexdigest()[:12]
    return f"{folder.name}-{backend}-{digest}"


def vectors_for(folder: Path, backend: str = "cnn") -> tuple[np.ndarray, np.ndarray, list[str], dict[str, float]]:
    """(vectors, class per file, relative paths, timings) of a labelled folder, embedded once and cached."""
    folder = Path(folder)
    path = CACHE / "vectors" / f"{_key(folder, backend)}.npz"
    if path.exists():
        data = np.load(path, allow_pickle=False)
        timings = {"decode_s": float(data["decode_s"]), "embed_s": float(data["embed_s"])}
        return data["vectors"], data["truth"], list(data["paths"]), timings
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.device import pick_device
    from neural_sorter.encoders import build_embeddings, encoder_for, vectors_of
    from neural_sorter.inventory import build_file_manifest

    started = time.perf_counter()
    manifest = build_file_manifest(folder)
    frames, _ = decode_manifest(manifest, DecodeOptions())
    frames = frames[frames["error"].isna()].reset_index(drop=True)
    decoded = time.perf_counter() - started
    encoder = encoder_for(backend.removesuffix("-flip"), "openai/clip-vit-base-patch32", pick_device(), None)
    if backend.endswith("-flip"):  # bench only: the mean of the image's and its mirror image's features
        import dataclasses

        forward = encoder.forward
        encoder = dataclasses.replace(encoder, forward=lambda batch: (forward(batch) + forward(batch.flip(-1))) / 2)
    started = time.perf_counter()
    table, _ = build_embeddings(frames, encoder)
    embedded = time.perf_counter() - started
    x = vectors_of(table)
    paths = [str(p) for p in table["relative_path"]]
    truth = np.array([p.split("/")[0] for p in paths])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=x, truth=truth, paths=np.array(paths), decode_s=decoded, embed_s=embedded)
    return x, truth, paths, {"decode_s": decoded, "embed_s": embedded}


if __name__ == "__main__":
    for arg in sys.argv[1:] or [str(TUXPAINT8)]:
        x, truth, _, timings = vectors_for(Path(arg))
        print(f"{arg}: {x.shape[0]} x {x.shape[1]}, {len(set(truth))} classes, {timings}")
