"""Load a Keras model file safely, with one-line errors.

``load_model(path)`` reads ``.keras`` archives (and ``.h5`` files where Keras reads them) with
``safe_mode=True`` by default. In safe mode a model file imports and runs nothing:

- every ``Lambda`` layer is refused, whatever its function (stored bytecode, or a Keras API
  function such as ``keras.config.set_backend``), and so is any stored lambda;
- every layer that loads outside code or data is refused: ``TFSMLayer`` (a SavedModel graph)
  and any config string that names a path or URL outside the archive (a ``StringLookup``
  vocabulary file, ``keras.utils.get_file`` origins);
- functions named from non-modelling Keras namespaces (``keras.config``, ``keras.utils``,
  ``keras.datasets``, ...) are refused;
- the only modules imported because the file names them are the Keras ecosystem packages of
  ``ALLOWED_IMPORTS`` (imported only if installed), plus those the caller adds with
  ``allow_imports=`` (``--allow-import MODULE``);
- the current folder and ``''`` are removed from ``sys.path`` while the file is loaded, so a
  ``.py`` file next to the model is never imported by accident (``python -m maskviz`` too).

These checks are maskviz's own and run before Keras sees the file, so they hold even when the
process has called ``keras.config.enable_unsafe_deserialization()``. ``--unsafe``
(``unsafe=True``) lifts them for a file you trust, and also imports the installed packages the
file names.

Reading is bounded and checked before Keras opens anything: only regular files (never a FIFO
or a device), zip members checked for encryption, compression method, sizes, names and CRC,
JSON parsed with a nesting limit, ``.h5`` attributes checked for type and encoding.

Custom classes come from ``--custom-objects`` (a ``.py`` file or an importable module, which
runs the user's code because the user named it; ``load_custom_objects``) and from maskviz's own
registered layers (packages ``maskviz`` and ``maskviz_samples``).

Every failure raises ``MaskvizError`` with one line: what happened, what was expected, how to
fix it. Text quoted from the file or the path has its control characters escaped.
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
import stat
import sys
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from maskviz.errors import MaskvizError, cut

CustomObjectsSpec = str | os.PathLike | Sequence[str | os.PathLike] | None

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_SUFFIXES = (".keras",)
_H5_SUFFIXES = (".h5", ".hdf5")
_MAX_CONFIG_BYTES = 64 * 1024 * 1024
_MAX_MEMBER_BYTES = 64 * 1024**3  # what a zip member may claim to hold, uncompressed
_MAX_MEMBERS = 100_000
_MAX_NAME_DEPTH = 64  # path components of a zip member's name
_MAX_JSON_DEPTH = 200  # Keras configs of real models nest a few dozen levels
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_SHOWN_LIMIT = 160  # characters of a path quoted in a message

#: Keras ecosystem packages a model file may name and maskviz then imports (only if they are
#: installed): they define the layers their models are saved with. Extend it with
#: ``allow_imports=`` / ``--allow-import MODULE``.
ALLOWED_IMPORTS = ("keras_hub", "keras_nlp", "keras_cv", "keras_rs", "tensorflow_text")
# Namespaces whose functions a model config may name (activations, losses, ...). A function
# from anywhere else in Keras (keras.config.set_backend, keras.utils.get_file) is not part of
# a model and is refused in safe mode.
_MODELLING_FUNCTIONS = re.compile(
    r"keras(\.src)?\.(activations|ops|losses|metrics|initializers|regularizers|constraints|"
    r"optimizers|random|layers|backend)(\.|$)"
)
# Classes that load code or a graph from outside the file.
_LOADS_OUTSIDE_CODE = {"TFSMLayer"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EXPECTED_FILE = "Expected a path to a .keras or .h5 model file"
_CUSTOM_FIX = "--custom-objects module.py"

# maskviz's own registered packages -> the module that registers them.
_OWN_PACKAGES = {"maskviz": "maskviz.layers", "maskviz_samples": "maskviz.samples"}
# Top-level names never worth importing because a file names them.
_NEVER_IMPORT = {"keras", "builtins", "__main__", "maskviz", "maskviz_samples"}
_NOT_IMPORTED = "maskviz does not import '{package}' because a file names it"

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
    from .legacy import load_if_keras2  # files saved by tf.keras 2: translated there

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
    """Returns "keras" or "h5" after checking that `file` is a model file maskviz can read.

    Only a regular file is opened, and without blocking: a FIFO or a device given as the
    model would otherwise wait forever or read without end.
    """
    try:
        info = os.stat(file)
    except OSError as e:
        if isinstance(e, FileNotFoundError) or e.errno == 2:
            if _is_symlink(file):
                _fail(shown, "it is a broken symbolic link", f"{_EXPECTED_FILE}.")
            _fail(shown, "the file does not exist", f"{_EXPECTED_FILE}.")
        _fail(shown, f"the path cannot be read ({_os_reason(e)})", f"{_READABLE}.")
    except ValueError as e:  # an embedded NUL
        _fail(shown, f"the path is not valid ({_brief(e)})", f"{_EXPECTED_FILE}.")
    if stat.S_ISDIR(info.st_mode):
        _check_directory(file, shown)
    if not stat.S_ISREG(info.st_mode):
        _fail(shown, f"it is {_file_kind(info.st_mode)}, not a regular file", f"{_EXPECTED_FILE}.")
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat above
                _fail(shown, "it is not a regular file", f"{_EXPECTED_FILE}.")
            head = os.read(fd, 8)
        finally:
            os.close(fd)
    except OSError as e:
        _fail(shown, f"the file cannot be read ({_os_reason(e)})", f"{_READABLE}.")
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
        f"unsupported file type '{cut(suffix, 40) or '(no suffix)'}'",
        f"{_EXPECTED_FILE}{hint}.",
    )


_READABLE = "Expected a readable model file; check the path and its permissions"


def _check_directory(file: Path, shown: str) -> NoReturn:
    def has(name: str) -> bool:
        try:
            return (file / name).exists()
        except OSError:
            return False

    if has("saved_model.pb"):
        _fail(
            shown,
            "it is a TensorFlow SavedModel directory, which Keras 3 cannot load as a model",
            f"{_EXPECTED_FILE}; re-save the model with model.save('model.keras').",
        )
    if has("config.json"):
        _fail(
            shown,
            "it is a directory (an unzipped Keras model?)",
            f"{_EXPECTED_FILE}; zip its files into one archive named model.keras.",
        )
    _fail(shown, "it is a directory", f"{_EXPECTED_FILE}, not a directory.")


def _is_symlink(file: Path) -> bool:
    try:
        return file.is_symlink()
    except (OSError, ValueError):
        return False


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _os_reason(e: OSError) -> str:
    """The reason of an OSError without its (possibly huge, already shown) file name."""
    return e.strerror or type(e).__name__


def _read_config(file: Path, shown: str, kind: str) -> tuple[dict[str, Any], bool]:
    """The model's config (the archive's config.json, or the .h5 model_config attribute),
    and whether the file also holds a training configuration (compile config)."""
    if kind == "keras":
        raw = _read_archive(file, shown)
        where = "its config.json"
        has_training_config = False
    else:
        raw, has_training_config = _read_h5_attributes(file, shown)
        where = "its model_config"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            _fail(
                shown,
                f"{where} is not UTF-8 text (byte {e.start})",
                "Expected a file written by model.save(); save the model again.",
            )
    depth = _json_depth(raw)
    if depth > _MAX_JSON_DEPTH:
        _fail(
            shown,
            f"{where} nests {depth} levels deep, more than the {_MAX_JSON_DEPTH} maskviz reads",
            "Expected a file written by model.save(); save the model again.",
        )
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as e:
        _fail(
            shown,
            f"{where} is not valid JSON ({_brief(e)})",
            "Expected a file written by model.save(); save the model again.",
        )
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("class_name"), str)
        or not isinstance(config.get("config", {}), (dict, type(None)))
    ):
        _fail(
            shown,
            f"{where} does not describe a Keras model",
            "Expected a file written by model.save(); save the model again.",
        )
    if kind == "keras":
        has_training_config = bool(config.get("compile_config"))
    return config, has_training_config


_CORRUPT_ARCHIVE = "Expected a complete .keras zip archive written by model.save(); save or copy "


def _read_archive(file: Path, shown: str) -> str | bytes:
    """Checks every member of the .keras archive (flags, method, sizes, names, CRC) before
    Keras opens it, and returns config.json's bytes."""
    try:
        with zipfile.ZipFile(file) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                what = f"the archive has {len(infos)} members"
                _fail(shown, what, _CORRUPT_ARCHIVE + "it again.")
            for info in infos:
                _check_member(info, shown)
            names = [i.filename for i in infos]
            if "config.json" not in names:
                _fail(
                    shown,
                    "it is a zip archive without config.json, so not a Keras model archive",
                    "Expected a .keras file written by model.save().",
                )
            if len(names) != len(set(names)):
                _fail(shown, "the archive names a member twice", _CORRUPT_ARCHIVE + "it again.")
            if zf.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
                _fail(
                    shown,
                    "its config.json is implausibly large",
                    "Expected a .keras file written by model.save().",
                )
            for info in infos:  # reads each member once: CRC, sizes, compressed stream
                if info.filename != "config.json":
                    with zf.open(info) as member:
                        while member.read(1 << 22):
                            pass
            return zf.read("config.json")
    except MaskvizError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        _fail(
            shown,
            f"the archive is truncated or corrupt ({_brief(e)})",
            _CORRUPT_ARCHIVE + "the model again.",
        )
    except (zlib.error, NotImplementedError, RuntimeError, OverflowError) as e:
        _fail(
            shown,
            f"a member of the archive cannot be read ({_brief(e)})",
            _CORRUPT_ARCHIVE + "the model again.",
        )


