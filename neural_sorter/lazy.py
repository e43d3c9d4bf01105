"""Names from heavy libraries imported on first use, not at import time.

The CLI's parser is built from the stages' option models, so ``neural-sorter sort`` imports the stage modules
before it knows whether anything needs computing; a stage module that imports sklearn at the top makes every
command pay ~1.3 s for it, even an unchanged re-sort that never clusters (issue 15). ``lazy_attr`` stands in
for one class or function and imports its module when it is first called.
"""

from __future__ import annotations

import importlib
from typing import Any


class lazy_attr:
    """``lazy_attr("sklearn.cluster", "KMeans")(...)`` is ``sklearn.cluster.KMeans(...)``, imported at the call."""

    __slots__ = ("_module", "_name", "_target")

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name
        self._target: Any = None

    def resolve(self) -> Any:
        if self._target is None:
            self._target = getattr(importlib.import_module(self._module), self._name)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.resolve(), attribute)

    def __repr__(self) -> str:
        return f"lazy_attr({self._module!r}, {self._name!r})"
