"""Load a Keras model file safely, with one-line errors.

``load_model(path)`` reads ``.keras`` archives (and ``.h5`` files where Keras reads them) with
``safe_mode=True`` by default: a file that carries Python code (a ``Lambda`` layer's lambda) is
refused unless the user passes ``--unsafe`` (``unsafe=True``). maskviz also checks this itself
before Keras sees the file, because Keras ignores ``safe_mode=True`` once anything in the process
has called ``keras.config.enable_unsafe_deserialization()``.

Custom classes come from three places:

- ``--custom-objects``: a ``.py`` file or an importable module (or a list of them); every
  Layer / Model / loss / metric ... subclass it defines and everything it registers with
  ``@keras.saving.register_keras_serializable`` becomes available (``load_custom_objects``).
  This runs the user's code, which the user asked for by naming it.
- installed packages the file names: before loading, the file's config is read and the
  top-level packages named by its ``"module"`` and ``"registered_name"`` entries are imported
  *if they are installed distributions* (so ``keras_hub>BertBackbone`` loads with no flag).
  Nothing else is imported: a module that merely sits on ``sys.path`` (the current directory,
  say) is not an installed package and is never imported because a file names it.
- maskviz's own registered layers (packages ``maskviz`` and ``maskviz_samples``).

Every failure raises ``MaskvizError`` with one line: what happened, what was expected, how to
fix it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from maskviz.errors import MaskvizError

CustomObjectsSpec = str | os.PathLike | Sequence[str | os.PathLike] | None

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_SUFFIXES = (".keras",)
_H5_SUFFIXES = (".h5", ".hdf5")
_MAX_CONFIG_BYTES = 256 * 1024 * 1024
_EXPECTED_FILE = "Expected a path to a .keras or .h5 model file"
_CUSTOM_FIX = "--custom-objects module.py"

# maskviz's own registered packages -> the module that registers them.
_OWN_PACKAGES = {"maskviz": "maskviz.layers", "maskviz_samples": "maskviz.samples"}
# Top-level names never worth importing because a file names them.
_NEVER_IMPORT = {"keras", "builtins", "__main__", "maskviz", "maskviz_samples"}

# Keras warnings that say nothing useful to someone inspecting masks: the mask ones are
# what maskviz itself reports (properly located), the others are about training state.
_SILENCED_WARNINGS = (
    r"Layer '.*' \(of type .*\) was passed an input with a mask attached to it",
    r"Skipping variable loading for optimizer",
    r"`compile\(\)` was not called as part of model loading",
)
_SILENCED_LOGS = re.compile(
    r"Compiled the loaded model, but the compiled metrics|"
    r"No training configuration found in the save file|"
    r"Error when creating the weights of optimizer|"
    r"Error in loading the saved optimizer state"
)


# --------------------------------------------------------------------------- public API


def load_model(
    path: str | os.PathLike,
    *,
    unsafe: bool = False,
    custom_objects: CustomObjectsSpec = None,
    compile: bool = True,
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

    Raises:
        MaskvizError: one line saying what went wrong and how to fix it.
    """
    shown = os.fspath(path)
    file = Path(shown)
    kind = _check_file(file, shown)
    config, has_training_config = _read_config(file, shown, kind)
    entries = list(_class_entries(config))
    if not unsafe:
        _refuse_python_code(entries, shown)
    objects = load_custom_objects(custom_objects)
    from .legacy import load_if_keras2  # files saved by tf.keras 2: translated there

    legacy_model = load_if_keras2(file, kind, shown, custom_objects=objects, unsafe=unsafe)
    if legacy_model is not None:
        return legacy_model
    import_errors = _import_named_packages(entries)

    import keras  # heavy: only once the file passed the cheap checks

    try:
        return _keras_load(keras, file, objects, compile, unsafe)
    except Exception as e:  # every failure becomes one line
        first = e
    known = _explain_known_failure(first, shown, kind, entries, import_errors)
    if not (compile and has_training_config):
        raise (known or _generic_failure(first, shown, keras.__version__)) from first
    # The training configuration (loss, metrics, optimizer) is a frequent culprit: old .h5
    # files, or a custom loss the user did not pass. maskviz does not need it, so try once
    # more without it.
    try:
        model = _keras_load(keras, file, objects, False, unsafe)
    except Exception as second:
        again = _explain_known_failure(second, shown, kind, entries, import_errors)
        raise (again or known or _generic_failure(first, shown, keras.__version__)) from second
    reason = str(known).split(": ", 1)[-1].split(". Expected", 1)[0] if known else _brief(first)
    warnings.warn(
        f"maskviz: could not restore the training configuration (loss, metrics, optimizer) "
        f"of '{shown}' ({reason}); loaded the model uncompiled.",
        UserWarning,
        stacklevel=2,
    )
    return model


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


