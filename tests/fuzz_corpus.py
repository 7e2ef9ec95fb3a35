"""A corpus of corrupted and odd inputs made from the bundled sample models.

`generate(root)` writes every variant under `root` and returns them as `Variant`s: the
`maskviz` command line to run and the family it belongs to. Families:

- ``truncate``: a .keras or .h5 file cut short;
- ``flip``: bytes inverted (anywhere in a .keras file; in the first 4 KiB of a .h5 file,
  where its superblock and object headers are);
- ``zip``: zip-member edits (encrypted flag, compression method 99, stored data claiming
  DEFLATE and the reverse, size and CRC lies, duplicate, missing or escaping members);
- ``config``: config.json edits, hand-picked (nesting 3,000 to 100,000 deep, a 2**40 or
  zero batch dimension, ``Masking(mask_value="x")``, a layer named '', a 20 MiB layer
  name, control characters, weights that do not match) and seeded random mutations of
  values and keys;
- ``h5attr``: .h5 attribute edits (model_config an int, an array, non-UTF-8, deeply nested,
  not JSON; training_config garbage; attributes removed);
- ``path``: paths and permissions (missing, a directory, a FIFO, a device, broken and
  device symlinks, names of 300 and 5,000 characters, newlines and escapes in names,
  unreadable files and folders where the permission bits bind);
- ``usage``: odd flags (``--data`` with pickles, no rows, NaN, out-of-vocabulary ids;
  ``--graph`` into a missing folder; a ``--custom-objects`` file that raises).

The outcome contract (checked by tests/test_fuzz.py): exit 2 with exactly one line on stderr
and no traceback, or, for a file Keras loads, a normal inspection (exit 0 or 1) with no
traceback; a ``KeyboardInterrupt`` may exit 130 with one line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "maskviz" / "samples"
TRUNCATE_AT = (0.0005, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999)
RANDOM_CONFIG_MUTATIONS = 10


@dataclass(frozen=True)
class Variant:
    id: str
    family: str
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def samples() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.keras"))


# --------------------------------------------------------------------------- zip helpers


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i.filename) for i in zf.infolist()}


def _write_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _with_config(src: Path, dst: Path, edit) -> Path:
    members = _members(src)
    config = json.loads(members["config.json"])
    result = edit(config)
    text = result if isinstance(result, (str, bytes)) else json.dumps(config)
    members["config.json"] = text.encode() if isinstance(text, str) else text
    return _write_zip(dst, members)


def _patch_headers(data: bytearray, name: str, **fields: int) -> bytearray:
    """Rewrites fields of member `name`'s local header and central directory entry."""
    local = {"flag": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"), "csize": (18, "<I"),
             "usize": (22, "<I")}  # fmt: skip
    central = {"flag": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"), "csize": (20, "<I"),
               "usize": (24, "<I")}  # fmt: skip
    raw = name.encode()
    pos = 0
    while (pos := data.find(b"PK\x03\x04", pos)) != -1:
        (nlen,) = struct.unpack_from("<H", data, pos + 26)
        if bytes(data[pos + 30 : pos + 30 + nlen]) == raw:
            for key, value in fields.items():
                off, fmt = local[key]
                struct.pack_into(fmt, data, pos + off, value)
        pos += 4
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        (nlen,) = struct.unpack_from("<H", data, pos + 28)
        if bytes(data[pos + 46 : pos + 46 + nlen]) == raw:
            for key, value in fields.items():
                off, fmt = central[key]
                struct.pack_into(fmt, data, pos + off, value)
        pos += 4
    return data


