"""``--custom-objects``: importing the user's module or ``.py`` file and collecting the
Keras-saveable classes and registered objects it defines."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from maskviz.errors import MaskvizError, cut
from maskviz.loading.messages import _SHOWN_LIMIT, _brief, _os_reason

CustomObjectsSpec = str | os.PathLike | Sequence[str | os.PathLike] | None


def load_custom_objects(spec: CustomObjectsSpec) -> dict[str, Any]:
    """Imports the ``--custom-objects`` module(s) in `spec` and returns what they define.

    `spec` is ``None``, a path to a ``.py`` file, an importable (dotted) module name, or a list
    of those. The result maps names to objects: each Keras-saveable class the module defines
    (Layer, Model, Loss, Metric, ...) under its class name (and its registered name if it has
    one), and everything the module registered with ``register_keras_serializable`` under its
    registered name.

    Raises:
        MaskvizError: the file does not exist, the module cannot be found, or importing it
            raised (the message names the file and the exception type).
    """
    if spec is None:
        return {}
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    objects: dict[str, Any] = {}
    for one in specs:
        objects.update(_custom_objects_from(one))
    return objects


def _custom_objects_from(spec: str | os.PathLike) -> dict[str, Any]:
    text = os.fsdecode(spec)
    looks_like_file = text.endswith(".py") or os.sep in text or "/" in text or _is_file(text)
    import keras

    before = dict(keras.saving.get_custom_objects())
    if looks_like_file:
        module = _import_file(Path(text), cut(text, _SHOWN_LIMIT))
    else:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", text):
            raise MaskvizError(
                f"Cannot use --custom-objects '{cut(text, 80)}': it is neither a .py file nor "
                "a module name. Expected a path to a .py file or an importable module such as "
                "mypkg.layers."
            )
        module = _import_module(text)
    after = keras.saving.get_custom_objects()
    return _objects_of(module, before, after)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _import_file(file: Path, shown: str) -> ModuleType:
    try:
        exists, is_dir = file.exists(), file.is_dir()
    except (OSError, ValueError) as e:
        reason = _os_reason(e) if isinstance(e, OSError) else _brief(e)
        raise MaskvizError(
            f"Cannot load custom objects from '{shown}': the path cannot be read ({reason}). "
            "Expected a readable .py file (or an importable module name) for --custom-objects."
        ) from None
    if not exists:
        raise MaskvizError(
            f"Cannot load custom objects from '{shown}': the file does not exist. Expected a "
            "path to a .py file (or an importable module name) for --custom-objects."
        )
    if is_dir:
        raise MaskvizError(
            f"Cannot load custom objects from '{shown}': it is a directory. Expected a path "
            "to a .py file (or an importable module name) for --custom-objects."
        )
    resolved = file.resolve()
    for existing in list(sys.modules.values()):
        origin = getattr(existing, "__file__", None)
        if origin and _same_file(origin, resolved):
            return existing
    name = _module_name_for(resolved)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise MaskvizError(
            f"Cannot load custom objects from '{shown}': Python cannot import it. Expected a "
            ".py file for --custom-objects."
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    directory = str(resolved.parent)
    added = directory not in sys.path
    if added:  # so that the file can import its sibling modules
        sys.path.insert(0, directory)
    try:
        spec.loader.exec_module(module)
    except (Exception, KeyboardInterrupt, SystemExit) as e:  # whatever the file raises
        sys.modules.pop(name, None)
        raise MaskvizError(
            f"Cannot load custom objects from '{shown}': importing it raised "
            f"{_brief(e)}. Expected a Python file that imports cleanly; fix the error in "
            f"'{shown}' or pass another file with --custom-objects."
        ) from e
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except (Exception, KeyboardInterrupt, SystemExit) as e:  # whatever the module raises
        if isinstance(e, ModuleNotFoundError) and e.name and name.startswith(e.name):
            what = f"no module named '{e.name}' is importable"
        else:
            what = f"importing it raised {_brief(e)}"
        raise MaskvizError(
            f"Cannot load custom objects from module '{cut(name, 80)}': {what}. Expected an "
            "importable module name (is it installed, or on PYTHONPATH?) or a path to a .py "
            "file for --custom-objects."
        ) from e


def _module_name_for(file: Path) -> str:
    """The name to import a --custom-objects file under: its stem (so its classes keep the
    module name they were saved with) unless that would shadow another module."""
    stem = file.stem
    if stem.isidentifier() and stem not in sys.modules and not _importable_elsewhere(stem, file):
        return stem
    digest = zlib.crc32(str(file).encode())
    safe = re.sub(r"\W", "_", stem)
    return f"_maskviz_custom_{safe}_{digest:08x}"


def _importable_elsewhere(name: str, file: Path) -> bool:
    """Whether `name` already imports something other than `file`."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    return not (spec.origin and _same_file(spec.origin, file))


def _same_file(origin: str, resolved: Path) -> bool:
    try:
        return Path(origin).resolve() == resolved
    except OSError:
        return False


def _objects_of(module: ModuleType, before: dict, after: dict) -> dict[str, Any]:
    import keras

    saveable = tuple(
        t
        for t in (
            keras.layers.Layer,
            keras.losses.Loss,
            keras.metrics.Metric,
            keras.initializers.Initializer,
            keras.regularizers.Regularizer,
            keras.constraints.Constraint,
            keras.optimizers.Optimizer,
            keras.optimizers.schedules.LearningRateSchedule,
        )
        if isinstance(t, type)
    )
    objects: dict[str, Any] = {}
    for value in vars(module).values():
        if (
            inspect.isclass(value)
            and issubclass(value, saveable)
            and value.__module__ == module.__name__
        ):
            objects[value.__name__] = value
            objects[keras.saving.get_registered_name(value)] = value
    for key, value in after.items():
        if before.get(key) is not value or getattr(value, "__module__", None) == module.__name__:
            objects[key] = value
    return objects
