"""The cnn backend's model option (``cnn_model``, ``cnn_flip``): validated where it is declared, carried by the
CLI flag to the encoder, named in the model id (so vectors of another recipe are never reused), and the
default model's vectors through the default runtime match the published network's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch

from neural_sorter import encoders
from neural_sorter.decoding.images import decode_jpeg, encode_jpeg, load_image_thumbnail
from neural_sorter.models import cnn_recipe, efficientnet
from neural_sorter.settings import SorterConfig
from neural_sorter.stages.embeddings import EmbeddingOptions, build_embeddings

CPU = torch.device("cpu")
CLI = Path(sys.executable).with_name("neural-sorter")


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {**os.environ, "NEURAL_SORTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    env["NEURAL_SORTER_CACHE"] = os.environ.get("NEURAL_SORTER_CACHE") or str(Path.home() / ".cache" / "neural-sorter")
    return env


def _frames(count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "relative_path": [f"f{i}.png" for i in range(count)],
            "content_hash": [f"h{i}" for i in range(count)],
            "kind": ["image"] * count,
            "frame_index": [0] * count,
            "error": [None] * count,
        }
    )


class _WouldEmbed(Exception):
    pass


def _stage(frames: pd.DataFrame, previous: pd.DataFrame | None, options: EmbeddingOptions, thumbnails=None):
    def refuse(todo: pd.DataFrame):
        raise _WouldEmbed(list(todo["content_hash"]))

    return build_embeddings(
        frames,
        previous,
        options,
        clip_model=pd.DataFrame(),
        autoencoder=None,
        device=CPU,
        thumbnails=thumbnails or refuse,
        workers=1,
    )


def test_option_is_validated_where_it_is_declared() -> None:
    assert EmbeddingOptions().cnn_model == cnn_recipe.DEFAULT_MODEL and EmbeddingOptions().cnn_flip is False
    with pytest.raises(pydantic.ValidationError, match="cnn_model"):
        EmbeddingOptions(cnn_model="lite9")
    with pytest.raises(pydantic.ValidationError, match="cnn_model"):
        SorterConfig(cnn_model="lite4")  # the YAML file's options are the same model
    with pytest.raises(ValueError, match="lite9"):
        cnn_recipe.Recipe("lite9")


def test_model_ids_name_every_recipe_and_keep_lite0s() -> None:
    ids = {cnn_recipe.Recipe(m, f, s).model_id for m in cnn_recipe.VARIANTS for f in (False, True) for s in (0, 1)}
    assert len(ids) == 12
    assert cnn_recipe.Recipe("lite0").model_id == "efficientnet-lite0"  # vectors stored before the option stay valid
    assert cnn_recipe.Recipe("lite1", flip=True).model_id == "efficientnet-lite1+flip"


def test_cli_rejects_an_unknown_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "sort", str(tmp_path), "--out", str(tmp_path / "out"), "--cnn-model", "lite9"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert done.returncode == 2 and "invalid choice: 'lite9'" in done.stderr
    helped = subprocess.run([str(CLI), "sort", "--help"], capture_output=True, text=True, env=_env(tmp_path))
    assert "--cnn-model {lite0,lite1,lite2}" in helped.stdout and "--cnn-flip" in helped.stdout


@pytest.mark.parametrize(
    ("model", "flip", "model_id", "size"),
    [("lite0", False, "efficientnet-lite0", 224), ("lite2", True, "efficientnet-lite2+flip", 260)],
)
def test_option_reaches_the_encoder_without_loading_it(model: str, flip: bool, model_id: str, size: int) -> None:
    options = EmbeddingOptions(backend="cnn", cnn_model=model, cnn_flip=flip, runtime="torch")
    _table, report = _stage(_frames(0), None, options)
    assert report.metadata["model_id"] == model_id and report.metadata["model_loaded"] is False
    encoder = encoders.encoder_for("cnn", "", CPU, None, cnn_recipe=cnn_recipe.Recipe(model, flip))
    from PIL import Image

    assert encoder.model_id == model_id
    assert encoder.preprocess(Image.new("RGB", (300, 200), "red")).shape == (3, size, size)  # native input size


def test_vectors_of_another_recipe_are_not_reused() -> None:
    """Stored Lite0 vectors (the old default) are embedded anew under the default recipe, reused under lite0."""
    previous = _frames(2).assign(
        backend="cnn", model_id="efficientnet-lite0", vector=[np.full(1280, 1 / np.sqrt(1280), np.float32)] * 2
    )
    table, report = _stage(_frames(2), previous, EmbeddingOptions(backend="cnn", cnn_model="lite0", runtime="torch"))
    assert table["reused"].all() and report.metadata["model_loaded"] is False
    with pytest.raises(_WouldEmbed) as wanted:
        _stage(_frames(2), previous, EmbeddingOptions(backend="cnn", runtime="torch"))
    assert wanted.value.args[0] == ["h0", "h1"]


def _thumbnails(tuxpaint_dir: Path, per_class: int) -> list[bytes]:
    files = [f for cls in sorted(tuxpaint_dir.iterdir()) if cls.is_dir() for f in sorted(cls.glob("*.png"))[:per_class]]
    return [encode_jpeg(load_image_thumbnail(f, 256, 10**9)) for f in files]


@pytest.mark.slow
def test_default_model_through_the_default_runtime_matches_the_published_network(tuxpaint_dir: Path) -> None:
    """The default options (runtime auto: OpenVINO or ONNX Runtime here, exported from the batch-norm-folded
    network) against the unfolded network as published, in torch, on real pictures."""
    thumbs = _thumbnails(tuxpaint_dir, 2)
    options = EmbeddingOptions(backend="cnn")
    table, report = _stage(_frames(len(thumbs)), None, options, thumbnails=lambda todo: thumbs)
    recipe = cnn_recipe.DEFAULT_RECIPE
    assert report.metadata["model_id"] == recipe.model_id and report.metadata["model_loaded"] is True
    assert report.metadata["runtime"] == encoders.plan_runtime("cnn", "fp32", "auto", CPU)[0]
    reference = efficientnet.pretrained_efficientnet(recipe.model)
    batch = torch.from_numpy(np.stack([efficientnet.preprocess(decode_jpeg(t), recipe.input_size) for t in thumbs]))
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(efficientnet.recipe_features(reference, batch, recipe), dim=-1)
    got = np.stack(table.sort_values("content_hash", key=lambda h: h.str[1:].astype(int))["vector"].to_numpy())
    cosine = (got * expected.numpy()).sum(axis=1)
    assert got.shape == (len(thumbs), 1280) and cosine.min() >= 0.999, cosine.min()


@pytest.mark.slow
def test_cli_flag_reaches_the_stored_vectors(tmp_path: Path, tuxpaint_dir: Path) -> None:
    src = tmp_path / "src"
    for cls in ("birds", "fish"):
        (src / cls).mkdir(parents=True)
        for image in sorted((tuxpaint_dir / cls).glob("*.png"))[:3]:
            (src / cls / image.name).write_bytes(image.read_bytes())
    args = ["sort", str(src), "--out", str(tmp_path / "out"), "--backend", "cnn", "--runtime", "torch", "--json"]
    done = subprocess.run(
        [str(CLI), *args, "--cnn-model", "lite0"], capture_output=True, text=True, env=_env(tmp_path), timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["model_id"] == "efficientnet-lite0"


@pytest.mark.slow
def test_flip_recipe_exports_to_the_default_runtime(tuxpaint_dir: Path) -> None:
    """A non-default recipe (mirrored views) is exported under its own model id and gives torch's vectors."""
    recipe = cnn_recipe.Recipe("lite0", flip=True)
    exported = encoders.cnn_encoder(CPU, runtime="auto", recipe=recipe)
    reference = encoders.cnn_encoder(CPU, runtime="torch", recipe=recipe)
    assert exported.model_id == reference.model_id == "efficientnet-lite0+flip"
    thumbs = _thumbnails(tuxpaint_dir, 1)
    batch = torch.from_numpy(np.stack([reference.preprocess(decode_jpeg(t)) for t in thumbs]))
    unflipped = encoders.cnn_encoder(CPU, runtime="torch", recipe=cnn_recipe.Recipe("lite0"))
    unit = [torch.nn.functional.normalize(e.forward(batch).float(), dim=-1).numpy() for e in (exported, reference)]
    assert (unit[0] * unit[1]).sum(axis=1).min() >= 0.999
    plain = torch.nn.functional.normalize(unflipped.forward(batch).float(), dim=-1).numpy()
    assert (plain * unit[1]).sum(axis=1).min() < 0.999  # the mirrored view changed the vectors
