"""Models saved by tf.keras 2 (the `tf_keras` package, or TensorFlow <= 2.15).

Keras 3 reads the `.h5` files that tf.keras 2 writes, but refuses some of the layer
configs in them: every RNN layer (`LSTM`, `GRU`, `SimpleRNN`, `ConvLSTM2D`, and those
inside `Bidirectional`) carries `time_major`, an argument Keras 3 removed, and
`Attention(score_mode="dot")` is read back as the function `dot`. `translate_config`
rewrites exactly those keys (found by saving a tf_keras 2.21 model of each masked layer
type and loading it; see `tests/test_legacy.py`), `load_keras2_h5` loads the translated
model and its weights, and `origin_of(model)` tells the report that the file came from
Keras 2 and which version.

A tf.keras 2 `.keras` archive names tf_keras's own classes (`tf_keras.src.engine.functional`)
and lays out its weights differently: Keras 3 cannot read it, and maskviz says so (re-save
it as `.h5` with tf_keras).

When `tf_keras` is installed (`pip install "maskviz[legacy]"`), `compare_with_keras2` runs
the same probe through the file under tf.keras 2 in a subprocess and reports, per layer
call, where the two Keras versions deliver masks differently.

This module imports nothing heavy at import time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MaskvizError


@dataclass(frozen=True)
class Keras2Origin:
    """Where a model file came from: saved by Keras 2 (tf.keras) version `version`.

    Attributes:
        version: the `keras_version` the file records (`2.21.0`).
        format: "h5" or "keras".
        translated: the legacy config keys rewritten on loading, as `Class.key` strings.
    """

    version: str
    format: str
    translated: tuple[str, ...] = ()
    path: str = field(default="", compare=False)

    def describe(self) -> str:
        what = f"saved by tf.keras {self.version} (Keras 2)"
        if self.translated:
            what += f"; translated for Keras 3: {', '.join(self.translated)}"
        return what

    def to_dict(self) -> dict[str, Any]:
        return {"keras": self.version, "format": self.format, "translated": list(self.translated)}


_ORIGINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def origin_of(model: Any) -> Keras2Origin | None:
    """The Keras 2 origin of a model `maskviz.loading.load_model` read, else `None`."""
    try:
        return _ORIGINS.get(model)
    except TypeError:
        return None


# --------------------------------------------------------------------------- detection


def keras2_version(file: Path, kind: str) -> str | None:
    """The Keras 2 version that saved `file` ("h5" or "keras"), or `None` when it was not
    saved by Keras 2 (or does not say)."""
    version = None
    try:
        if kind == "h5":
            import h5py

            with h5py.File(file, "r") as h5:
                version = h5.attrs.get("keras_version")
        else:
            with zipfile.ZipFile(file) as zf:
                if "metadata.json" in zf.namelist():
                    version = json.loads(zf.read("metadata.json")).get("keras_version")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if isinstance(version, bytes):
        version = version.decode("utf-8", errors="replace")
    if isinstance(version, str) and version.split(".", 1)[0] == "2":
        return version
    return None


# --------------------------------------------------------------------------- translation

# Config keys that tf.keras 2 writes and Keras 3 rejects, per class, with the values that
# mean what Keras 3 does without them (`ANY`: whatever the value, Keras 3 infers it).
ANY = object()
_RNN_KEYS = {"time_major": (False,)}
_LEGACY_KEYS: dict[str, dict[str, Any]] = {
    "LSTM": _RNN_KEYS,
    "GRU": _RNN_KEYS,
    "SimpleRNN": _RNN_KEYS,
    "RNN": _RNN_KEYS,
    "ConvLSTM1D": _RNN_KEYS,
    "ConvLSTM2D": _RNN_KEYS,
    "ConvLSTM3D": _RNN_KEYS,
    # Keras 3's legacy loader turns the string "dot" into the function `dot`; "dot" is
    # Keras 3's default, so the key is dropped.
    "Attention": {"score_mode": ("dot",)},
    # Keras 3 builds MultiHeadAttention from its call's shapes, and its masking is the
    # non-robust softmax.
    "MultiHeadAttention": {
        "query_shape": ANY,
        "key_shape": ANY,
        "value_shape": ANY,
        "softmax_robust_masking": (False,),
    },
}
# Layers whose extra call tensors tf.keras 2 saves as more positional inputs and Keras 3
# wants as `initial_state=` (an RNN called with `initial_state=[h, c]`).
_STATEFUL_CALLS = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


def _tensor_ref(entry: list) -> dict[str, Any]:
    """A Keras 3 serialised tensor for a tf.keras 2 inbound entry `[layer, node, index]`;
    only its history matters (the real tensor replaces it when the graph is rebuilt)."""
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None], "dtype": "float32", "keras_history": list(entry[:3])},
    }


def _is_ref(x: Any) -> bool:
    return (
        isinstance(x, list)
        and len(x) in (3, 4)
        and isinstance(x[0], str)
        and all(isinstance(i, int) for i in x[1:3])
    )


def _kwarg_refs(value: Any) -> Any:
    """tf.keras 2 writes a tensor passed by keyword as `[layer, node, index]`."""
    if _is_ref(value):
        return _tensor_ref(value)
    if isinstance(value, list) and value and all(_is_ref(v) for v in value):
        return [_tensor_ref(v) for v in value]
    return value


def _translate_nodes(class_name: str, nodes: Any) -> tuple[Any, str | None]:
    """Legacy call nodes Keras 3 misreads, rewritten in Keras 3's own node format:

    - `rnn(x, initial_state=[h, c])` is saved as one node with inputs `[x, h, c]`, which
      Keras 3 reads as three positional inputs: now `args=[x]`,
      `kwargs={"initial_state": [h, c]}`;
    - a tensor passed by keyword (`MultiHeadAttention(q, value=v)`) is saved as
      `[layer, node, index]`, which Keras 3 passes on as that list: now a tensor.
    """
    if not isinstance(nodes, list):
        return nodes, None
    out, what = [], None
    for node in nodes:
        if not (isinstance(node, list) and node and all(_is_ref(e) for e in node)):
            out.append(node)
            continue
        raw = node[-1][3] if len(node[-1]) > 3 and isinstance(node[-1][3], dict) else {}
        kwargs = {k: _kwarg_refs(v) for k, v in raw.items()}
        args = node
        if class_name in _STATEFUL_CALLS and len(node) > 1:
            kwargs["initial_state"] = [_tensor_ref(e) for e in node[1:]]
            args = node[:1]
            what = f"{class_name}.initial_state"
        elif kwargs != raw:
            what = f"{class_name}.call_tensors"
        else:
            out.append(node)
            continue
        refs = [_tensor_ref(e) for e in args]
        out.append({"args": [refs[0] if len(refs) == 1 else refs], "kwargs": kwargs})
    return out, what


# Activations whose name means another function in Keras 3: tf.keras 2's `hard_sigmoid`
# is `clip(0.2 x + 0.5, 0, 1)`, Keras 3's is `relu6(x + 3) / 6` (ConvLSTM2D's default
# `recurrent_activation` in tf.keras 2). Renamed to a function with Keras 2's meaning.
_KERAS2_ACTIVATIONS = {"hard_sigmoid": "maskviz_keras2_hard_sigmoid"}
_ACTIVATION_KEYS = ("activation", "recurrent_activation")


def _keras2_hard_sigmoid(x: Any) -> Any:
    from keras import ops

    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def keras2_objects() -> dict[str, Any]:
    """The functions a translated config names (custom objects for loading)."""
    return {"maskviz_keras2_hard_sigmoid": _keras2_hard_sigmoid}


def translate_config(config: Any) -> tuple[Any, tuple[str, ...]]:
    """Returns a copy of a tf.keras 2 model config with the keys Keras 3 rejects rewritten,
    and the rewrites made (`LSTM.time_major`, sorted, once each).

    Raises:
        MaskvizError: a legacy key holds a value Keras 3 has no equivalent for
            (`time_major=True`).
    """
    done: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if "inbound_nodes" in out:
            out["inbound_nodes"], what = _translate_nodes(
                str(out.get("class_name", "")), out["inbound_nodes"]
            )
            if what:
                done.add(what)
        keys = _LEGACY_KEYS.get(out.get("class_name", ""))
        inner = out.get("config")
        if isinstance(inner, dict) and "class_name" in out:
            for key in _ACTIVATION_KEYS:
                if inner.get(key) in _KERAS2_ACTIVATIONS:
                    inner = {**inner, key: _KERAS2_ACTIVATIONS[inner[key]]}
                    out["config"] = inner
                    done.add(f"{out['class_name']}.{key}")
        if keys and isinstance(inner, dict):
            inner = dict(inner)
            for key, droppable in keys.items():
                if key not in inner:
                    continue
                if droppable is not ANY and inner[key] not in droppable:
                    raise MaskvizError(
                        f"Cannot translate `{out['class_name']}({key}={inner[key]!r})` saved by "
                        f"tf.keras 2: Keras 3 has no such argument. Expected "
                        f"{key}={droppable[0]!r}; re-create the layer without it."
                    )
                del inner[key]
                done.add(f"{out['class_name']}.{key}")
            out["config"] = inner
        return out

    return walk(config), tuple(sorted(done))


def load_keras2_h5(
    file: Path, version: str, *, custom_objects: dict | None = None, safe_mode: bool = True
) -> Any:
    """Loads an `.h5` model saved by tf.keras 2 with Keras 3: its config translated
    (`translate_config`), then its weights, from a translated copy of the file (the
    original is never written). The training configuration is not restored."""
    import h5py
    import keras

    with h5py.File(file, "r") as h5:
        raw = h5.attrs["model_config"]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    config, translated = translate_config(json.loads(raw))
    with tempfile.TemporaryDirectory(prefix="maskviz-keras2-") as tmp:
        copy = Path(tmp) / "model.h5"
        shutil.copyfile(file, copy)
        with h5py.File(copy, "r+") as h5:
            h5.attrs["model_config"] = json.dumps(config)
            if "training_config" in h5.attrs:
                del h5.attrs["training_config"]
        model = keras.saving.load_model(
            copy,
            custom_objects={**keras2_objects(), **(custom_objects or {})},
            compile=False,
            safe_mode=safe_mode,
        )
    _ORIGINS[model] = Keras2Origin(
        version=version, format="h5", translated=translated, path=os.fspath(file)
    )
    return model


def load_if_keras2(
    file: Path, kind: str, shown: str, *, custom_objects: dict | None, unsafe: bool
) -> Any:
    """The model in `file` when tf.keras 2 saved it (`None` otherwise, for Keras 3 to load).

    Raises:
        MaskvizError: a tf.keras 2 `.keras` archive, or an `.h5` that still fails.
    """
    version = keras2_version(file, kind)
    if version is None:
        return None
    if kind != "h5":
        raise keras2_archive_error(shown, version)
    try:
        return load_keras2_h5(file, version, custom_objects=custom_objects, safe_mode=not unsafe)
    except MaskvizError:
        raise
    except Exception as e:
        text = " ".join(str(e).split("Exception encountered: ")[-1].split())[:200]
        raise MaskvizError(
            f"Cannot load '{shown}': it was saved by tf.keras {version} (Keras 2) and Keras 3 "
            f"could not rebuild it after translation ({type(e).__name__}: {text}). Expected a "
            "model Keras 3 can rebuild; re-create it with Keras 3, or pass custom layers with "
            "--custom-objects."
        ) from e


def keras2_archive_error(shown: str, version: str) -> MaskvizError:
    """The message for a `.keras` archive written by tf.keras 2, which Keras 3 cannot read."""
    return MaskvizError(
        f"Cannot load '{shown}': it was saved by tf.keras {version} (Keras 2, the `tf_keras` "
        "package), whose .keras archives Keras 3 cannot read (they name tf_keras's own "
        "classes and lay out weights differently). Expected a Keras 3 file or a Keras 2 .h5 "
        "file: in tf_keras, `tf_keras.models.load_model(path).save('model.h5')`, then "
        "inspect model.h5."
    )


# --------------------------------------------------------------------------- Keras 2 vs 3


@dataclass(frozen=True)
class MaskDifference:
    """One layer call whose mask delivery differs between Keras 2 and Keras 3.

    Attributes:
        layer: the layer's name (the same in both, read from the same file).
        keras2: whether its `call` received a mask under tf.keras 2.
        keras3: whether it received one under the installed Keras 3.
    """

    layer: str
    keras2: bool
    keras3: bool

    def describe(self) -> str:
        got = {True: "received a mask", False: "received no mask"}
        return f"`{self.layer}` {got[self.keras2]} in tf.keras 2 and {got[self.keras3]} in Keras 3"


@dataclass(frozen=True)
class Keras2Comparison:
    """The result of tracing the same file and probe under tf.keras 2 (`tf_keras`).

    Attributes:
        tf_keras: the tf_keras version that ran, or "" when it could not run.
        differences: the calls whose mask delivery differs.
        compared: how many layer calls were compared.
        error: why the comparison did not run ("" when it did).
    """

    tf_keras: str = ""
    differences: tuple[MaskDifference, ...] = ()
    compared: int = 0
    error: str = ""
    keras2_received: dict[str, bool] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tf_keras": self.tf_keras,
            "compared": self.compared,
            "error": self.error,
            "differences": [
                {
                    "layer": d.layer,
                    "keras2_received_mask": d.keras2,
                    "keras3_received_mask": d.keras3,
                }
                for d in self.differences
            ],
        }


def tf_keras_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tf_keras") is not None


def compare_with_keras2(
    file: str | os.PathLike, feed: dict[str, Any], keras3_received: dict[str, bool]
) -> Keras2Comparison:
    """Runs `feed` (input name -> array) through `file` under tf.keras 2 in a subprocess,
    records per layer whether its `call` received a mask, and compares that with
    `keras3_received` (layer name -> received a mask, from the Keras 3 trace)."""
    import subprocess
    import sys

    import numpy as np

    if not tf_keras_available():
        return Keras2Comparison(error="tf_keras is not installed (pip install 'maskviz[legacy]')")
    with tempfile.TemporaryDirectory(prefix="maskviz-keras2-") as tmp:
        data = Path(tmp) / "feed.npz"
        np.savez(data, **{k: np.asarray(v) for k, v in feed.items()})
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "maskviz._keras2_probe", os.fspath(file), os.fspath(data)],
                capture_output=True,
                text=True,
                timeout=600,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return Keras2Comparison(error=f"the tf.keras 2 run failed: {type(e).__name__}")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return Keras2Comparison(error=f"the tf.keras 2 run failed: {tail}")
    result = json.loads(lines[-1])
    k2: dict[str, bool] = result["received"]
    common = sorted(set(k2) & set(keras3_received))
    diffs = tuple(
        MaskDifference(layer=name, keras2=k2[name], keras3=keras3_received[name])
        for name in common
        if k2[name] != keras3_received[name]
    )
    return Keras2Comparison(
        tf_keras=result["tf_keras"], differences=diffs, compared=len(common), keras2_received=k2
    )


_COMPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def keras2_section(report: Any) -> tuple[Keras2Origin, Keras2Comparison] | None:
    """For a report on a model loaded from a tf.keras 2 file: where it came from, and how
    mask delivery compares with tf.keras 2 on the same probe (computed once per report's
    probe). `None` for any other model."""
    from maskviz.trace.records import Via

    origin = origin_of(report.model)
    if origin is None:
        return None
    key = (id(report.probe), id(report.trace))
    cached = _COMPARED.get(report.model)
    if cached is not None and cached[0] == key:
        return origin, cached[1]
    if report.probe is None or not origin.path:
        comparison = Keras2Comparison(error="no probe to run")
    else:
        keras3 = {
            c.name: c.received
            for c in report.trace.calls
            if c.via == Via.DUNDER_CALL and c.call_index == 0 and c.depth == 0
        }
        comparison = compare_with_keras2(origin.path, dict(report.probe.values), keras3)
    _COMPARED[report.model] = (key, comparison)
    return origin, comparison


def section_lines(origin: Keras2Origin, comparison: Keras2Comparison) -> list[str]:
    """The text report's lines about a tf.keras 2 file."""
    lines = [f"origin: {origin.describe()}"]
    if comparison.error:
        lines.append(f"keras 2 vs 3: not compared ({comparison.error})")
    elif not comparison.differences:
        lines.append(
            f"keras 2 vs 3: every one of {comparison.compared} calls receives a mask in the "
            f"same way under tf_keras {comparison.tf_keras}"
        )
    else:
        for d in comparison.differences:
            lines.append(f"keras 2 vs 3: {d.describe()} (tf_keras {comparison.tf_keras})")
    return lines
