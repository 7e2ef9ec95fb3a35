"""Reading tensors and masks: shapes, dtypes, values, and how masks compare."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .records import CallRecord, MaskInfo, Role


def _shape(x: Any) -> tuple[int | None, ...]:
    try:
        return tuple(None if d is None else int(d) for d in x.shape)
    except Exception:
        return ()


def _dtype(x: Any) -> str:
    import keras

    try:
        return keras.backend.standardize_dtype(x.dtype)
    except Exception:
        return str(getattr(x, "dtype", "?"))


def _to_numpy(x: Any) -> np.ndarray | None:
    from .. import _keras_internals as ki

    if x is None or ki.is_symbolic(x):
        return None
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception:
        return None


def _binary(x: Any) -> bool:
    """Whether an eager tensor holds only 0s and 1s (a mask's values, maybe cast)."""
    arr = _to_numpy(x)
    if arr is None or not arr.size or arr.dtype.kind not in "biuf":
        return False
    return bool(np.all((arr == 0) | (arr == 1)))


def mask_info(m: Any) -> MaskInfo | None:
    if m is None:
        return None
    arr = _to_numpy(m)
    kept = None
    if arr is not None and arr.size:
        kept = round(float(np.mean(arr.astype(bool))), 4)
    return MaskInfo(shape=_shape(m), dtype=_dtype(m), kept=kept)


def masks_equal(a: Any, b: Any) -> bool | None:
    """Whether two masks are the same (values when eager, identity/shape when symbolic)."""
    if a is None or b is None:
        return a is None and b is None
    if a is b:
        return True
    na, nb = _to_numpy(a), _to_numpy(b)
    if na is None or nb is None:
        return _shape(a) == _shape(b) if _shape(a) != _shape(b) else None
    if na.shape != nb.shape:
        return False
    return bool(np.array_equal(na.astype(bool), nb.astype(bool)))


def mask_weakens(inp: Any, out: Any) -> bool:
    """True when `out` keeps positions that `inp` dropped (same shape, eager)."""
    if inp is None or out is None:
        return False
    ni, no = _to_numpy(inp), _to_numpy(out)
    if ni is None or no is None or ni.shape != no.shape:
        return False
    return bool(np.any(no.astype(bool) & ~ni.astype(bool)))


def _flatten_with_names(args: Sequence[Any], kwargs: Mapping[str, Any], names: list[str]):
    """Yields (arg name, tensor) for every tensor in the call arguments."""
    import keras

    from .. import _keras_internals as ki

    out = []
    for i, a in enumerate(args):
        name = names[i] if i < len(names) else f"arg{i}"
        _collect(name, a, out, keras, ki)
    for k, v in kwargs.items():
        if k == "training":
            continue
        _collect(k, v, out, keras, ki)
    return out


def _collect(name, value, out, keras, ki):
    if ki.is_tensor(value) or isinstance(value, np.ndarray):
        out.append((name, value))
        return
    if isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            _collect(f"{name}[{j}]", v, out, keras, ki)
    elif isinstance(value, dict):
        for k in sorted(value):
            _collect(f"{name}[{k!r}]", value[k], out, keras, ki)


def _flat(x: Any) -> list[Any]:
    import keras

    from .. import _keras_internals as ki

    if x is None:
        return []
    if ki.is_tensor(x):
        return [x]
    if isinstance(x, dict):
        return [t for k in sorted(x) for t in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flat(v)]
    try:
        return list(keras.tree.flatten(x))
    except Exception:
        return []


def _flat_masks(m: Any) -> list[Any]:
    if m is None:
        return [None]
    if isinstance(m, dict):
        return [v for k in sorted(m) for v in _flat_masks(m[k])]
    if isinstance(m, (list, tuple)):
        out = []
        for v in m:
            out.extend(_flat_masks(v))
        return out
    return [m]


def _param_names(layer: Any) -> list[str]:
    import inspect

    try:
        fn = type(layer).call
        return [p for p in inspect.signature(fn).parameters if p != "self"]
    except (TypeError, ValueError):
        return []


def classify_role(
    *,
    in_masked: bool,
    out_masked: bool,
    received: bool,
    same_as_input: bool | None,
) -> Role:
    """The call's mask role, from what was observed.

    - generator: no mask came in, one went out.
    - consumer: its `call` received a mask.
    - destroyer: a mask came in, none went out, and `call` did not receive it.
    - modifier: a mask came in and a different one went out.
    - propagator: the same mask went out.
    """
    if not in_masked and not received:
        return Role.GENERATOR if out_masked else Role.NONE
    if received:
        return Role.CONSUMER
    if not out_masked:
        return Role.DESTROYER
    if same_as_input is False:
        return Role.MODIFIER
    return Role.PROPAGATOR


def _replace(rec: CallRecord, **changes: Any) -> CallRecord:
    import dataclasses

    return dataclasses.replace(rec, **changes)


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if _shape(a) != _shape(b):
        return False
    na, nb = _to_numpy(a), _to_numpy(b)
    if na is None or nb is None:
        return False
    try:
        return bool(np.array_equal(na, nb.astype(na.dtype)))
    except Exception:
        return False


def _first_lines(msg: str, limit: int = 300) -> str:
    import re

    msg = re.sub(r"\x1b\[[0-9;]*m|\[[0-9;]*m", "", msg)
    msg = msg.split("Arguments received by", 1)[0]
    msg = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", msg)
    text = " ".join(line.strip() for line in msg.strip().splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."