def _check_member(info: zipfile.ZipInfo, shown: str) -> None:
    name = cut(info.filename, 60)
    expected = _CORRUPT_ARCHIVE + "the model again."
    if info.flag_bits & 0x1:
        _fail(shown, f"the archive member '{name}' is encrypted", expected)
    if info.compress_type not in _ZIP_METHODS:
        _fail(
            shown,
            f"the archive member '{name}' uses compression method {info.compress_type}, not "
            "stored or deflate",
            expected,
        )
    if info.file_size > _MAX_MEMBER_BYTES or info.compress_size > _MAX_MEMBER_BYTES:
        _fail(shown, f"the archive member '{name}' claims an implausible size", expected)
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        _fail(
            shown,
            f"the archive member '{name}' is stored uncompressed but its sizes differ",
            expected,
        )
    parts = info.filename.replace("\\", "/").split("/")
    if (
        info.filename.startswith(("/", "\\"))
        or ".." in parts
        or len(parts) > _MAX_NAME_DEPTH
        or "\x00" in info.filename
    ):
        _fail(shown, f"the archive member name '{name}' points outside the archive", expected)


def _read_h5_attributes(file: Path, shown: str) -> tuple[str | bytes, bool]:
    """The .h5 file's model_config (type-checked) and whether it has a training_config."""
    expected = "Expected a complete .h5 model file; save or copy the model again."
    try:
        import h5py

        with h5py.File(file, "r") as h5:
            raw = h5.attrs.get("model_config")
            training = h5.attrs.get("training_config")
    except Exception as e:  # h5py raises OSError, KeyError, RuntimeError... on damage
        _fail(shown, f"the HDF5 file is truncated or corrupt ({_brief(e)})", expected)
    if raw is None:
        _fail(
            shown,
            "it holds weights only, no model architecture",
            "Expected a whole model saved with model.save('model.keras'); weights files "
            "(.weights.h5) load into an already built model with model.load_weights().",
        )
    for attr, value in (("model_config", raw), ("training_config", training)):
        if value is not None and not isinstance(value, (str, bytes)):
            _fail(
                shown,
                f"its {attr} attribute is {_type_name(value)}, not JSON text",
                "Expected a .h5 model file written by model.save(); save the model again.",
            )
    return raw, training is not None


