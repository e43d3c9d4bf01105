"""``trained_autoencoder``: a model trained from scratch on the folder's own frames, when the backend needs it: a
convolutional VAE, a plain autoencoder, or a contrastive (SimCLR-style) conv encoder, per ``variant``. The
checkpoint lives in the store and is reused while frames and options (variant included) are unchanged."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neural_sorter.stages import Markdown, StageError, StageReport
from neural_sorter.stages.embeddings import EmbeddingOptions
from neural_sorter.store import Store
from neural_sorter.tables import SCHEMAS, TRAINED_AUTOENCODER

AUTOENCODER_COLUMNS = [c.name for c in SCHEMAS[TRAINED_AUTOENCODER]]


class AutoencoderOptions(BaseModel):
    """Training options of the autoencoder backend."""

    model_config = ConfigDict(extra="forbid")

    variant: Literal["vae", "ae", "simclr"] = Field(
        "vae",
        description="vae (variational autoencoder), ae (plain autoencoder) or simclr (contrastive conv encoder).",
    )
    image_size: int = Field(64, ge=16, le=256, description="Training image side (px).")
    latent_dim: int = Field(64, ge=2, le=1024, description="Embedding dimensions.")
    epochs: int = Field(30, ge=1, le=10_000, description="Training epochs.")
    batch_size: int = Field(32, ge=1, le=4096, description="Training batch size.")
    learning_rate: float = Field(2e-3, gt=0, description="Adam learning rate.")
    kl_weight: float = Field(0.5, ge=0, description="Weight of the KL term (vae).")
    kl_warmup_epochs: int = Field(5, ge=0, description="Epochs over which the KL weight ramps up.")
    temperature: float = Field(0.2, gt=0, le=10, description="NT-Xent softmax temperature (simclr).")
    min_crop: float = Field(0.25, gt=0, le=1, description="Smallest random crop, as a fraction of the area (simclr).")
    colour: float = Field(
        0.1, ge=0, le=1, description="Colour jitter strength (brightness/contrast/saturation; hue a quarter) (simclr)."
    )
    grayscale: float = Field(0.0, ge=0, le=1, description="Probability of a grayscale view (simclr).")
    width: int = Field(16, ge=4, le=512, description="Channels of the first conv block; doubles per block (simclr).")
    retrain: bool = Field(False, description="Train again even if the frames did not change.")


def frames_fingerprint(frames: pd.DataFrame, options: dict[str, object]) -> str:
    """Identifies the training set and options: the checkpoint is reused while this stays the same."""
    digest = hashlib.blake2b(digest_size=12)
    for content_hash, frame_index in sorted(zip(frames["content_hash"], frames["frame_index"])):
        digest.update(f"{content_hash}:{frame_index};".encode())
    digest.update(repr(sorted(options.items())).encode())
    return digest.hexdigest()


def not_used_table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "status": "not used",
                "model_id": "",
                "checkpoint": "",
                "fingerprint": "",
                "epoch": 0,
                "loss": np.nan,
                "reconstruction": np.nan,
                "kl": np.nan,
            }
        ],
        columns=AUTOENCODER_COLUMNS,
    )


def build_trained_autoencoder(
    frames: pd.DataFrame,
    previous: pd.DataFrame | None,
    options: AutoencoderOptions,
    *,
    models: EmbeddingOptions,
    seed: int,
    device,
    store: Store,
    partition_key: str,
    thumbnails: Callable[[pd.DataFrame], Iterable[bytes]],
) -> tuple[pd.DataFrame, StageReport]:
    """Trains (or reuses) the autoencoder when the resolved backend is ``autoencoder``; a one-row
    ``not used`` table otherwise."""
    from neural_sorter.encoders import resolve_backend

    backend, _ = resolve_backend(models.backend, models.clip_model, device)
    if backend != "autoencoder":
        return not_used_table(), StageReport({"status": "not used", "backend": backend})
    good = frames[frames["error"].isna()]
    if len(good) < 2:
        raise StageError(f"the autoencoder needs at least 2 decoded frames; this folder has {len(good)}")
    fingerprint = frames_fingerprint(good, options.model_dump(exclude={"retrain"}) | {"seed": seed})
    checkpoint = store.model_path("autoencoder", f"{partition_key}-{fingerprint}.pt")
    if (
        not options.retrain
        and previous is not None
        and (previous["fingerprint"] == fingerprint).any()
        and checkpoint.exists()
    ):
        return previous.assign(status="reused"), StageReport(
            {"status": "reused", "checkpoint": str(checkpoint)}, notes=[f"frames unchanged: reusing {checkpoint}"]
        )
    from neural_sorter.models.autoencoder import save_checkpoint, train_autoencoder
    from neural_sorter.previews import as_markdown_image, scatter

    data = training_tensor(list(thumbnails(good)), options.image_size)
    model, report = train_autoencoder(data, options, device, seed=seed)
    buffer = io.BytesIO()
    save_checkpoint(model, buffer)
    store.write_bytes(checkpoint, buffer.getvalue())
    epochs = np.arange(1, len(report.losses) + 1)
    curve = scatter(np.stack([epochs, np.log(np.maximum(report.losses, 1e-9))], axis=1), np.zeros(len(epochs), int))
    table = pd.DataFrame(
        {
            "status": "trained",
            "model_id": f"autoencoder:{options.variant}:{fingerprint}",
            "checkpoint": str(checkpoint),
            "fingerprint": fingerprint,
            "epoch": epochs,
            "loss": report.losses,
            "reconstruction": report.reconstruction,
            "kl": report.kl,
        },
        columns=AUTOENCODER_COLUMNS,
    )
    return table, StageReport(
        {
            "status": "trained",
            "checkpoint": str(checkpoint),
            "frames": len(data),
            "epochs": options.epochs,
            "final_loss": float(report.losses[-1]),
            "final_kl": float(report.kl[-1]),
            "seconds": round(report.seconds, 2),
            "loss_curve": Markdown(as_markdown_image(curve, "log loss per epoch")),
        },
        notes=[f"trained {options.variant} on {len(data)} frames for {options.epochs} epochs on {device}"],
    )


def training_tensor(thumbnails: list[bytes], size: int):
    from neural_sorter.decoding.images import decode_jpeg
    from neural_sorter.models.autoencoder import images_to_tensor
    from neural_sorter.models.preprocess import resize_center_crop

    arrays = [np.asarray(resize_center_crop(decode_jpeg(t), size)) for t in thumbnails]
    return images_to_tensor(arrays)


def load_trained(table: pd.DataFrame, device) -> tuple[object, str] | None:
    """The model recorded by a ``trained_autoencoder`` table, or None when it was not used."""
    if not len(table) or table["status"].iloc[0] == "not used":
        return None
    from upath import UPath

    from neural_sorter.models.autoencoder import load_checkpoint

    with UPath(table["checkpoint"].iloc[0]).open("rb") as handle:
        model = load_checkpoint(io.BytesIO(handle.read()), device)
    return model, str(table["model_id"].iloc[0])
