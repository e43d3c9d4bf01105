"""Exports a torch module to ONNX once and keeps the file: ``<cache>/models/<name>-<key>.onnx``.

The key covers everything the file depends on: the model id, a digest of the weights, the torch version that
exported it, the input shape (batch excepted) and this module's export format version. A changed model,
changed weights or a torch upgrade therefore exports anew and never reuses a stale file. Files are written
under a temporary name and renamed, so concurrent runs never read a half-written model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from neural_sorter.runtimes import cache_dir

log = logging.getLogger(__name__)

# Bumped whenever the export itself changes (opset, input/output names, wrapper modules).
EXPORT_FORMAT = 1
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "features"


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every parameter and buffer (names, shapes, dtypes and values): ~0.3 s for CLIP ViT-B/32's
    vision tower, paid only when a model is about to run."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_key(model_id: str, weights: str, input_shape: tuple[int, ...]) -> str:
    parts = [model_id, weights, torch.__version__, str(input_shape), f"format {EXPORT_FORMAT}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def file_token(path: str | os.PathLike[str]) -> str:
    """A weights file's identity without reading it: path, size and modification time."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def onnx_model(
    name: str,
    model_id: str,
    module: torch.nn.Module | Callable[[], torch.nn.Module],
    input_shape: tuple[int, ...],
    weights: str | None = None,
) -> Path:
    """The ONNX file of ``module`` (eval mode, one float32 input ``x`` of ``(batch, *input_shape)``, one
    output), exported on first use; ``name`` is a readable file name prefix. ``weights`` identifies the
    weights without loading them (``file_token``); without it the module's weights are digested. ``module``
    may be a function that builds it, called only when it is needed: with ``weights`` and an exported file
    already there, nothing is loaded at all."""
    if weights is None:
        module = module if isinstance(module, torch.nn.Module) else module()
        weights = weights_digest(module)
    folder = Path(cache_dir()) / "models"
    path = folder / f"{_safe(name)}-{export_key(model_id, weights, input_shape)}.onnx"
    if path.exists():
        return path
    module = module if isinstance(module, torch.nn.Module) else module()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".onnx.tmp", dir=folder)
    os.close(fd)
    try:
        _export(module.eval(), torch.zeros((2, *input_shape), dtype=torch.float32), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("exported %s to %s in %.1f s", model_id, path, time.perf_counter() - started)
    return path


def _export(module: torch.nn.Module, example: torch.Tensor, target: str) -> None:
    """The TorchScript-based exporter (needs only torch; about 9 s for EfficientNet-Lite0), else the dynamo
    exporter (needs ``onnx`` and ``onnxscript``)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notices
        try:
            torch.onnx.export(
                module,
                (example,),
                target,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
            )
            return
        except Exception as exc:  # the TorchScript exporter is deprecated and may go away
            log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
        torch.onnx.export(
            module,
            (example,),
            target,
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            external_data=False,
        )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
