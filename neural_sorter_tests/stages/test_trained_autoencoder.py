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


@pytest.mark.slow
def test_the_cli_sorts_with_the_simclr_variant_from_the_config_file_and_reuses_its_checkpoint(
    tuxpaint_sample, tmp_path
):
    """Real use: ``autoencoder.variant: simclr`` in the YAML config, ``--backend autoencoder`` on the command line."""
    import json
    import os
    import subprocess
    import sys

    src = tuxpaint_sample(3)  # 9 real pictures
    home, out, config = tmp_path / "home", tmp_path / "out", tmp_path / "sorter.yaml"
    config.write_text("autoencoder:\n  variant: simclr\n  image_size: 32\n  width: 8\n  epochs: 2\n  batch_size: 8\n")
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    cli = Path(sys.executable).with_name("neural-sorter")
    command = [str(cli), "--config", str(config), "sort", str(src), "--out", str(out), "--backend", "autoencoder"]
    command += ["--k", "2", "--projection", "pca", "--json"]
    runs = []
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["backend"] == "autoencoder" and summary["files"] == 9
        table = Store(home / "store").read("trained_autoencoder", summary["partition"])
        assert table["model_id"].iloc[0].startswith("autoencoder:simclr:")
        checkpoint = Path(table["checkpoint"].iloc[0])
        runs.append((table["status"].iloc[0], checkpoint, checkpoint.stat().st_mtime_ns))
    # The second sort of the unchanged folder did not train again: same checkpoint file, never rewritten
    # (the stage reused it, or the asset was not re-run at all).
    assert runs[0][0] == "trained" and runs[1][1:] == runs[0][1:]
    assert len(list((home / "store" / "models" / "autoencoder").iterdir())) == 1
    assert sum(1 for p in (out / "images").rglob("*.png")) == 9