def _zip_edits(src: Path, out: Path) -> list[tuple[str, Path]]:
    stem = src.stem
    made: list[tuple[str, Path]] = []
    members = _members(src)
    weights = next((n for n in members if n.endswith(".h5")), None)

    def patched(tag: str, member: str, zip_method: int = zipfile.ZIP_DEFLATED, **fields) -> None:
        path = _write_zip(out / f"{stem}.{tag}.keras", members, zip_method)
        data = _patch_headers(bytearray(path.read_bytes()), member, **fields)
        path.write_bytes(bytes(data))
        made.append((tag, path))

    patched("encrypted-config", "config.json", flag=0x1)
    patched("method99-config", "config.json", method=99)
    patched("stored-claims-deflate", "config.json", zipfile.ZIP_STORED, method=8)
    patched("deflate-claims-stored", "config.json", method=0)
    patched("crc-lie", "config.json", crc=0xDEADBEEF)
    patched("size-lie-small", "config.json", usize=3)
    patched("size-lie-huge", "config.json", usize=0xFFFFFFF0)
    if weights:
        patched("encrypted-weights", weights, flag=0x1)
        patched("method99-weights", weights, method=99)
        patched("stored-claims-deflate-weights", weights, zipfile.ZIP_STORED, method=8)
        patched("crc-lie-weights", weights, crc=0x12345678)
        without = {k: v for k, v in members.items() if k != weights}
        made.append(("no-weights", _write_zip(out / f"{stem}.no-weights.keras", without)))
        garbage = dict(members, **{weights: b"not an hdf5 file" * 8})
        made.append(("garbage-weights", _write_zip(out / f"{stem}.garbage-weights.keras", garbage)))
    without = {k: v for k, v in members.items() if k != "config.json"}
    made.append(("no-config", _write_zip(out / f"{stem}.no-config.keras", without)))
    escaping = dict(members, **{"../../escape.txt": b"x"})
    made.append(("escaping-member", _write_zip(out / f"{stem}.escaping.keras", escaping)))
    deep = dict(members, **{"/".join(["d"] * 200) + "/f": b"x"})
    made.append(("deep-member", _write_zip(out / f"{stem}.deep-member.keras", deep)))
    empty = dict(members, **{"config.json": b""})
    made.append(("empty-config", _write_zip(out / f"{stem}.empty-config.keras", empty)))
    # A duplicate config.json: the second copy is what a reader by name would see.
    dup = out / f"{stem}.duplicate.keras"
    _write_zip(dup, members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(dup, "a") as zf:
            zf.writestr("config.json", b'{"class_name": "Sequential", "config": {}}')
    made.append(("duplicate-member", dup))
    return made


# --------------------------------------------------------------------------- config edits


def _layers(config: dict) -> list[dict]:
    inner = config.get("config", {})
    return inner.get("layers", []) if isinstance(inner, dict) else []


def _first(config: dict, *class_names: str) -> dict | None:
    for layer in _layers(config):
        if not class_names or layer.get("class_name") in class_names:
            return layer
    return None


def _set_input_batch_shape(value):
    def edit(config):
        layer = _first(config, "InputLayer")
        if layer is not None:
            shape = list(layer["config"].get("batch_shape") or [None, None])
            shape[-1] = value
            layer["config"]["batch_shape"] = shape

    return edit


def _nest(depth: int):
    def edit(config):
        return '{"class_name": "Functional", "config": ' + "[" * depth + "]" * depth + "}"

    return edit


def _mask_value_x(config):
    layer = _first(config, "Masking")
    if layer is None:  # add the edit to any layer: Keras refuses the unknown argument
        layer = _first(config)
    layer["config"]["mask_value"] = "x"


def _rename_first(new_name: str):
    def edit(config):
        layer = _first(config, "Embedding", "Masking", "Dense", "LSTM")
        if layer is None:
            return
        old = layer["config"]["name"]
        text = json.dumps(config).replace(json.dumps(old), json.dumps(new_name))
        return text

    return edit


def _control_class(config):
    layer = _first(config, "Dense", "LSTM", "Embedding")
    if layer is not None:
        layer["class_name"] = "Evil\x1b]0;pwned\x07\x00Layer"
        layer["module"] = "evil\nmodule"


def _bigger_units(config):
    layer = _first(config, "Dense")
    if layer is not None:
        layer["config"]["units"] = int(layer["config"]["units"]) + 3


def _lambda(config):
    layer = _first(config, "Dense", "LSTM", "Embedding")
    if layer is not None:
        layer["class_name"] = "Lambda"
        layer["config"]["function"] = {
            "module": "keras.config",
            "class_name": "function",
            "config": "set_backend",
            "registered_name": None,
        }


def _named_module(module: str):
    def edit(config):
        layer = _first(config, "Dense", "LSTM", "Embedding")
        if layer is not None:
            layer["module"] = module
            layer["class_name"] = "Thing"
            layer["registered_name"] = f"{module}>Thing"

    return edit


HAND_EDITS = {
    "nest-3000": _nest(3000),
    "nest-100000": _nest(100_000),
    "not-json": lambda c: "{not json",
    "json-list": lambda c: "[1, 2, 3]",
    "class-name-int": lambda c: c.__setitem__("class_name", 7),
    "config-string": lambda c: c.__setitem__("config", "x"),
    "batch-2e40": _set_input_batch_shape(2**40),
    "batch-zero": _set_input_batch_shape(0),
    "batch-negative": _set_input_batch_shape(-3),
    "mask-value-x": _mask_value_x,
    "layer-named-empty": _rename_first(""),
    "layer-named-20mib": _rename_first("n" * (20 * 1024 * 1024)),
    "layer-named-escapes": _rename_first("a\nb\x1b]0;t\x07c"),
    "control-class-name": _control_class,
    "weights-mismatch": _bigger_units,
    "lambda-set-backend": _lambda,
    "names-os": _named_module("os"),
    "names-subprocess": _named_module("subprocess"),
    "names-numpy": _named_module("numpy"),
}

_ODD_VALUES: list[Any] = [
    None, -1, 0, 2**40, 1e308, float("nan"), "", "x", "\x1b]0;t\x07", [], {}, True,
    [[[[1]]]], {"class_name": "Nope", "config": {}}, "a" * 5000,
]  # fmt: skip


def _random_mutation(rng: random.Random):
    """One seeded mutation of a value or a key somewhere in the config."""

    def edit(config):
        spots: list[tuple[Any, Any]] = []
        stack = [config]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for k, v in node.items():
                    spots.append((node, k))
                    stack.append(v)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    spots.append((node, i))
                    stack.append(v)
        parent, key = rng.choice(spots)
        action = rng.choice(["value", "value", "value", "delete", "rename"])
        if action == "value" or isinstance(parent, list):
            parent[key] = rng.choice(_ODD_VALUES)
        elif action == "delete":
            del parent[key]
        else:
            parent[key + rng.choice(["_x", "\n", ""]) + "z"] = parent.pop(key)
        return json.dumps(config, allow_nan=True)

    return edit


# --------------------------------------------------------------------------- h5


def _save_h5(sample: Path, out: Path) -> Path | None:
    import keras

    import maskviz.samples  # noqa: F401  (registers the samples' layers)

    try:
        model = keras.saving.load_model(sample)
        path = out / f"{sample.stem}.h5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(path)
        return path
    except Exception:  # a model that legacy .h5 cannot hold
        return None


def _h5_attr_edits(src: Path, out: Path) -> list[tuple[str, Path]]:
    import h5py
    import numpy as np

    made = []

    def edit(tag: str, fn) -> None:
        path = out / f"{src.stem}.{tag}.h5"
        shutil.copyfile(src, path)
        with h5py.File(path, "r+") as h5:
            fn(h5)
        made.append((tag, path))

    def set_attr(name, value):
        def fn(h5):
            if name in h5.attrs:
                del h5.attrs[name]
            h5.attrs[name] = value

        return fn

    edit("config-int", set_attr("model_config", 42))
    edit("config-array", set_attr("model_config", np.arange(6).reshape(2, 3)))
    edit("config-non-utf8", set_attr("model_config", np.void(b"\xff\xfe\xfa{")))
    edit("config-bytes-non-utf8", set_attr("model_config", b"\xff\xfe{\x80}"))
    edit("config-deep", set_attr("model_config", "[" * 50_000 + "]" * 50_000))
    edit("config-not-json", set_attr("model_config", "{nope"))
    edit("config-list", set_attr("model_config", "[1, 2]"))
    edit("training-garbage", set_attr("training_config", "{garbage"))
    edit("training-int", set_attr("training_config", 7))
    edit("keras-version-int", set_attr("keras_version", 3))
    edit("no-config", lambda h5: h5.attrs.__delitem__("model_config"))
    edit("backend-array", set_attr("backend", np.zeros(3)))
    return made


# --------------------------------------------------------------------------- paths


def _permission_bits_bind(out: Path) -> bool:
    """Whether chmod 000 keeps this process out (it does not for root)."""
    probe = out / "perm_probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        probe.read_text()
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o600)
        probe.unlink()