# --------------------------------------------------------------------------- the file


def _check_file(file: Path, shown: str) -> str:
    """Returns "keras" or "h5" after checking that `file` is a model file maskviz can read."""
    if not file.exists():
        if file.is_symlink():
            _fail(shown, "it is a broken symbolic link", f"{_EXPECTED_FILE}.")
        _fail(shown, "the file does not exist", f"{_EXPECTED_FILE}.")
    if file.is_dir():
        if (file / "saved_model.pb").exists():
            _fail(
                shown,
                "it is a TensorFlow SavedModel directory, which Keras 3 cannot load as a model",
                f"{_EXPECTED_FILE}; re-save the model with model.save('model.keras').",
            )
        if (file / "config.json").exists():
            _fail(
                shown,
                "it is a directory (an unzipped Keras model?)",
                f"{_EXPECTED_FILE}; zip its files into one archive named model.keras.",
            )
        _fail(shown, "it is a directory", f"{_EXPECTED_FILE}, not a directory.")
    try:
        with open(file, "rb") as f:
            head = f.read(8)
    except OSError as e:
        _fail(shown, f"the file cannot be read ({_brief(e)})", "Expected a readable file.")
    if not head:
        _fail(shown, "the file is empty", f"{_EXPECTED_FILE} written by model.save().")
    suffix = file.suffix.lower()
    is_zip = head.startswith(_ZIP_MAGIC)
    is_hdf5 = head.startswith(_HDF5_MAGIC)
    if suffix in _KERAS_SUFFIXES:
        if is_hdf5:
            _fail(
                shown,
                "it is an HDF5 (.h5) file, not a .keras zip archive",
                "Expected the suffix to match the format; rename it to end in .h5.",
            )
        if not is_zip:
            _fail(
                shown,
                "it is not a Keras archive (a .keras file is a zip archive; this is not one)",
                "Expected a .keras file written by model.save(); check that the path names "
                "the model and not another file.",
            )
        return "keras"
    if suffix in _H5_SUFFIXES:
        if is_zip:
            _fail(
                shown,
                "it is a .keras zip archive, not an HDF5 file",
                "Expected the suffix to match the format; rename it to end in .keras.",
            )
        if not is_hdf5:
            _fail(
                shown,
                "it is not an HDF5 file",
                "Expected a .h5 model file written by model.save(); check that the path "
                "names the model and not another file.",
            )
        return "h5"
    hint = (
        "; it is a zip archive, so if it is a Keras model, rename it to end in .keras"
        if is_zip
        else "; it is an HDF5 file, so if it is a Keras model, rename it to end in .h5"
        if is_hdf5
        else ""
    )
    _fail(
        shown,
        f"unsupported file type '{suffix or '(no suffix)'}'",
        f"{_EXPECTED_FILE}{hint}.",
    )


def _read_config(file: Path, shown: str, kind: str) -> tuple[dict[str, Any], bool]:
    """The model's config (the archive's config.json, or the .h5 model_config attribute),
    and whether the file also holds a training configuration (compile config)."""
    if kind == "keras":
        try:
            with zipfile.ZipFile(file) as zf:
                names = zf.namelist()
                if "config.json" not in names:
                    _fail(
                        shown,
                        "it is a zip archive without config.json, so not a Keras model archive",
                        "Expected a .keras file written by model.save().",
                    )
                if zf.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
                    _fail(
                        shown,
                        "its config.json is implausibly large",
                        "Expected a .keras file written by model.save().",
                    )
                raw = zf.read("config.json")
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            _fail(
                shown,
                f"the archive is truncated or corrupt ({_brief(e)})",
                "Expected a complete .keras zip archive; save or copy the model again.",
            )
        where = "its config.json"
    else:
        try:
            import h5py

            with h5py.File(file, "r") as h5:
                raw = h5.attrs.get("model_config")
                has_training_config = h5.attrs.get("training_config") is not None
        except OSError as e:
            _fail(
                shown,
                f"the HDF5 file is truncated or corrupt ({_brief(e)})",
                "Expected a complete .h5 model file; save or copy the model again.",
            )
        if raw is None:
            _fail(
                shown,
                "it holds weights only, no model architecture",
                "Expected a whole model saved with model.save('model.keras'); weights files "
                "(.weights.h5) load into an already built model with model.load_weights().",
            )
        where = "its model_config"
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        config = json.loads(raw)
    except ValueError as e:
        _fail(
            shown,
            f"{where} is not valid JSON ({_brief(e)})",
            "Expected a file written by model.save(); save the model again.",
        )
    if not isinstance(config, dict) or "class_name" not in config:
        _fail(
            shown,
            f"{where} does not describe a Keras model",
            "Expected a file written by model.save(); save the model again.",
        )
    if kind == "keras":
        has_training_config = bool(config.get("compile_config"))
    return config, has_training_config


