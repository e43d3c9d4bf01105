"""``embeddings``: one L2-normalised vector per file from the chosen backend, reusing unchanged content's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neural_sorter.models import cnn_recipe
from neural_sorter.stages import StageError, StageReport

Backend = Literal["auto", "clip", "cnn", "autoencoder"]
Precision = Literal["fp32", "int8", "bf16"]
Runtime = Literal["auto", "torch", "onnxruntime", "openvino"]
CnnModel = Literal["lite0", "lite1", "lite2"]
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


class EmbeddingOptions(BaseModel):
    """Which model embeds the files. ``backend``, ``clip_model`` and ``categories`` are shared by the model
    assets and ``embeddings``, which must agree on them within a run."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = Field(
        "auto", description="Embedding model: auto (clip if its weights load, else cnn), clip, cnn, autoencoder."
    )
    clip_model: str = Field(DEFAULT_CLIP_MODEL, description="CLIP: Hugging Face hub id or a local model folder.")
    cnn_model: CnnModel = Field(
        cnn_recipe.DEFAULT_MODEL,
        description="cnn backend: EfficientNet-Lite0/1/2 ImageNet features at the model's native size (224/240/260 "
        "px); larger is slower and, measured on labelled sets, better (bench/README.md).",
    )
    cnn_flip: bool = Field(
        cnn_recipe.DEFAULT_FLIP,
        description="cnn backend: average each image's features with its mirror image's (twice the embedding time).",
    )
    categories: list[str] = Field(default_factory=list, description="CLIP text categories that name clusters.")
    prompt_template: str = Field("a photo of {}", description="CLIP prompt; {} is replaced by each category.")
    batch_size: int = Field(32, ge=1, le=1024, description="Images per forward pass.")
    precision: Precision = Field(
        "fp32",
        description="int8 quantizes CLIP's linear layers on CPU (faster, vectors at cosine >= 0.99 to fp32); "
        "bf16 runs OpenVINO in bf16 on CPUs with AVX512-BF16/AMX (about 2x, vectors at cosine ~0.99 to fp32).",
    )
    runtime: Runtime = Field(
        "auto",
        description="CPU inference runtime: auto (openvino, else onnxruntime, else torch; torch on GPUs), torch, "
        "onnxruntime, openvino. The model is exported once and cached; fp32 vectors match torch's.",
    )


def recipe_of(options: EmbeddingOptions) -> cnn_recipe.Recipe:
    """The cnn backend's feature recipe the options ask for."""
    return cnn_recipe.Recipe(options.cnn_model, options.cnn_flip)


def category_vectors_of(clip_model: pd.DataFrame) -> tuple[list[str], np.ndarray | None]:
    """The categories and their text vectors recorded by the ``clip_model`` table (none without CLIP)."""
    rows = clip_model[clip_model["category"].notna()] if "category" in clip_model else clip_model.iloc[0:0]
    if not len(rows):
        return [], None
    return list(rows["category"]), np.stack(rows["vector"].to_numpy()).astype(np.float32)


def build_embeddings(
    frames: pd.DataFrame,
    previous: pd.DataFrame | None,
    options: EmbeddingOptions,
    *,
    clip_model: pd.DataFrame,
    autoencoder: tuple[object, str] | None,
    device,
    thumbnails: Callable[[pd.DataFrame], Iterable[bytes]],
    workers: int,
) -> tuple[pd.DataFrame, StageReport]:
    """Embeds the frames whose content has no reusable vector in ``previous`` (same backend and model id).

    ``frames`` is the ``decoded_frames`` index; ``thumbnails`` streams the thumbnails of the rows to embed.
    """
    from neural_sorter import encoders

    backend, notes = encoders.resolve_backend(options.backend, options.clip_model, device, options.cnn_model)
    notes = [*notes, f"backend: {backend} (requested {options.backend}) on {device}"]
    if backend != "autoencoder":
        notes += encoders.plan_runtime(backend, options.precision, options.runtime, device)[2]
    try:
        encoder = encoders.encoder_for(
            backend,
            options.clip_model,
            device,
            autoencoder,
            options.precision,
            options.runtime,
            recipe_of(options),
        )
    except encoders.BackendUnavailable as exc:
        raise StageError(str(exc)) from None
    categories, category_vectors = category_vectors_of(clip_model) if backend == "clip" else ([], None)
    table, stats = encoders.build_embeddings(
        frames,
        encoder,
        categories,
        category_vectors,
        reuse=previous,
        batch_size=options.batch_size,
        workers=workers,
        thumbnails=thumbnails,
    )
    report = StageReport(
        metadata={
            "backend": backend,
            "model_id": encoder.model_id,
            "precision": encoder.precision,
            "runtime": encoder.runtime,
            "model_loaded": bool(getattr(encoder.forward, "loaded", True)),
            "device": str(device),
            "dimensions": len(table["vector"].iloc[0]) if len(table) else 0,
            **stats,
        },
        notes=notes,
    )
    return table, report
