"""CPU inference runtimes for the embedding models: ONNX Runtime and OpenVINO run a model exported once from
its torch definition (ONNX, cached on disk), several times faster than torch's own CPU kernels at the same
fp32 results (bench/README.md). torch stays the runtime on GPUs and the fallback when neither is installed.

Which runtime ``auto`` means: on a CPU device OpenVINO if installed, else ONNX Runtime, else torch; on any
other device torch. fp32 vectors of every runtime agree with torch's to cosine >= 0.99999
(neural_sorter_tests/runtimes), so they share torch's model id and are reused across runtimes; reduced
precision (``bf16``, OpenVINO only) changes the vectors and has a model id of its own.
"""

from __future__ import annotations

import importlib.util
import logging
import os

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
# Python module of each exported-model runtime.
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def installed(runtime: str) -> bool:
    """Whether ``runtime`` can be used here (torch always can); checked without importing it."""
    if runtime == "torch":
        return True
    return importlib.util.find_spec(_MODULES[runtime]) is not None


def resolve_runtime(requested: str, device_type: str = "cpu") -> tuple[str, list[str]]:
    """The runtime to use and notes on why. Exported-model runtimes run on the CPU only: a GPU device keeps
    torch; a requested runtime that is not installed falls back to torch with a note."""
    if requested not in RUNTIMES:
        raise ValueError(f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    notes: list[str] = []
    if requested == "torch":
        return "torch", notes
    if device_type != "cpu":
        if requested != "auto":
            notes.append(f"runtime {requested} runs on the CPU only; torch is used on {device_type}")
        return "torch", notes
    if requested == "auto":
        for runtime in ("openvino", "onnxruntime"):
            if installed(runtime):
                return runtime, notes
        return "torch", notes
    if installed(requested):
        return requested, notes
    notes.append(f"runtime {requested} is not installed (pip install {_MODULES[requested]}); using torch")
    return "torch", notes


def cpu_threads() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cache_dir() -> str:
    """Where exported models are kept: ``NEURAL_SORTER_CACHE`` or ``~/.cache/neural-sorter``."""
    root = os.environ.get("NEURAL_SORTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "neural-sorter"
    )
    return root
