"""``clip_model`` and ``trained_autoencoder``: the model assets that ``embeddings`` may use."""

import hashlib
import io

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS
from neural_sorter.decoding.images import decode_jpeg
from neural_sorter.embedding import resolve_backend
from neural_sorter.io_managers import iter_stored_thumbnails, read_asset
from neural_sorter.models.autoencoder import (
    images_to_tensor,
    load_checkpoint,
    save_checkpoint,
    train_autoencoder,
)
from neural_sorter.models.clip import ClipUnavailable, load_clip
from neural_sorter.models.preprocess import resize_center_crop
from neural_sorter.partitions import source_dirs
from neural_sorter.previews import as_markdown_image, scatter
from neural_sorter.resources.sorter import SorterResource

CLIP_COLUMNS = ["model_id", "revision", "status", "message", "category", "prompt", "vector"]


@dg.asset(partitions_def=source_dirs, group_name="models", kinds={"pytorch", "parquet"})
def clip_model(context: dg.AssetExecutionContext, sorter: SorterResource) -> pd.DataFrame:
    """Loads CLIP (hub id or local folder), records model id and revision, and embeds the text categories.

    With backend ``auto`` a CLIP model that cannot be loaded is recorded as unavailable (embeddings then use
    the cnn backend); with backend ``clip`` it is an error that says how to provide the weights.
    """
    options = sorter.options()
    if options.backend not in ("auto", "clip"):
        context.add_output_metadata({"status": "not used", "backend": options.backend})
        return pd.DataFrame([_row(options.clip_model, "", "not used", f"backend is {options.backend}")])
    try:
        clip = load_clip(options.clip_model, str(sorter.torch_device()))
    except ClipUnavailable as exc:
        if options.backend == "clip":
            raise dg.Failure(str(exc)) from None
        context.log.warning(f"{exc} Falling back (backend auto).")
        context.add_output_metadata({"status": "unavailable", "message": str(exc)})
        return pd.DataFrame([_row(options.clip_model, "", "unavailable", str(exc))])
    rows = []
    if options.categories:
        prompts = [options.prompt_template.format(c) for c in options.categories]
        vectors = clip.embed_texts(prompts)
        for category, prompt, vector in zip(options.categories, prompts, vectors):
            rows.append({**_row(clip.model_id, clip.revision, "loaded", ""), "category": category,
                         "prompt": prompt, "vector": vector.astype(np.float32)})
    else:
        rows.append(_row(clip.model_id, clip.revision, "loaded", "no categories configured"))
    context.add_output_metadata(
        {"status": "loaded", "model_id": clip.model_id, "revision": clip.revision,
         "categories": len(options.categories)}
    )
    return pd.DataFrame(rows, columns=CLIP_COLUMNS)


def _row(model_id: str, revision: str, status: str, message: str) -> dict[str, object]:
    return {"model_id": model_id, "revision": revision, "status": status, "message": message,
            "category": None, "prompt": None, "vector": None}


class AutoencoderConfig(dg.Config):
    variant: str | None = Field(None, description="vae or ae")
    epochs: int | None = None
    latent_dim: int | None = None
    image_size: int | None = None
    retrain: bool | None = Field(None, description="Train again even if the frames did not change.")


def frames_fingerprint(frames: pd.DataFrame, options: dict[str, object]) -> str:
    """Identifies the training set and options: the checkpoint is reused while this stays the same."""
    digest = hashlib.blake2b(digest_size=12)
    for content_hash, frame_index in sorted(zip(frames["content_hash"], frames["frame_index"])):
        digest.update(f"{content_hash}:{frame_index};".encode())
    digest.update(repr(sorted(options.items())).encode())
    return digest.hexdigest()


def training_tensor(thumbnails: list[bytes], size: int):
    arrays = [np.asarray(resize_center_crop(decode_jpeg(t), size)) for t in thumbnails]
    return images_to_tensor(arrays)


