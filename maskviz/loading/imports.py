"""The import policy: which packages a model file may name and maskviz then imports, and
the current folder kept off ``sys.path`` while a file loads."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from maskviz.errors import MaskvizError, cut
from maskviz.loading.config import _Entry
from maskviz.loading.messages import _brief, _quiet

#: Keras ecosystem packages a model file may name and maskviz then imports (only if they are
#: installed): they define the layers their models are saved with. Extend it with
#: ``allow_imports=`` / ``--allow-import MODULE``.
ALLOWED_IMPORTS = ("keras_hub", "keras_nlp", "keras_cv", "keras_rs", "tensorflow_text")
# maskviz's own registered packages -> the module that registers them.
_OWN_PACKAGES = {"maskviz": "maskviz.layers", "maskviz_samples": "maskviz.samples"}
# Top-level names never worth importing because a file names them.
_NEVER_IMPORT = {"keras", "builtins", "__main__", "maskviz", "maskviz_samples"}


def _allowed_imports(extra: Sequence[str] | None) -> set[str]:
    allowed = set(ALLOWED_IMPORTS)
    for name in [extra] if isinstance(extra, str) else list(extra or []):
        text = str(name).strip()
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", text):
            raise MaskvizError(
                f"Cannot use --allow-import '{cut(text, 80)}': it is not a module name. "
                "Expected a top-level module name such as my_layers_pkg."
            )
        allowed.add(text.split(".", 1)[0])
    return allowed


@contextlib.contextmanager
def _without_cwd_on_path() -> Iterator[None]:
    """Removes the current folder ('' or its path) from ``sys.path`` for the block, so that
    nothing a file names (or Keras imports lazily) is found next to the model by accident."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        cwd = None
    saved = list(sys.path)

    def is_cwd(entry: Any) -> bool:
        if not isinstance(entry, str) or entry in ("", "."):
            return isinstance(entry, str)
        try:
            return cwd is not None and os.path.realpath(entry) == cwd
        except (OSError, ValueError):
            return False

    sys.path[:] = [e for e in saved if not is_cwd(e)]
    try:
        yield
    finally:
        added = [e for e in sys.path if e not in saved]
        sys.path[:] = saved + added


def _import_named_packages(
    entries: list[_Entry], allowed: set[str], unsafe: bool
) -> tuple[dict[str, str], set[str]]:
    """Imports maskviz's own registering modules and, of the top-level packages the config
    names, those in `allowed` (or, with `unsafe`, any installed one).

    Returns ({package: "ExcType: message"} for imports that failed, {packages named but
    not imported because they are not allowed}).
    """
    import keras

    registered = keras.saving.get_custom_objects()
    wanted_own: set[str] = set()
    candidates: set[str] = set()
    for entry in entries:
        if entry.registered_name and entry.registered_name in registered:
            continue
        names = []
        if entry.registered_package:
            names.append(entry.registered_package.split(".", 1)[0])
        if entry.module:
            names.append(entry.module.split(".", 1)[0])
        for name in names:
            if name in _OWN_PACKAGES:
                wanted_own.add(_OWN_PACKAGES[name])
            elif name.isidentifier() and name not in _NEVER_IMPORT and name not in sys.modules:
                candidates.add(name)
    errors: dict[str, str] = {}
    for module in sorted(wanted_own):
        if module not in sys.modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
    if not candidates:
        return errors, set()
    installed = set(importlib.metadata.packages_distributions())
    refused = set() if unsafe else (candidates - allowed) & installed
    wanted = (candidates & allowed) | ((candidates & installed) if unsafe else set())
    for name in sorted(wanted):
        try:
            if importlib.util.find_spec(name) is None:
                continue
            with _quiet():
                importlib.import_module(name)
        except Exception as e:  # an allowed package that fails to import
            errors[name] = _brief(e)
    return errors, refused