def _type_name(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and shape != ():
        return f"an array of shape {tuple(shape)}"
    return f"of type {type(value).__name__}"


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear and fast


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON `text` (strings skipped), computed
    without recursion so that a hostile file cannot exhaust the stack."""
    import numpy as np

    stripped = _JSON_STRING.sub("", text)
    codes = np.frombuffer(stripped.encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.zeros(codes.shape, dtype=np.int64)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


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
    """Refuses, in safe mode, every Lambda layer (whatever its function: stored bytecode or
    a Keras API function both run on loading) and any stored Python lambda."""
    lambdas = []
    carries_code = False
    for entry in entries:
        if entry.class_name == "__lambda__":
            carries_code = True
        elif entry.class_name == "Lambda" or (entry.registered_name or "").endswith(">Lambda"):
            name = entry.config.get("name", "?") if isinstance(entry.config, dict) else "?"
            lambdas.append(cut(str(name), 60))
    if lambdas:
        names = ", ".join(f"'{n}'" for n in lambdas[:3]) + (", ..." if len(lambdas) > 3 else "")
        _fail(
            shown,
            f"it contains a Lambda layer ({names}) whose function would run on loading, "
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
_OUTSIDE_EXPECTED = (
    "Expected a model that carries everything it needs in the file; if you trust the file "
    "and what it points to, pass --unsafe."
)


def _refuse_outside_code(entries: list[_Entry], config: Any, shown: str) -> None:
    """Refuses, in safe mode, what would load code, a graph or data from outside the file:
    a TFSMLayer, a non-modelling Keras function, any config string naming a path or URL."""
    for entry in entries:
        if entry.class_name in _LOADS_OUTSIDE_CODE:
            _fail(
                shown,
                f"it contains a {entry.class_name} that would load a TensorFlow SavedModel "
                "from outside the file and run its graph, which safe mode refuses",
                _OUTSIDE_EXPECTED,
            )
        module = entry.module or ""
        if (
            entry.class_name == "function"
            and (module == "keras" or module.startswith("keras."))
            and not _MODELLING_FUNCTIONS.match(module)
        ):
            what = cut(f"{module}.{entry.config}", 80)
            _fail(
                shown,
                f"it names the function '{what}', which is not a modelling function and would "
                "run on loading, which safe mode refuses",
                _OUTSIDE_EXPECTED,
            )
    for key, value in _config_strings(config):
        if _names_outside_resource(key, value):
            _fail(
                shown,
                f"its config entry '{cut(key, 40)}' names '{cut(value, 80)}', a path or URL "
                "outside the file that Keras would read on loading, which safe mode refuses",
                _OUTSIDE_EXPECTED,
            )


# Config keys whose strings are names, never files.
_NAME_KEYS = {"name", "class_name", "module", "registered_name", "dtype", "padding", "mode"}


def _config_strings(node: Any) -> Iterator[tuple[str, str]]:
    """(key, value) for every string value in a config (list items keep their dict's key)."""
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((key, v) for v in item)
        elif isinstance(item, str):
            yield key, item


def _names_outside_resource(key: str, value: str) -> bool:
    """Whether a config string names a file, folder or URL that loading would read."""
    if key in _NAME_KEYS or not value or len(value) > 4096:
        return False
    if _URL.match(value) or value.startswith(("/", "~", "./", "../", "\\")):
        return True
    if re.match(r"^[A-Za-z]:[\\/]", value):  # C:\\...
        return True
    if ("/" in value or os.sep in value) and " " not in value:
        return True
    try:
        return os.path.lexists(value)  # a relative name of something in the current folder
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- imports


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
    refused: set[str] = frozenset(),
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
                    f"'{cut(match.group(2), 80)}' (Keras 3 saves mask computations and "
                    "keras.ops calls as graph operations), which Keras cannot rebuild from an .h5 "
                    "file. Expected a .keras file for this model; re-save it with "
                    "model.save('model.keras')."
                )
            if match:
                return _unknown_class(
                    shown, match.group(1), match.group(2), entries, import_errors, refused
                )
    return None


def _is_keras_op(class_name: str) -> bool:
    """Whether `class_name` is a Keras operation (``NotEqual`` for ``keras.ops.not_equal``)."""
    import keras

    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    return callable(getattr(keras.ops, snake, None))


def _unknown_class(
    shown: str,
    kind: str,
    name: str,
    entries: list[_Entry],
    import_errors: dict[str, str],
    refused: set[str] = frozenset(),
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
    short = cut(name.split(">", 1)[-1], 80)
    details = []
    if entry is not None:
        if entry.registered_name and entry.registered_name not in (short, "function"):
            details.append(f"registered as '{cut(entry.registered_name, 80)}'")
        if entry.module and entry.module not in ("builtins", "__main__"):
            details.append(f"saved from module '{cut(entry.module, 80)}'")
    packages = (
        {p.split(".", 1)[0] for p in (entry.module, entry.registered_package) if p}
        if entry is not None
        else set()
    )
    failed = [
        f"importing '{p}' raised {import_errors[p]}" for p in sorted(packages & set(import_errors))
    ]
    detail = f" ({'; '.join(details + failed)})" if details or failed else ""
    not_imported = sorted(packages & set(refused))
    if not_imported:
        package = cut(not_imported[0], 60)
        return MaskvizError(
            f"Cannot load '{shown}': it uses the custom {kind} '{short}'{detail}; "
            f"{_NOT_IMPORTED.format(package=package)}. Expected its module: pass "
            f"--custom-objects {package}, or --allow-import {package} if you trust it, "
            "or --unsafe."
        )
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
    text = cut(" ".join(text[: 4 * limit].split()), limit)
    name = type(e).__name__
    return f"{name}: {text}" if text else name


def _fail(shown: str, what: str, expected: str) -> NoReturn:
    """Raises the one-line load error (`shown` and `what` are already escaped)."""
    raise MaskvizError(f"Cannot load '{shown}': {what}. {expected}")
