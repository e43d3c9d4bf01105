"""The trained_autoencoder stage with the contrastive (simclr) variant, on real tuxpaint8 pictures: it trains,
the embeddings stage can load and use the checkpoint, and an unchanged folder reuses it."""

from pathlib import Path

import numpy as np
import pytest
import torch

from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
from neural_sorter.encoders import autoencoder_encoder, build_embeddings, vectors_of
from neural_sorter.inventory import build_file_manifest
from neural_sorter.stages.embeddings import EmbeddingOptions
from neural_sorter.stages.trained_autoencoder import AutoencoderOptions, build_trained_autoencoder, load_trained
from neural_sorter.store import Store


@pytest.mark.slow
def test_simclr_trains_on_real_pictures_embeds_them_and_reuses_its_checkpoint(tuxpaint_sample, tmp_path: Path):
    folder = tuxpaint_sample(8)  # 24 real cut-outs: birds, fish, fruit
    frames, _ = decode_manifest(build_file_manifest(folder), DecodeOptions())
    assert frames["error"].isna().all()
    store = Store(tmp_path / "store")
    options = AutoencoderOptions(variant="simclr", image_size=32, width=8, epochs=3, batch_size=16)
    device = torch.device("cpu")

    def build(previous):
        return build_trained_autoencoder(
            frames,
            previous,
            options,
            models=EmbeddingOptions(backend="autoencoder"),
            seed=0,
            device=device,
            store=store,
            partition_key="images",
            thumbnails=lambda good: list(good["thumbnail"]),
        )

    table, report = build(None)
    assert report.metadata["status"] == "trained"
    assert list(table["epoch"]) == [1, 2, 3]
    assert np.isfinite(table["loss"]).all() and (table["loss"] > 0).all()
    assert table["model_id"].iloc[0].startswith("autoencoder:simclr:")
    checkpoint = Path(table["checkpoint"].iloc[0])
    assert checkpoint.is_file()
    written = checkpoint.stat().st_mtime_ns

    model, model_id = load_trained(table, device)
    embeddings, _ = build_embeddings(frames, autoencoder_encoder(model, model_id, device))
    vectors = vectors_of(embeddings)
    assert vectors.shape == (len(frames), 8 * 8)  # pooled backbone features: width * 8 channels
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert len({v.tobytes() for v in vectors}) == len(frames)  # no collapse onto one point

    again, report = build(table)
    assert report.metadata["status"] == "reused"
    assert (again["status"] == "reused").all()
    assert again["checkpoint"].iloc[0] == str(checkpoint)
    assert checkpoint.stat().st_mtime_ns == written

    # A VAE asked for on the same frames must not pick up the contrastive checkpoint.
    options = AutoencoderOptions(variant="vae", image_size=32, epochs=1, batch_size=16)
    vae, report = build(table)
    assert report.metadata["status"] == "trained"
    assert vae["checkpoint"].iloc[0] != str(checkpoint)