def _path_variants(out: Path, sample: Path) -> tuple[list[tuple[str, list[str]]], str | None]:
    made: list[tuple[str, list[str]]] = []
    skipped = None
    made.append(("missing", [str(out / "missing.keras")]))
    (out / "dir.keras").mkdir()
    made.append(("directory", [str(out / "dir.keras")]))
    for suffix in (".keras", ".h5"):
        fifo = out / f"fifo{suffix}"
        os.mkfifo(fifo)
        made.append((f"fifo{suffix}", [str(fifo)]))
    os.symlink("/dev/zero", out / "zero.keras")
    made.append(("device-symlink", [str(out / "zero.keras")]))
    os.symlink(out / "nowhere.keras", out / "broken.keras")
    made.append(("broken-symlink", [str(out / "broken.keras")]))
    made.append(("device", ["/dev/null"]))
    made.append(("name-300", [str(out / ("n" * 294 + ".keras"))]))
    made.append(("name-5000", [str(out / "/".join(["p" * 99] * 50)) + ".keras"]))
    (out / "empty.keras").write_bytes(b"")
    made.append(("empty", [str(out / "empty.keras")]))
    newline = out / "new\nline.keras"
    shutil.copyfile(sample, newline)
    made.append(("newline-in-name", [str(newline)]))
    made.append(("escape-in-missing-name", [str(out / "a\x1b]0;t\x07.keras")]))
    made.append(("file-as-folder", [str(sample) + "/inner.keras"]))
    made.append(("no-suffix", [str(out / "dir.keras") + "/../" + sample.name + ".bin"]))
    if _permission_bits_bind(out):
        unreadable = out / "unreadable.keras"
        shutil.copyfile(sample, unreadable)
        unreadable.chmod(0)
        made.append(("unreadable-file", [str(unreadable)]))
        locked = out / "locked"
        locked.mkdir()
        shutil.copyfile(sample, locked / "model.keras")
        locked.chmod(0o600)  # no search permission
        made.append(("no-search-permission", [str(locked / "model.keras")]))
    else:
        skipped = (
            "unreadable-file and no-search-permission: this process is root, and a chmod 000 "
            "file was still readable (measured), so permission bits cannot be tested here"
        )
    return made, skipped


