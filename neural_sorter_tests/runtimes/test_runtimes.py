"""ONNX Runtime and OpenVINO against torch fp32 on real images: same vectors, same model id, lazy loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neural_sorter import encoders, runtimes
from neural_sorter.models.cnn_recipe import DEFAULT_RECIPE
from neural_sorter.runtimes.sessions import openvino_bf16_native
from neural_sorter.stages.embeddings import EmbeddingOptions, build_embeddings

CPU = torch.device("cpu")
EXPORTED = [r for r in ("onnxruntime", "openvino") if runtimes.installed(r)]


def _real_batch(tuxpaint_dir: Path, preprocess, count: int = 24) -> torch.Tensor:
    files = sorted(tuxpaint_dir.glob("*/*.png"))[:: max(1, len(list(tuxpaint_dir.glob("*/*.png"))) // count)]
    return torch.from_numpy(np.stack([preprocess(Image.open(f)) for f in files[:count]]))


def _unit(vectors: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(vectors.float(), dim=-1).numpy()


@pytest.mark.parametrize("runtime", EXPORTED)
def test_cnn_runtime_matches_torch_fp32_on_real_images(runtime: str, tuxpaint_dir: Path) -> None:
    reference = encoders.cnn_encoder(CPU, runtime="torch")
    other = encoders.cnn_encoder(CPU, runtime=runtime)
    assert other.runtime == runtime and other.precision == "fp32"
    assert other.model_id == reference.model_id  # fp32 vectors are interchangeable, so reuse spans runtimes
    batch = _real_batch(tuxpaint_dir, reference.preprocess)
    cosine = (_unit(reference.forward(batch)) * _unit(other.forward(batch))).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    # a batch of another size (the last one of a run) works on the same exported model
    assert other.forward(batch[:5]).shape == (5, 1280)


@pytest.mark.parametrize("runtime", EXPORTED)
def test_clip_runtime_matches_torch_fp32(runtime: str, tiny_clip_dir: Path, tuxpaint_dir: Path) -> None:
    reference = encoders.clip_encoder(str(tiny_clip_dir), CPU, runtime="torch")
    other = encoders.clip_encoder(str(tiny_clip_dir), CPU, runtime=runtime)
    assert other.runtime == runtime and other.model_id == reference.model_id
    batch = _real_batch(tuxpaint_dir, reference.preprocess)
    cosine = (_unit(reference.forward(batch)) * _unit(other.forward(batch))).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()


@pytest.mark.skipif(not runtimes.installed("openvino") or not openvino_bf16_native(), reason="no native bf16")
def test_bf16_has_its_own_model_id_and_stays_close(tuxpaint_dir: Path) -> None:
    fp32 = encoders.cnn_encoder(CPU, runtime="torch")
    bf16 = encoders.cnn_encoder(CPU, precision="bf16", runtime="auto")
    assert (bf16.runtime, bf16.precision, bf16.model_id) == ("openvino", "bf16", f"{DEFAULT_RECIPE.model_id}+bf16")
    batch = _real_batch(tuxpaint_dir, fp32.preprocess)
    cosine = (_unit(fp32.forward(batch)) * _unit(bf16.forward(batch))).sum(axis=1)
    assert cosine.min() >= 0.99, cosine.min()


def test_runtime_resolution() -> None:
    assert runtimes.resolve_runtime("torch", "cpu") == ("torch", [])
    assert runtimes.resolve_runtime("auto", "cuda") == ("torch", [])
    runtime, notes = runtimes.resolve_runtime("onnxruntime", "cuda")
    assert runtime == "torch" and "CPU only" in notes[0]
    with pytest.raises(ValueError):
        runtimes.resolve_runtime("tensorrt", "cpu")
    expected = "openvino" if runtimes.installed("openvino") else "onnxruntime" if EXPORTED else "torch"
    assert runtimes.resolve_runtime("auto", "cpu")[0] == expected


def test_plan_runtime_keeps_model_ids_honest() -> None:
    # int8 is torch's quantization of CLIP; the CNN has nothing to quantize and runs fp32 under its plain id
    assert encoders.plan_runtime("clip", "int8", "auto", CPU)[:2] == ("torch", "int8")
    assert encoders.plan_runtime("cnn", "int8", "torch", CPU)[:2] == ("torch", "fp32")
    # bf16 without OpenVINO falls back to fp32, so the model id stays the fp32 one
    runtime, precision, notes = encoders.plan_runtime("cnn", "bf16", "torch", CPU)
    assert (runtime, precision) == ("torch", "fp32") and notes
    assert encoders.cnn_encoder(CPU, precision="bf16", runtime="torch").model_id == DEFAULT_RECIPE.model_id


def test_export_is_cached_and_keyed_by_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neural_sorter.runtimes.export import onnx_model

    monkeypatch.setenv("NEURAL_SORTER_CACHE", str(tmp_path))
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    first = onnx_model("toy", "toy-model", module, (3, 8, 8))
    mtime = first.stat().st_mtime_ns
    assert onnx_model("toy", "toy-model", module, (3, 8, 8)) == first and first.stat().st_mtime_ns == mtime
    with torch.no_grad():
        module[0].weight.add_(1.0)
    assert onnx_model("toy", "toy-model", module, (3, 8, 8)) != first  # new weights, new file
    assert not list(tmp_path.glob("models/*.tmp"))
    # with a weights token, an existing export is found without building the module
    built: list[int] = []

    def factory() -> torch.nn.Module:
        built.append(1)
        return module

    token = onnx_model("toy", "toy-model", factory, (3, 8, 8), weights="file:1:2")
    assert built == [1]
    assert onnx_model("toy", "toy-model", factory, (3, 8, 8), weights="file:1:2") == token and built == [1]


def test_unchanged_rerun_loads_no_model(tuxpaint_dir: Path) -> None:
    """Every file has a reusable vector: the stage builds the encoder (for its model id) but never loads it."""
    frames = pd.DataFrame(
        {"relative_path": ["a.png"], "content_hash": ["h1"], "kind": ["image"], "frame_index": [0], "error": [None]}
    )
    previous = pd.DataFrame(
        {
            "relative_path": ["a.png"],
            "content_hash": ["h1"],
            "backend": ["cnn"],
            "model_id": [DEFAULT_RECIPE.model_id],
            "vector": [np.ones(1280, dtype=np.float32) / np.sqrt(1280)],
        }
    )
    table, report = build_embeddings(
        frames,
        previous,
        EmbeddingOptions(backend="cnn", runtime="auto"),
        clip_model=pd.DataFrame(),
        autoencoder=None,
        device=CPU,
        thumbnails=lambda todo: pytest.fail("nothing should be read"),
        workers=1,
    )
    assert table["reused"].all() and report.metadata["model_loaded"] is False
    assert report.metadata["embedded"] == 0
