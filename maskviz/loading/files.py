"""Bounded reading of a model file before Keras opens it: only regular files, zip members
checked (flags, method, sizes, names, CRC), JSON parsed with a nesting limit, ``.h5``
attributes checked for type and encoding."""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any, NoReturn

from maskviz.errors import MaskvizError, cut
from maskviz.loading.messages import _EXPECTED_FILE, _READABLE, _brief, _fail, _os_reason

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
