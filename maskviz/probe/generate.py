"""`make_probe`: a seeded probe batch generated from the model's input specs, with rows of
different padding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maskviz.errors import MaskvizError
from maskviz.inputs import InputKind, ModelInput
from maskviz.probe.batch import BATCH, DEFAULT_DIM, DEFAULT_TIME, MAX_PROBE_VALUES, Probe
from maskviz.probe.inputs import (
    _classify,
    _consumers,
    _first_layers,
    _input_specs,
    _pair_for,
    _structure,
)


def _row_keep(batch: int, time: int, *, left_pad: bool = True) -> np.ndarray:
    """(batch, time) bool: full, mostly padded, left-padded (or half), three quarters."""
    keep = np.zeros((batch, time), dtype=bool)
    lengths = [time, max(1, time // 4), max(1, time // 2), max(1, (3 * time) // 4)]
    for r in range(batch):
        n = lengths[r % len(lengths)]
        if left_pad and r % len(lengths) == 2:
            keep[r, time - n :] = True  # left-padded
        else:
            keep[r, :n] = True
    return keep


def _check_probe_shape(name: str, full: list[int]) -> None:
    """One-line refusal of an input shape that cannot be probed: a zero-sized fixed
    dimension (no data at all) or one so large the probe would not fit in memory."""
    from maskviz.errors import cut

    shown = cut(str(name), 60)
    if any(d <= 0 for d in full):
        raise MaskvizError(
            f"Input '{shown}' has a dimension of size 0 (probe shape {tuple(full)}), so "
            "there is no data to run the model on. Expected every fixed dimension to be "
            "at least 1; fix the model's Input shape."
        )
    total = 1
    for d in full:
        total *= d
    if total > MAX_PROBE_VALUES:
        raise MaskvizError(
            f"Input '{shown}' needs {total:,} values for a probe of shape {tuple(full)}, "
            f"more than the {MAX_PROBE_VALUES:,} maskviz allocates. Expected fixed "
            "dimensions of a size that fits in memory; check the model's Input shape."
        )


def make_probe(
    model: Any,
    *,
    seed: int = 0,
    time: int | None = None,
    mask_inputs: Mapping[str, str] | None = None,
) -> Probe:
    """Builds a seeded probe batch from the model's input specs.

    Args:
        model: a built Keras model.
        seed: random seed; the same model and seed give the same probe.
        time: the time length to use where the model leaves it open.
        mask_inputs: explicit pairs `{mask input name: data input name}`.

    Raises:
        MaskvizError: when the model's inputs cannot be determined.
    """
    from maskviz import _keras_internals as ki

    rng = np.random.default_rng(seed)
    specs = _input_specs(model, ki)
    kinds: dict[str, tuple[InputKind, dict]] = {}
    for name, shape, dtype, tensor in specs:
        consumers = _consumers(model, tensor, ki) if tensor is not None else _first_layers(model)
        kinds[name] = _classify(name, shape, dtype, consumers)
    pairs = dict(mask_inputs or {})
    for name, (kind, _) in kinds.items():
        if kind == InputKind.MASK and name not in pairs:
            pairs[name] = _pair_for(name, specs, kinds)
    for m, d in pairs.items():
        if m not in kinds:
            raise MaskvizError(
                f"--mask-input names an input the model does not have. Received: {m!r}; "
                f"the model's inputs are {sorted(kinds)}."
            )
        if d is not None and d not in kinds:
            raise MaskvizError(
                f"--mask-input pairs {m!r} with an input the model does not have. "
                f"Received: {d!r}; the model's inputs are {sorted(kinds)}."
            )
        kinds[m] = (InputKind.MASK, {})

    # A shared time length, so paired inputs agree.
    t_len = time
    open_time = False
    # The time axis is axis 1 of the sequence inputs (tokens, masked floats, rank 3+),
    # not of a state input such as `(batch, units)`.
    sequences = [
        shape
        for n, shape, _, _ in specs
        if len(shape) >= 3
        or (len(shape) == 2 and kinds[n][0] in (InputKind.TOKENS, InputKind.MASK))
    ] or [shape for _, shape, _, _ in specs if len(shape) >= 2]
    if t_len is None:
        for shape in sequences:
            if shape[1] is not None:
                t_len = int(shape[1])
                break
    if t_len is None:
        open_time = any(shape[1] is None for shape in sequences)
    t_len = DEFAULT_TIME if t_len is None else t_len
    fulls = {
        name: [BATCH]
        + [
            (t_len if i == 1 else DEFAULT_DIM) if d is None else int(d)
            for i, d in enumerate(shape[1:], start=1)
        ]
        for name, shape, _, _ in specs
    }
    for name, full in fulls.items():  # before anything is allocated
        _check_probe_shape(name, full)
    if t_len <= 0 or BATCH * t_len > MAX_PROBE_VALUES:
        _check_probe_shape("(time)", [BATCH, t_len])
    # Models that take an explicit padding mask get it from a preprocessor, and those
    # pad on the right (keras-hub's do): no left-padded row for them. Use --data to
    # check left padding.
    explicit = any(kind == InputKind.MASK for kind, _ in kinds.values())
    keep = _row_keep(BATCH, t_len, left_pad=not explicit)

    values: dict[str, np.ndarray] = {}
    keeps: dict[str, np.ndarray | None] = {}
    seq_index: dict[str, int] = {}
    for d in pairs.values():  # a mask input shares its data input's padding
        if d is not None:
            seq_index.setdefault(d, len(seq_index))
    inputs = []
    for name, shape, dtype, _ in specs:
        kind, info = kinds[name]
        full = fulls[name]
        row_keep = None
        if len(full) >= 2 and full[1] == t_len:
            # Independent sequences get different padding (rows rotated), so that
            # a mask taken from the wrong sequence shows; paired ones share it.
            anchor = name if kind != InputKind.MASK else (pairs.get(name) or name)
            row_keep = np.roll(keep, seq_index.setdefault(anchor, len(seq_index)), axis=0)
        if kind == InputKind.TOKENS:
            vocab = max(2, info.get("vocab", 100))
            arr = rng.integers(1, vocab, size=full)
            if row_keep is not None:
                arr = np.where(_expand(row_keep, len(full)), arr, 0)
            if len(full) == 3:
                # Nested sequences (sentences of words): pad inside each step too.
                inner = full[2]
                lengths = rng.integers(1, inner + 1, size=full[:2])
                arr = np.where(np.arange(inner)[None, None, :] < lengths[..., None], arr, 0)
            arr = arr.astype(dtype if dtype.startswith(("int", "uint")) else "int32")
        elif kind == InputKind.STRINGS:
            words = np.asarray(info["words"], dtype=object)
            arr = words[rng.integers(0, len(words), size=full)]
            if row_keep is not None:
                arr = np.where(_expand(row_keep, len(full)), arr, info["pad"])
            arr = arr.astype(str)
        elif kind == InputKind.MASKED_FLOATS:
            arr = rng.standard_normal(full).astype(dtype if "float" in dtype else "float32")
            if row_keep is not None:
                arr = np.where(_expand(row_keep, len(full)), arr, info["mask_value"]).astype(
                    arr.dtype
                )
        elif kind == InputKind.MASK:
            arr = (
                row_keep.astype(dtype)
                if row_keep is not None and len(full) == 2
                else np.ones(full, dtype=dtype)
            )
        elif dtype == "bool":
            arr = rng.random(full) > 0.5
        elif dtype.startswith(("int", "uint")):
            arr = rng.integers(0, 10, size=full).astype(dtype)
        else:
            arr = rng.standard_normal(full).astype(dtype)
        values[name] = arr
        keeps[name] = (
            row_keep
            if kind
            in (
                InputKind.TOKENS,
                InputKind.MASKED_FLOATS,
                InputKind.MASK,
                InputKind.STRINGS,
            )
            else None
        )
        inputs.append(
            ModelInput(
                name=name,
                shape=tuple(shape),
                dtype=dtype,
                kind=kind,
                pairs_with=pairs.get(name) if kind == InputKind.MASK else None,
            )
        )
    # Paired data inputs share the mask's padding pattern.
    for m, d in pairs.items():
        if d is not None and keeps.get(d) is None and keeps.get(m) is not None:
            keeps[d] = keeps[m]
    return Probe(
        inputs=tuple(inputs),
        values=values,
        keep=keeps,
        structure=_structure(model, len(specs)),
        open_time=open_time or time is not None,
    )


def _expand(keep: np.ndarray, ndim: int) -> np.ndarray:
    return keep.reshape(keep.shape + (1,) * (ndim - 2))