def _usage_variants(out: Path, sample: Path) -> list[tuple[str, list[str]]]:
    import numpy as np

    made: list[tuple[str, list[str]]] = []
    base = [str(sample)]
    np.savez(out / "pickle.npz", arr_0=np.array([object(), 1], dtype=object))
    np.savez(out / "zero_rows.npz", arr_0=np.zeros((0, 8), "int32"))
    np.savez(out / "nan.npz", arr_0=np.array([[1.0, np.nan, 0.0] * 3], "float32"))
    np.savez(out / "oov.npz", arr_0=np.array([[1, 10**6, 0] * 3], "int32"))
    np.savez(out / "strings.npz", arr_0=np.array([["a", "b"]]))
    (out / "not_npz.npz").write_bytes(b"nope")
    for name in ("pickle", "zero_rows", "nan", "oov", "strings", "not_npz"):
        made.append((f"data-{name}", [*base, "--data", str(out / f"{name}.npz")]))
    made.append(("data-missing", [*base, "--data", str(out / "missing.npz")]))
    made.append(("graph-missing-dir", [*base, "--graph", str(out / "no" / "such" / "g.svg")]))
    (out / "interrupt.py").write_text("raise KeyboardInterrupt\n")
    interrupt = str(out / "interrupt.py")
    made.append(("custom-objects-interrupt", [*base, "--custom-objects", interrupt]))
    (out / "syntax.py").write_text("def (:\n")
    made.append(("custom-objects-syntax", [*base, "--custom-objects", str(out / "syntax.py")]))
    made.append(("allow-import-not-a-name", [*base, "--allow-import", "a b"]))
    made.append(("format-unknown", [*base, "--format", "xml"]))
    made.append(("mask-input-bad", [*base, "--mask-input", "nopair"]))
    return made


