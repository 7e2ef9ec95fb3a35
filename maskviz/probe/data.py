"""Probes from the user's samples (`--data file.npz`, arrays): checked against the model's
inputs, with their padding read from the values (`detect_padding`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maskviz.errors import MaskvizError
from maskviz.inputs import InputKind, ModelInput
from maskviz.probe.batch import Probe
from maskviz.probe.generate import make_probe
from maskviz.probe.inputs import _mask_value, _vocabulary_size


def probe_from_data(
    model: Any, path: str, *, mask_inputs: Mapping[str, str] | None = None
) -> Probe:
    """Reads `--data file.npz`: keys are input names, or `arr_0`, `arr_1`, ... in order."""
    from maskviz.errors import cut

    shown = cut(str(path), 160)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.keys()}
    except FileNotFoundError:
        raise MaskvizError(f"--data file not found. Received: '{shown}'.") from None
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise MaskvizError(
                f"--data '{shown}' holds Python objects (a pickled object array), which "
                "maskviz does not load: loading them can run code. Expected numeric arrays "
                "saved with numpy.savez."
            ) from None
        raise MaskvizError(
            f"--data must be a .npz file written by `numpy.savez`. Received: '{shown}' "
            f"({cut(str(e), 120)})."
        ) from None
    except Exception as e:
        raise MaskvizError(
            f"--data must be a .npz file written by `numpy.savez`. Received: '{shown}' "
            f"({type(e).__name__}: {cut(str(e), 120)})."
        ) from None
    if not isinstance(arrays, dict) or not arrays:
        raise MaskvizError(
            f"--data '{shown}' holds no arrays. Expected a .npz file with one array per "
            "model input."
        )
    return probe_from_arrays(model, arrays, mask_inputs=mask_inputs)


def probe_from_arrays(
    model: Any, data: Mapping[str, Any], *, mask_inputs: Mapping[str, str] | None = None
) -> Probe:
    """A probe from the user's samples: keys are input names, or `arr_0`, `arr_1`, ..."""
    from maskviz import _keras_internals as ki

    base = make_probe(model, mask_inputs=mask_inputs)
    names = [i.name for i in base.inputs]
    keys = list(data.keys())
    values: dict[str, np.ndarray] = {}
    if all(n in keys for n in names):
        for n in names:
            values[n] = np.asarray(data[n])
    elif all(f"arr_{i}" in keys for i in range(len(names))):
        for i, n in enumerate(names):
            values[n] = np.asarray(data[f"arr_{i}"])
    else:
        raise MaskvizError(
            f"The data's keys do not match the model's inputs. Received keys: {sorted(keys)}; "
            f"expected {names} (or arr_0..arr_{len(names) - 1})."
        )
    for inp in base.inputs:
        _check_shape(inp, values[inp.name])
        _check_values(model, inp, values[inp.name], ki)
    keeps: dict[str, np.ndarray | None] = {}
    detected: list[str] = []
    for inp in base.inputs:
        arr = values[inp.name]
        if inp.kind == InputKind.TOKENS and arr.ndim >= 2:
            keeps[inp.name] = (
                arr != 0 if arr.ndim == 2 else np.any(arr != 0, axis=tuple(range(2, arr.ndim)))
            )
        elif inp.kind == InputKind.MASKED_FLOATS and arr.ndim >= 3:
            mv = _mask_value(model, inp, ki)
            keeps[inp.name] = np.any(arr != mv, axis=tuple(range(2, arr.ndim)))
            if keeps[inp.name].all():
                # No step equals mask_value: is the data padded with something else?
                keep, desc = detect_padding(arr)
                if desc:
                    keeps[inp.name] = keep
                    why = (
                        " (NaN never equals NaN: `Masking(mask_value=nan)` masks nothing)"
                        if np.isnan(mv)
                        else ""
                    )
                    detected.append(
                        f"input `{inp.name}`: {desc}; no step equals the `Masking` "
                        f"mask_value {mv:g}{why}"
                    )
        elif inp.kind == InputKind.MASK:
            keeps[inp.name] = arr.astype(bool)
        else:
            keep, desc = detect_padding(arr)
            keeps[inp.name] = keep
            if desc:
                detected.append(f"input `{inp.name}`: {desc}")
    for inp in base.inputs:
        if inp.kind == InputKind.MASK and inp.pairs_with and keeps.get(inp.pairs_with) is None:
            keeps[inp.pairs_with] = keeps[inp.name]
    return Probe(
        inputs=base.inputs,
        values=values,
        keep=keeps,
        structure=base.structure,
        from_data=True,
        detected=tuple(detected),
    )


