"""``load_model``: the checks in order, then Keras, then a one-line explanation of a failure."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskviz.errors import cut
from maskviz.loading.config import _class_entries, _refuse_outside_code, _refuse_python_code
from maskviz.loading.custom import CustomObjectsSpec, load_custom_objects
from maskviz.loading.files import _check_file, _read_config
from maskviz.loading.imports import _allowed_imports, _import_named_packages, _without_cwd_on_path
from maskviz.loading.messages import (
    _SHOWN_LIMIT,
    _brief,
    _explain_known_failure,
    _generic_failure,
    _quiet,
)


def load_model(
    path: str | os.PathLike,
    *,
    unsafe: bool = False,
    custom_objects: CustomObjectsSpec = None,
    compile: bool = True,
    allow_imports: Sequence[str] | None = None,
) -> Any:
    """Loads the Keras model at `path` (``.keras`` or ``.h5``) and returns it.

    Args:
        path: the model file.
        unsafe: allow the file to run Python code it carries (``Lambda`` layers). Only for
            files you trust (``--unsafe``).
        custom_objects: ``None``, a ``.py`` file, an importable module name, or a list of
            those, defining the model's custom classes (``--custom-objects``).
        compile: restore the training configuration too. If only that part fails (old
            ``.h5`` files often do), the model is returned uncompiled with a warning.
        allow_imports: top-level modules the file may name and maskviz may import, on top
            of ``ALLOWED_IMPORTS`` (``--allow-import``).

    Raises:
        MaskvizError: one line saying what went wrong and how to fix it.
    """
    raw_path = os.fsdecode(path)
    shown = cut(raw_path, _SHOWN_LIMIT)
    file = Path(raw_path)
    kind = _check_file(file, shown)
    config, has_training_config = _read_config(file, shown, kind)
    entries = list(_class_entries(config))
    allowed = _allowed_imports(allow_imports)
    if not unsafe:
        _refuse_python_code(entries, shown)
        _refuse_outside_code(entries, config, shown)
    objects = load_custom_objects(custom_objects)
    from maskviz.legacy import load_if_keras2  # files saved by tf.keras 2: translated there

    legacy_model = load_if_keras2(file, kind, shown, custom_objects=objects, unsafe=unsafe)
    if legacy_model is not None:
        return legacy_model

    import keras  # heavy: only once the file passed the cheap checks

    with _without_cwd_on_path():
        import_errors, refused = _import_named_packages(entries, allowed, unsafe)
        try:
            return _keras_load(keras, file, objects, compile, unsafe)
        except Exception as e:  # every failure becomes one line
            first = e
        return _after_failure(
            keras,
            first,
            file,
            shown,
            kind,
            entries,
            import_errors,
            refused,
            objects,
            compile,
            unsafe,
            has_training_config,
        )


def _after_failure(
    keras,
    first,
    file,
    shown,
    kind,
    entries,
    import_errors,
    refused,
    objects,
    compile,
    unsafe,
    has_training_config,
) -> Any:
    """Explains a failed load in one line, or retries without the training configuration."""
    known = _explain_known_failure(first, shown, kind, entries, import_errors, refused)
    if not (compile and has_training_config):
        raise (known or _generic_failure(first, shown, keras.__version__)) from first
    # The training configuration (loss, metrics, optimizer) is a frequent culprit: old .h5
    # files, or a custom loss the user did not pass. maskviz does not need it, so try once
    # more without it.
    try:
        model = _keras_load(keras, file, objects, False, unsafe)
    except Exception as second:
        again = _explain_known_failure(second, shown, kind, entries, import_errors, refused)
        raise (again or known or _generic_failure(first, shown, keras.__version__)) from second
    reason = str(known).split(": ", 1)[-1].split(". Expected", 1)[0] if known else _brief(first)
    warnings.warn(
        f"maskviz: could not restore the training configuration (loss, metrics, optimizer) "
        f"of '{shown}' ({reason}); loaded the model uncompiled.",
        UserWarning,
        stacklevel=3,
    )
    return model


def _keras_load(keras: Any, file: Path, objects: dict, compile: bool, unsafe: bool) -> Any:
    with _quiet():
        return keras.saving.load_model(
            file, custom_objects=objects or None, compile=compile, safe_mode=not unsafe
        )
