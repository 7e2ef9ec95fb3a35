"""Registers `maskviz.layers` with Keras as soon as Keras is imported.

A model fixed by `maskviz fix` contains `maskviz>MaskedLSTM` and friends. It must
load with nothing but `import maskviz`, yet `import maskviz` must not import Keras
(TensorFlow takes seconds; `maskviz --help` must not pay for it). So: if Keras is
already imported, import `maskviz.layers` now; otherwise install a post-import hook
that does it right after Keras finishes importing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_TARGET = "keras"


def _register_now() -> None:
    try:
        importlib.import_module("maskviz.layers")
    except ImportError:  # pragma: no cover - maskviz.layers ships with maskviz
        pass


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Wraps Keras's loader so that `maskviz.layers` is imported once Keras is."""

    def __init__(self) -> None:
        self._busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET or self._busy:
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original_exec = loader.exec_module
        hook = self

        def exec_module(module):
            original_exec(module)
            hook.remove()
            _register_now()

        try:
            loader.exec_module = exec_module
        except AttributeError:  # pragma: no cover - read-only loader
            return None
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> None:
    if _TARGET in sys.modules:
        _register_now()
        return
    if not any(isinstance(f, _KerasImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())