def _check_shape(inp: ModelInput, arr: np.ndarray) -> None:
    """The user's array must fit the input: same rank, same fixed sizes."""
    expected = tuple(inp.shape)
    got = tuple(arr.shape)
    fits = len(got) == len(expected) and all(
        e is None or e == g for e, g in zip(expected[1:], got[1:])
    )
    if not fits:
        dims = ", ".join("None" if d is None else str(d) for d in expected)
        raise MaskvizError(
            f"The data for input '{inp.name}' has the wrong shape. Received: {got}; "
            f"expected ({dims}) (None = any size)."
        )


def _check_values(model: Any, inp: ModelInput, arr: np.ndarray, ki: Any) -> None:
    """The user's values must be usable: some rows, numbers where the model takes numbers,
    no NaN or infinity, token ids inside the vocabulary of the layer they feed."""
    from maskviz.errors import cut

    shown = cut(str(inp.name), 60)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise MaskvizError(
            f"The data for input '{shown}' has no rows. Received shape {arr.shape}. "
            "Expected at least one sample."
        )
    if inp.dtype == "string" or inp.kind == InputKind.STRINGS:
        if arr.dtype.kind not in "US":
            raise MaskvizError(
                f"The data for input '{shown}' is not text. Received dtype {arr.dtype}; "
                "expected strings."
            )
        return
    if arr.dtype.kind not in "biuf":
        raise MaskvizError(
            f"The data for input '{shown}' is not numeric. Received dtype {arr.dtype}; "
            f"expected numbers ({inp.dtype})."
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        # NaN (or inf) is a padding value like any other when it fills whole steps at the
        # ends of rows; anywhere else it is broken data.
        keep, _ = detect_padding(arr) if arr.ndim >= 2 else (None, None)
        real = np.isfinite(arr) if keep is None else np.isfinite(arr[keep])
        if not np.all(real):
            raise MaskvizError(
                f"The data for input '{shown}' holds NaN or infinite values in real steps "
                "(not only in whole padding steps at the ends of rows). Expected finite "
                "numbers there; clean the data first."
            )
    if inp.kind == InputKind.TOKENS and arr.size:
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise MaskvizError(
                f"The data for input '{shown}' holds fractional token ids. Expected whole numbers."
            )
        vocab = _vocabulary_size(model, inp, ki)
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or (vocab is not None and high >= vocab):
            limit = f"0..{vocab - 1}" if vocab is not None else ">= 0"
            raise MaskvizError(
                f"The data for input '{shown}' holds token ids outside the vocabulary. "
                f"Received ids from {low} to {high}; expected ids in {limit}."
            )


def _same(a: np.ndarray, b: Any) -> np.ndarray:
    """`a == b` where NaN equals NaN: a step of NaN is padding like any constant."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _key(c: Any) -> float:
    """One key for every NaN (NaN != NaN would make each its own value)."""
    c = float(c)
    return _NAN if np.isnan(c) else c


_NAN = float("nan")


def detect_padding(arr: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Padding found in float data with no padding convention: a run of identical
    constant steps (every feature equal to one value `c`, the same `c` in every row)
    at the end or at the start of rows.

    Returns `(keep, description)`: keep is `(batch, time)` bool (False on the
    detected padding), or `(None, None)` when no such run is found. A value counts as
    padding only when at least one row has a run of two steps or more of it.
    """
    a = np.asarray(arr)
    if a.ndim < 2 or a.shape[1] < 2 or not np.issubdtype(a.dtype, np.floating):
        return None, None
    steps = a.reshape(a.shape[0], a.shape[1], -1)
    const = np.all(_same(steps, steps[..., :1]), axis=-1)  # (batch, time)
    best = None
    for side in ("right", "left"):
        edge = steps[:, -1, 0] if side == "right" else steps[:, 0, 0]
        cands = {_key(c) for c, ok in zip(edge, const[:, -1 if side == "right" else 0]) if ok}
        for c in sorted(cands, key=lambda v: (np.isnan(v), v)):
            is_c = const & _same(steps[..., 0], c)
            seq = is_c[:, ::-1] if side == "right" else is_c
            run = np.argmin(np.concatenate([seq, np.zeros((len(seq), 1), bool)], 1), axis=1)
            if run.max(initial=0) < 2:
                continue
            score = int(run.sum())
            if best is None or score > best[0]:
                best = (score, side, c, run)
    if best is None:
        return None, None
    _, side, c, run = best
    t = a.shape[1]
    idx = np.arange(t)[None, :]
    pad = idx >= (t - run[:, None]) if side == "right" else idx < run[:, None]
    rows = int((run > 0).sum())
    desc = (
        f"{side} padding: runs of constant steps equal to {c:g} at the "
        f"{'end' if side == 'right' else 'start'} of {rows} of {len(run)} rows "
        f"({int(run[run > 0].min(initial=0))}-{int(run.max())} steps)"
    )
    return ~pad, desc
