"""Runs an exported ONNX model with ONNX Runtime or OpenVINO on the CPU: ``model(batch) -> features``.

Thread counts: one intra-op pool the size of the cores this process may use, and no spinning workers (ONNX
Runtime's threads otherwise busy-wait between operators, which steals the cores from the decode threads and
from other processes on a shared machine; see bench/README.md for the figures under load).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from neural_sorter.runtimes import cache_dir, cpu_threads
from neural_sorter.runtimes.export import INPUT_NAME

log = logging.getLogger(__name__)


class OnnxRuntimeModel:
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.precision = "fp32"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]


@functools.lru_cache(maxsize=1)
def _openvino_core():
    import openvino as ov

    return ov.Core()


def openvino_bf16_native() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512-BF16 or AMX); without it bf16 is not
    offered: it would be emulated, slower than fp32."""
    try:
        return "BF16" in _openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no OpenVINO, or a plugin that cannot say
        return False


class OpenVinoModel:
    runtime = "openvino"

    def __init__(self, path: Path, threads: int | None = None, precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"OpenVINO runs fp32 or bf16, not {precision}")
        config = {
            # OpenVINO's default on AVX512-BF16/AMX CPUs is bf16, which changes the vectors: fp32 unless asked.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": threads or cpu_threads(),
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
            "ENABLE_CPU_PINNING": False,  # pinned threads stall when another process holds their core
            "CACHE_DIR": os.path.join(cache_dir(), "openvino"),  # compiled blobs: later runs compile faster
        }
        self.compiled = _openvino_core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.precision = precision

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)}, share_inputs=True)
        return np.array(result[0], dtype=np.float32, copy=True)


def load_session(runtime: str, path: Path, precision: str = "fp32", threads: int | None = None):
    if runtime == "onnxruntime":
        return OnnxRuntimeModel(path, threads)
    if runtime == "openvino":
        return OpenVinoModel(path, threads, precision)
    raise ValueError(f"no exported-model runtime {runtime!r}")