@dg.asset(
    partitions_def=source_dirs,
    group_name="models",
    kinds={"pytorch", "parquet"},
    ins={"decoded_frames": dg.AssetIn(metadata={"columns": FRAME_INDEX_COLUMNS})},  # thumbnails only if used
)
def trained_autoencoder(
    context: dg.AssetExecutionContext,
    config: AutoencoderConfig,
    sorter: SorterResource,
    decoded_frames: pd.DataFrame,
) -> pd.DataFrame:
    """A convolutional VAE (or plain autoencoder) trained on this folder's frames, when the backend needs it.

    The checkpoint lives in the store; it is reused while the frames and options are unchanged.
    """
    options = sorter.options()
    device = sorter.torch_device()
    backend, _ = resolve_backend(options.backend, options.clip_model, device)
    if backend != "autoencoder":
        context.add_output_metadata({"status": "not used", "backend": backend})
        return pd.DataFrame([{"status": "not used", "model_id": "", "checkpoint": "", "fingerprint": "",
                              "epoch": 0, "loss": np.nan, "reconstruction": np.nan, "kl": np.nan}])
    ae = options.autoencoder.model_copy(update={k: v for k, v in config.model_dump().items() if v is not None})
    good = decoded_frames[decoded_frames["error"].isna()]
    if len(good) < 2:
        raise dg.Failure(f"the autoencoder needs at least 2 decoded frames; this folder has {len(good)}")
    fingerprint = frames_fingerprint(good, ae.model_dump(exclude={"retrain"}) | {"seed": options.seed})
    checkpoint = sorter.store_root() / "models" / "autoencoder" / f"{context.partition_key}-{fingerprint}.pt"
    previous = read_asset(sorter.store_root(), "trained_autoencoder", context.partition_key)
    if (
        not ae.retrain
        and previous is not None
        and (previous["fingerprint"] == fingerprint).any()
        and checkpoint.exists()
    ):
        context.log.info(f"frames unchanged: reusing {checkpoint}")
        context.add_output_metadata({"status": "reused", "checkpoint": str(checkpoint)})
        return previous.assign(status="reused")
    thumbnails = iter_stored_thumbnails(sorter.store_root(), context.partition_key, good)
    data = training_tensor(list(thumbnails), ae.image_size)
    context.log.info(f"training {ae.variant} on {len(data)} frames for {ae.epochs} epochs on {device}")
    model, report = train_autoencoder(data, ae, device, seed=options.seed)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    save_checkpoint(model, buffer)
    with checkpoint.open("wb") as handle:
        handle.write(buffer.getvalue())
    epochs = np.arange(1, len(report.losses) + 1)
    curve = scatter(np.stack([epochs, np.log(np.maximum(report.losses, 1e-9))], axis=1), np.zeros(len(epochs), int))
    context.add_output_metadata(
        {
            "status": "trained",
            "checkpoint": str(checkpoint),
            "frames": len(data),
            "epochs": ae.epochs,
            "final_loss": float(report.losses[-1]),
            "final_kl": float(report.kl[-1]),
            "seconds": round(report.seconds, 2),
            "loss_curve": dg.MetadataValue.md(as_markdown_image(curve, "log loss per epoch")),
        }
    )
    return pd.DataFrame(
        {
            "status": "trained",
            "model_id": f"autoencoder:{ae.variant}:{fingerprint}",
            "checkpoint": str(checkpoint),
            "fingerprint": fingerprint,
            "epoch": epochs,
            "loss": report.losses,
            "reconstruction": report.reconstruction,
            "kl": report.kl,
        }
    )


def load_trained(table: pd.DataFrame, store_device) -> tuple[object, str] | None:
    """The model recorded by a ``trained_autoencoder`` table, or None when it was not used."""
    if not len(table) or table["status"].iloc[0] == "not used":
        return None
    from upath import UPath

    path = UPath(table["checkpoint"].iloc[0])
    with path.open("rb") as handle:
        model = load_checkpoint(io.BytesIO(handle.read()), store_device)
    return model, str(table["model_id"].iloc[0])