@dataclass(frozen=True)
class _Entry:
    """One serialized object named in a config."""

    class_name: str
    module: str | None
    registered_name: str | None
    config: Any = field(default=None, compare=False, repr=False)

    @property
    def registered_package(self) -> str | None:
        if self.registered_name and ">" in self.registered_name:
            return self.registered_name.split(">", 1)[0]
        return None


def _class_entries(node: Any) -> Iterator[_Entry]:
    """Every ``{"class_name": ...}`` object in a config, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("class_name")
            if isinstance(name, str):
                module = item.get("module")
                registered = item.get("registered_name")
                yield _Entry(
                    name,
                    module if isinstance(module, str) else None,
                    registered if isinstance(registered, str) else None,
                    item.get("config"),
                )
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _refuse_python_code(entries: list[_Entry], shown: str) -> None:
    """Refuses, in safe mode, a config that carries Python bytecode (a lambda)."""
    lambdas = []
    carries_code = False
    for entry in entries:
        if entry.class_name == "__lambda__":
            carries_code = True
        elif entry.class_name == "Lambda" and isinstance(entry.config, dict):
            function = entry.config.get("function")
            legacy_code = entry.config.get("function_type") == "lambda"
            new_code = isinstance(function, dict) and function.get("class_name") == "__lambda__"
            if legacy_code or new_code:
                lambdas.append(str(entry.config.get("name", "?")))
    if lambdas:
        names = ", ".join(f"'{n}'" for n in lambdas)
        _fail(
            shown,
            f"it contains a Lambda layer ({names}) whose Python code would run on loading, "
            "which safe mode refuses",
            _LAMBDA_EXPECTED,
        )
    if carries_code:
        _fail(
            shown,
            "it contains a Python lambda whose code would run on loading, which safe mode refuses",
            _LAMBDA_EXPECTED,
        )


_LAMBDA_EXPECTED = (
    "Expected a model without stored code; if you trust the file, pass --unsafe "
    "(or replace the Lambda with a registered custom layer)."
)


# --------------------------------------------------------------------------- imports


def _import_named_packages(entries: list[_Entry]) -> dict[str, str]:
    """Imports maskviz's own registering modules and the installed top-level packages the
    config names; returns {package: "ExcType: message"} for imports that failed."""
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
    if candidates:
        installed = importlib.metadata.packages_distributions()
        for name in sorted(candidates & set(installed)):
            try:
                with _quiet():
                    importlib.import_module(name)
            except Exception as e:  # an installed package that fails to import
                errors[name] = _brief(e)
    return errors


def _custom_objects_from(spec: str | os.PathLike) -> dict[str, Any]:
    text = os.fspath(spec)
    looks_like_file = text.endswith(".py") or os.sep in text or "/" in text or Path(text).is_file()
    import keras

    before = dict(keras.saving.get_custom_objects())
    if looks_like_file:
        module = _import_file(Path(text), text)
    else:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", text):
            raise MaskvizError(
                f"Cannot use --custom-objects '{text}': it is neither a .py file nor a module "
                "name. Expected a path to a .py file or an importable module such as "
                "mypkg.layers."
            )
        module = _import_module(text)
    after = keras.saving.get_custom_objects()
    return _objects_of(module, before, after)


def _import_file(file: Path, shown: str) -> ModuleType:
    if not file.exists():
        raise MaskvizError(
            f"Cannot load custom objects from '{shown}': the file does not exist. Expected a "
            "path to a .py file (or an importable module name) for --custom-objects."
        )
    if file.is_dir():
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
    except BaseException as e:
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
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
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        if isinstance(e, ModuleNotFoundError) and e.name and name.startswith(e.name):
            what = f"no module named '{e.name}' is importable"
        else:
            what = f"importing it raised {_brief(e)}"
        raise MaskvizError(
            f"Cannot load custom objects from module '{name}': {what}. Expected an importable "
            "module name (is it installed, or on PYTHONPATH?) or a path to a .py file for "
            "--custom-objects."
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


# --------------------------------------------------------------------------- keras


def _keras_load(keras: Any, file: Path, objects: dict, compile: bool, unsafe: bool) -> Any:
    with _quiet():
        return keras.saving.load_model(
            file, custom_objects=objects or None, compile=compile, safe_mode=not unsafe
        )


class _DropLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SILENCED_LOGS.search(record.getMessage())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences Keras's uninformative load-time warnings (see ``_SILENCED_WARNINGS``)."""
    absl = logging.getLogger("absl")
    drop = _DropLogs()
    absl.addFilter(drop)
    try:
        with warnings.catch_warnings():
            for pattern in _SILENCED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        absl.removeFilter(drop)


