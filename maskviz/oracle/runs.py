"""Plain forward runs for the invariances: the model called on a feed, outputs as
numpy, with every variable restored before each run (a stateful RNN starts from
the state it had before maskviz looked, and keeps it afterwards)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


@contextlib.contextmanager
def preserved_state(model: Any) -> Iterator[Any]:
    """Yields a `reset()` that puts every state variable of `model` (RNN states kept
    outside `layer.variables` included; see `ki.snapshot_state`) back to its value on
    entry; the values are restored on exit too."""
    from .. import _keras_internals as ki

    saved = ki.snapshot_state(model)

    def reset() -> None:
        ki.restore_state(saved)

    try:
        yield reset
    finally:
        reset()


def to_numpy(x: Any) -> np.ndarray | None:
    import keras

    try:
        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception:
        return None


def call_model(model: Any, probe: Any, values: Mapping[str, np.ndarray]) -> list[Any]:
    """`model(feed, training=False)`, flattened to a list of numpy arrays (`None` for
    outputs that are not tensors)."""
    import keras

    out = model(probe.feed(values), training=False)
    return [to_numpy(o) for o in keras.tree.flatten(out)]


def output_names(trace: Any, n: int) -> list[str]:
    names = [o.name for o in getattr(trace, "outputs", ())]
    return names if len(names) == n else [f"output_{i}" for i in range(n)]


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a|) with NaN equal to NaN and NaN against a number an
    infinite difference."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0, 0.0
    d = np.abs(a - b)
    d = np.where(np.isnan(a) & np.isnan(b), 0.0, d)
    d = np.where(np.isnan(d), np.inf, d)
    mag = np.where(np.isfinite(a), np.abs(a), 0.0)
    return float(d.max()), float(mag.max())
