"""UMAP's numba kernels are cached on disk, so a new process does not compile them again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from neural_sorter.projection import numba_disk_cache


def test_numba_disk_cache_defaults_cache_true_and_restores(tmp_path: Path, monkeypatch) -> None:
    import numba

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    original = numba.njit
    with numba_disk_cache():

        @numba.njit
        def twice(x):
            return 2 * x

        assert twice(3) == 6
    assert numba.njit is original
    assert list(tmp_path.rglob("*.nbi")), "the kernel was not cached on disk"


def test_umap_kernels_are_cached_for_the_next_process(tmp_path: Path) -> None:
    script = (
        "import numpy as np\n"
        "from neural_sorter.projection import project_3d\n"
        "v = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)\n"
        "print(project_3d(v, 'umap', 0)[1])\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    cached = {p.parent.name.split("_")[0] for p in tmp_path.rglob("*.nbi")}
    assert "umap" in cached, cached  # UMAP's own kernels, not only pynndescent's