def _messages(e: BaseException) -> Iterator[str]:
    """The messages of `e` and of the exceptions it wraps (Keras re-raises without ``from``,
    and embeds the inner message after "Exception encountered: ")."""
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        text = str(exc)
        yield text
        if "Exception encountered: " in text:
            yield text.rsplit("Exception encountered: ", 1)[1]
        todo.extend(x for x in (exc.__cause__, exc.__context__) if x is not None)


_NOT_FOUND = (
    re.compile(r"Could not locate (class|function) '([^']+)'"),
    re.compile(r"Could not deserialize (class|function) '([^']+)' because its parent module"),
    re.compile(r"Unknown ([a-z ]+): '([^']+)'"),  # legacy .h5 loading
)


def _explain_known_failure(
    e: BaseException,
    shown: str,
    kind: str,
    entries: list[_Entry],
    import_errors: dict[str, str],
) -> MaskvizError | None:
    for text in _messages(e):
        if "Requested the deserialization of a" in text and "lambda" in text:
            return MaskvizError(
                f"Cannot load '{shown}': it contains Python code (a lambda) that would run on "
                f"loading, which safe mode refuses. {_LAMBDA_EXPECTED}"
            )
        for pattern in _NOT_FOUND:
            match = pattern.search(text)
            if match and kind == "h5" and _is_keras_op(match.group(2)):
                return MaskvizError(
                    f"Cannot load '{shown}': it contains the Keras operation "
                    f"'{match.group(2)}' (Keras 3 saves mask computations and keras.ops calls "
                    "as graph operations), which Keras cannot rebuild from an .h5 file. "
                    "Expected a .keras file for this model; re-save it with "
                    "model.save('model.keras')."
                )
            if match:
                return _unknown_class(shown, match.group(1), match.group(2), entries, import_errors)
    return None


def _is_keras_op(class_name: str) -> bool:
    """Whether `class_name` is a Keras operation (``NotEqual`` for ``keras.ops.not_equal``)."""
    import keras

    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    return callable(getattr(keras.ops, snake, None))


def _unknown_class(
    shown: str, kind: str, name: str, entries: list[_Entry], import_errors: dict[str, str]
) -> MaskvizError:
    kind = "function" if kind == "function" or kind.endswith("function") else "class"
    entry = next(
        (
            x
            for x in entries
            if name in (x.class_name, x.registered_name)
            or (x.class_name == "function" and x.config == name)
        ),
        None,
    )
    short = name.split(">", 1)[-1]
    details = []
    if entry is not None:
        if entry.registered_name and entry.registered_name not in (short, "function"):
            details.append(f"registered as '{entry.registered_name}'")
        if entry.module and entry.module not in ("builtins", "__main__"):
            details.append(f"saved from module '{entry.module}'")
    packages = (
        {p.split(".", 1)[0] for p in (entry.module, entry.registered_package) if p}
        if entry is not None
        else set()
    )
    failed = [
        f"importing '{p}' raised {import_errors[p]}" for p in sorted(packages & set(import_errors))
    ]
    detail = f" ({'; '.join(details + failed)})" if details or failed else ""
    return MaskvizError(
        f"Cannot load '{shown}': it uses the custom {kind} '{short}'{detail}, which is not "
        "defined in this process. Expected the module that defines it; pass it with "
        f"{_CUSTOM_FIX} (a .py file or a module name)."
    )


def _generic_failure(e: BaseException, shown: str, keras_version: str) -> MaskvizError:
    return MaskvizError(
        f"Cannot load '{shown}': Keras could not rebuild the model ({_brief(e)}). Expected a "
        f"model that Keras {keras_version} can load; check the Keras version that saved it, "
        f"and pass any custom layers with {_CUSTOM_FIX}."
    )


# --------------------------------------------------------------------------- helpers


def _brief(e: BaseException, limit: int = 160) -> str:
    """``ExcType: first line of the message``, without Keras's config dumps, on one line."""
    text = str(e)
    if isinstance(e, SyntaxError) and e.msg:
        text = f"{e.msg} (line {e.lineno})"
    if "Exception encountered: " in text:
        text = text.rsplit("Exception encountered: ", 1)[1]
    for marker in (" Full object config", "\n\nconfig=", " Received: config="):
        text = text.split(marker, 1)[0]
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    name = type(e).__name__
    return f"{name}: {text}" if text else name


def _fail(shown: str, what: str, expected: str) -> NoReturn:
    raise MaskvizError(f"Cannot load '{shown}': {what}. {expected}")
