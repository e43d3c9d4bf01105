"""Giving memory back between pipeline steps.

With the default in-process executor every step of a run shares one Python process. What a finished step
freed stays resident unless it is handed back: glibc keeps freed heap pages in its arenas (decode threads
each get their own) and Arrow keeps its pool. Left alone, a 20,000-image run carries the embedding step's
high-water mark into clustering and projection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

import pyarrow as pa


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS, Windows), where there is nothing to do."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Collects garbage, then returns freed Arrow buffers and free glibc heap pages to the OS."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