# --------------------------------------------------------------------------- the corpus


def generate(root: Path, *, seed: int = 0) -> tuple[list[Variant], list[str]]:
    """Writes the corpus under `root`; returns (variants, notes on what was skipped)."""
    rng = random.Random(seed)
    variants: list[Variant] = []
    notes: list[str] = []

    def add(family: str, tag: str, argv: list[str]) -> None:
        variants.append(Variant(f"{family}:{tag}", family, ("inspect", *argv)))

    for family in ("truncate", "flip", "zip", "config", "h5attr", "path", "usage"):
        (root / family).mkdir(parents=True, exist_ok=True)
    h5_sources = []
    for sample in samples():
        data = sample.read_bytes()
        for frac in TRUNCATE_AT:
            path = root / "truncate" / f"{sample.stem}.{frac}.keras"
            path.write_bytes(data[: max(1, int(len(data) * frac))])
            add("truncate", path.name, [str(path)])
        for k in range(8):
            flipped = bytearray(data)
            # Half anywhere, half in the central directory (the archive's index).
            pos = rng.randrange(len(data)) if k % 2 else len(data) - 1 - rng.randrange(300)
            flipped[pos] ^= 0xFF
            path = root / "flip" / f"{sample.stem}.{k}.keras"
            path.write_bytes(bytes(flipped))
            add("flip", path.name, [str(path)])
        for _tag, path in _zip_edits(sample, root / "zip"):
            add("zip", path.name, [str(path)])
        for k in range(RANDOM_CONFIG_MUTATIONS):
            path = root / "config" / f"{sample.stem}.random{k}.keras"
            _with_config(sample, path, _random_mutation(rng))
            add("config", path.name, [str(path)])
        h5 = _save_h5(sample, root / "h5attr") if len(h5_sources) < 3 else None
        if h5 is not None:
            h5_sources.append(h5)
    first = samples()[0]
    masked = SAMPLES_DIR / "conv1d_after_masking.keras"
    for tag, edit in HAND_EDITS.items():
        for src in {first, masked}:
            path = root / "config" / f"{src.stem}.{tag}.keras"
            _with_config(src, path, edit)
            add("config", path.name, [str(path)])
    for h5 in h5_sources:
        data = h5.read_bytes()
        add("h5attr", h5.name, [str(h5)])
        for frac in (0.001, 0.05, 0.5, 0.95):
            path = root / "truncate" / f"{h5.stem}.{frac}.h5"
            path.write_bytes(data[: max(1, int(len(data) * frac))])
            add("truncate", path.name, [str(path)])
        for k in range(8):
            flipped = bytearray(data)
            pos = rng.randrange(min(4096, len(data)))
            flipped[pos] ^= 1 << rng.randrange(8)
            path = root / "flip" / f"{h5.stem}.{k}.h5"
            path.write_bytes(bytes(flipped))
            add("flip", path.name, [str(path)])
        for _tag, path in _h5_attr_edits(h5, root / "h5attr"):
            add("h5attr", path.name, [str(path)])
    paths, skipped = _path_variants(root / "path", first)
    if skipped:
        notes.append(skipped)
    for tag, argv in paths:
        add("path", tag, argv)
    for tag, argv in _usage_variants(root / "usage", SAMPLES_DIR / "clean_lstm.keras"):
        add("usage", tag, argv)
    return variants, notes


def sample_of(variants: list[Variant], n: int, *, seed: int = 0) -> list[Variant]:
    """A seeded sample of `n` variants covering every family."""
    rng = random.Random(seed)
    by_family: dict[str, list[Variant]] = {}
    for v in variants:
        by_family.setdefault(v.family, []).append(v)
    chosen = [rng.choice(group) for group in by_family.values()]
    rest = [v for v in variants if v not in chosen]
    chosen += rng.sample(rest, max(0, n - len(chosen)))
    return chosen


def checksum(path: Path) -> str:
    return f"{zlib.crc32(path.read_bytes()):08x}"
