"""Labelled image sets for the quality bench, and their embeddings cached outside the repository.

A labelled set is a folder with one sub-folder per class. ``vectors_for(folder)`` runs the pipeline's own
inventory, decoding and embedding (without Dagster) once and caches the L2-normalised vectors with the class
of each file under ``~/.cache/neural-sorter-bench/vectors`` (``NEURAL_SORTER_BENCH_CACHE`` moves it), keyed
by the folder's path, its file list and the encoder's model id, so clustering recipes can be compared in
seconds.

    python bench/labelled.py FOLDER...     # embed (or load) and print the size of each set

``backend='cnn-flip'`` (bench only, not a pipeline option) averages each image's features with its mirror
image's, to measure flip-averaged views.

``recipe_vectors(folder, "lite1-flip-stage")`` gives the vectors of a cnn feature recipe (``efficientnet.Recipe``:
model lite0/lite1/lite2 at its native size, ``-flip`` averaged with the mirror image, ``-stage`` with the last
MBConv stage's pooled map concatenated). One torch pass per model and view (original, mirrored) yields all
four recipes of that model, cached together with the images per second of each.

    python bench/labelled.py --recipes lite0,lite1,lite2 FOLDER...
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
    return f"{folder.name}-{backend.replace('/', '_')}-{digest}"


def vectors_for(folder: Path, backend: str = "cnn") -> tuple[np.ndarray, np.ndarray, list[str], dict[str, float]]:
    """(vectors, class per file, relative paths, timings) of a labelled folder, embedded once and cached."""
    from neural_sorter.device import pick_device
    from neural_sorter.encoders import encoder_for

    folder = Path(folder)
    # Building the encoder is cheap (the model loads on its first batch); its model id names the recipe, so a
    # changed default recipe is embedded anew instead of reusing the old recipe's vectors.
    encoder = encoder_for(backend.removesuffix("-flip"), "openai/clip-vit-base-patch32", pick_device(), None)
    path = CACHE / "vectors" / f"{_key(folder, backend + '-' + encoder.model_id)}.npz"
    if path.exists():
        data = np.load(path, allow_pickle=False)
        timings = {"decode_s": float(data["decode_s"]), "embed_s": float(data["embed_s"])}
        return data["vectors"], data["truth"], list(data["paths"]), timings
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.encoders import build_embeddings, vectors_of
    from neural_sorter.inventory import build_file_manifest

    started = time.perf_counter()
    manifest = build_file_manifest(folder)
    frames, _ = decode_manifest(manifest, DecodeOptions())
    frames = frames[frames["error"].isna()].reset_index(drop=True)
    decoded = time.perf_counter() - started
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


def recipe_vectors(folder: Path, recipe: str, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(vectors, class per file, relative paths, timings) of a cnn feature recipe such as ``lite1-flip``.

    Decoding is the pipeline's; the model is the folded torch network at the model's native input size, run in
    this process's torch threads. ``timings`` has ``images_per_second`` of this recipe: the original view's
    pass, plus the mirrored view's for ``-flip`` (the extra pooled map of ``-stage`` costs nothing measurable).
    """
    model, *flags = recipe.split("-")
    folder = Path(folder)
    path = CACHE / "vectors" / f"{_key(folder, 'recipes-' + model)}.npz"
    if not path.exists():
        _embed_recipes(folder, model, path, batch_size)
    data = np.load(path, allow_pickle=False)
    head, stage = data["head"], data["stage"]
    seconds = float(data["seconds"])
    if "flip" in flags:
        head, stage = (head + data["head_flip"]) / 2, (stage + data["stage_flip"]) / 2
        seconds += float(data["seconds_flip"])
    x = _normalise(head)
    if "stage" in flags:
        x = _normalise(np.concatenate([x, _normalise(stage)], axis=1))
    timings = {"decode_s": float(data["decode_s"]), "embed_s": seconds, "images_per_second": len(x) / seconds}
    return x.astype(np.float32), data["truth"], list(data["paths"]), timings


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _embed_recipes(folder: Path, model_name: str, path: Path, batch_size: int) -> None:
    import torch

    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.decoding.images import decode_jpeg
    from neural_sorter.inventory import build_file_manifest
    from neural_sorter.models import efficientnet

    started = time.perf_counter()
    manifest = build_file_manifest(folder)
    frames, _ = decode_manifest(manifest, DecodeOptions())
    frames = frames[frames["error"].isna()].drop_duplicates("relative_path").sort_values("relative_path")
    decoded = time.perf_counter() - started
    size = efficientnet.VARIANTS[model_name].input_size
    model = efficientnet.load_efficientnet("cpu", model_name)
    tap = (efficientnet.stage_ends(model)[-1],)
    arrays = np.stack([efficientnet.preprocess(decode_jpeg(t), size) for t in frames["thumbnail"]])
    out: dict[str, list[np.ndarray]] = {"head": [], "stage": [], "head_flip": [], "stage_flip": []}
    seconds = {"": 0.0, "_flip": 0.0}
    with torch.inference_mode():
        efficientnet.pooled_maps(model, torch.from_numpy(arrays[:2]).contiguous(memory_format=torch.channels_last))
        for suffix in seconds:
            for start in range(0, len(arrays), batch_size):
                batch = torch.from_numpy(arrays[start : start + batch_size])
                if suffix:
                    batch = batch.flip(-1)
                t0 = time.perf_counter()
                stage, head = efficientnet.pooled_maps(model, batch.contiguous(memory_format=torch.channels_last), tap)
                seconds[suffix] += time.perf_counter() - t0
                out["head" + suffix].append(head.numpy())
                out["stage" + suffix].append(stage.numpy())
    paths = [str(p) for p in frames["relative_path"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        **{k: np.concatenate(v) for k, v in out.items()},
        truth=np.array([p.split("/")[0] for p in paths]),
        paths=np.array(paths),
        decode_s=decoded,
        seconds=seconds[""],
        seconds_flip=seconds["_flip"],
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--recipes":
        import torch

        for arg in sys.argv[3:] or [str(TUXPAINT8)]:
            for model in sys.argv[2].split(","):
                x, truth, _, timings = recipe_vectors(Path(arg), model)
                print(
                    f"{arg}: {model} {x.shape[0]} x {x.shape[1]}, {timings['images_per_second']:.1f} img/s "
                    f"(torch, {torch.get_num_threads()} threads), decode {timings['decode_s']:.1f}s",
                    flush=True,
                )
        sys.exit()
    for arg in sys.argv[1:] or [str(TUXPAINT8)]:
        x, truth, _, timings = vectors_for(Path(arg))
        print(f"{arg}: {x.shape[0]} x {x.shape[1]}, {len(set(truth))} classes, {timings}")
