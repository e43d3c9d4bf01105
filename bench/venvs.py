"""Throwaway venvs for the competitors a bench compares against (never the project's own dependencies).

Shared by ``bench/duplicates.py`` and ``bench/peers.py`` so both install the same way: a venv made from the
interpreter running the bench, the installs done in order with pip, and a marker file written only once all
of them succeeded (a half-finished venv from an interrupted install is thrown away and made again).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def make_venv(root: Path, name: str, installs: list[list[str]]) -> Path:
    """The python of venv ``root/name`` with ``installs`` (pip argument lists) done, made once; pip's output
    goes to ``root/name.log`` so a failed install can be read afterwards. Raises CalledProcessError."""
    venv = root / name
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with open(root / f"{name}.log", "a", encoding="utf-8") as log:
        for args in installs:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *args], capture_output=True, text=True, check=False
            )
            log.write(done.stdout + done.stderr)
            done.check_returncode()
    (venv / ".complete").write_text("ok")
    return python
