"""What a candidate is measured by, besides the re-inspection: the padding
invariances of its outputs at real positions (`padding_invariance`: the same content
with its padding moved to the other side, with more padding, and truncated to its
real length) and which real steps reach an output (`content_sensitivity`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Tolerance of output comparisons (float32 outputs of rebuilt layers).
RTOL = 1e-4
ATOL = 1e-5

# A real step reaches an output when changing it moves the output by more than
# `REACH_RTOL * max |output|` (plus `REACH_ATOL`). A step a mask silences moves it by
# exactly 0 (same ops, same values), float32 round-off is ~1e-7 of the output's own
# scale, and a floor of fixed size would misjudge small outputs: an untrained
# model's can be ~1e-2, its token steps moving them by ~1e-5 (the initial weights
# differ per backend).
REACH_RTOL = 1e-6
REACH_ATOL = 1e-9


@dataclass(frozen=True)
class Check:
    """One verification. `passed` is `None` when it could not be measured."""

    name: str
    passed: bool | None
    detail: str

    @property
    def label(self) -> str:
        return {True: "ok", False: "FAILED", None: "skipped"}[self.passed]


def outputs(model: Any, feed: Any) -> list[np.ndarray]:
    import keras

    from .. import _keras_internals as ki

    with ki.silence_mask_warnings():
        out = model(feed, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(out)]


@dataclass(frozen=True)
class Invariance:
    """How much a model's outputs at real positions move under one change of the
    padding alone. `change` is the max |diff|, `None` when not measurable."""

    variant: str
    change: float | None
    note: str = ""

    @property
    def holds(self) -> bool | None:
        return None if self.change is None else self.change <= ATOL + RTOL


def _layout(keep: np.ndarray) -> list[tuple[int, int] | None]:
    """Per row: (start, length) of its contiguous real steps, or None."""
    out = []
    for row in keep:
        idx = np.flatnonzero(row)
        if idx.size == 0 or idx[-1] - idx[0] + 1 != idx.size:
            out.append(None)
        else:
            out.append((int(idx[0]), int(idx.size)))
    return out


def _pad_value(v: np.ndarray, keep: np.ndarray) -> Any:
    padded = ~keep
    if padded.any():
        return v[padded][0]
    return np.zeros(v.shape[2:], v.dtype)


def padding_invariance(model: Any, probe: Any) -> tuple[Invariance, ...]:
    """Measures three invariances on the probe's padded rows, computed from the
    probe's padding pattern only (no rule, no oracle):

    - `side`: the same real steps, with the padding moved to the other side;
    - `longer`: the same real steps with more padding (time left open only);
    - `truncated`: each padded row alone, cut to its real steps (time open only).

    Outputs with the input's time axis are compared at the real steps; other
    outputs whole.
    """
    keeps = {k: np.asarray(v, bool) for k, v in probe.keep.items() if v is not None}
    if not keeps:
        return (Invariance("side", None, "the probe has no padding pattern"),)
    keep = next(iter(keeps.values()))
    batch, time = keep.shape
    layout = _layout(keep)
    if any(lay is None for lay in layout) or any(
        not np.array_equal(k, keep) for k in keeps.values()
    ):
        return (Invariance("side", None, "padding is not one run at one end of each row"),)
    values = {i.name: np.asarray(probe.values[i.name]) for i in probe.inputs}
    timed = [n for n, v in values.items() if v.ndim >= 2 and v.shape[1] == time]
    pad_of = {n: _pad_value(values[n], keeps[n]) if n in keeps else None for n in timed}
    try:
        base = outputs(model, probe.feed(values))
    except Exception as e:
        return (Invariance("side", None, f"the model fails on the probe ({type(e).__name__})"),)

    def moved(extra: int, flip: bool) -> tuple[dict[str, np.ndarray], list[int]]:
        new_time = time + extra
        starts = []
        out = {n: v for n, v in values.items() if n not in timed}
        for n in timed:
            v = values[n]
            fill = pad_of[n] if pad_of[n] is not None else np.zeros(v.shape[2:], v.dtype)
            arr = np.empty((batch, new_time, *v.shape[2:]), v.dtype)
            arr[...] = fill
            out[n] = arr
        for r, (start, n_real) in enumerate(layout):
            right = start == 0
            if n_real == time:
                new_start = 0 if extra == 0 or right else extra
            elif flip:
                new_start = new_time - n_real if right else 0
            else:
                new_start = 0 if right else new_time - n_real
            starts.append(new_start)
            for n in timed:
                out[n][r, new_start : new_start + n_real] = values[n][r, start : start + n_real]
        return out, starts

    def compare(
        a: list[np.ndarray], b: list[np.ndarray], starts_a: list[int], starts_b: list[int], rows
    ) -> float:
        worst = 0.0
        for x, y in zip(a, b):
            for r_a, r_b in rows:
                n_real = layout[r_a][1]
                xa, yb = x[r_a], y[r_b]
                if x.ndim >= 2 and x.shape[1] == time and y.ndim >= 2:
                    sa, sb = starts_a[r_a], starts_b[r_b]
                    xa = xa[sa : sa + n_real]
                    yb = yb[sb : sb + n_real]
                worst = max(worst, _max_diff(xa, yb))
        return worst

    own = [lay[0] for lay in layout]
    padded_rows = [(r, r) for r, lay in enumerate(layout) if lay[1] < time]
    results = []
    try:
        feed, starts = moved(0, flip=True)
        results.append(
            Invariance(
                "side", compare(base, outputs(model, probe.feed(feed)), own, starts, padded_rows)
            )
        )
    except Exception as e:
        results.append(Invariance("side", None, f"{type(e).__name__}"))
    if probe.open_time:
        try:
            feed, starts = moved(max(2, time // 2), flip=False)
            results.append(
                Invariance(
                    "longer",
                    compare(base, outputs(model, probe.feed(feed)), own, starts, padded_rows),
                )
            )
        except Exception as e:
            results.append(Invariance("longer", None, f"{type(e).__name__}"))
        worst = 0.0
        try:
            for r, _ in padded_rows:
                start, n_real = layout[r]
                one = {
                    n: (v[r : r + 1, start : start + n_real] if n in timed else v[r : r + 1])
                    for n, v in values.items()
                }
                got = outputs(model, probe.feed(one))
                worst = max(worst, _compare_row(base, got, r, start, n_real, time))
            results.append(Invariance("truncated", worst))
        except Exception as e:
            results.append(Invariance("truncated", None, f"{type(e).__name__}"))
    return tuple(results)


def _compare_row(
    base: list[np.ndarray], got: list[np.ndarray], r: int, start: int, n_real: int, time: int
) -> float:
    worst = 0.0
    for x, y in zip(base, got):
        xa, yb = x[r], y[0]
        if x.ndim >= 2 and x.shape[1] == time and y.ndim >= 2:
            xa = xa[start : start + n_real]
        worst = max(worst, _max_diff(xa, yb))
    return worst


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| (NaN ignored), infinite when the shapes differ."""
    if a.shape != b.shape:
        return float("inf")
    diff = np.abs(a.astype("float64") - b.astype("float64"))
    return float(np.nanmax(diff)) if diff.size else 0.0


def content_sensitivity(model: Any, probe: Any) -> frozenset[tuple[int, int]] | None:
    """The (row, step) pairs of real steps in padded rows whose value reaches an
    output: each is perturbed alone (a token id moved to another id, a frame
    shifted) in one batched run, and kept when an output at a real position
    changes. A repair may remove what padding does, never what real data does;
    a mask put back on misaligned steps (a layer that reverses or shifts time)
    silences real steps. `None` when not measurable."""
    keeps = {k: np.asarray(v, bool) for k, v in probe.keep.items() if v is not None}
    if not keeps:
        return None
    name, keep = next(iter(keeps.items()))
    values = {i.name: np.asarray(probe.values[i.name]) for i in probe.inputs}
    kind = {i.name: i.kind for i in probe.inputs}[name]
    x = values[name]
    pairs = [
        (r, t) for r in range(keep.shape[0]) if not keep[r].all() for t in np.flatnonzero(keep[r])
    ]
    if not pairs or kind == "mask":
        return None
    rows = [r for r, _ in pairs]
    batch = {n: v[rows] if v.shape[:1] == x.shape[:1] else v for n, v in values.items()}
    perturbed = batch[name].copy()
    for i, (_, t) in enumerate(pairs):
        if kind == "tokens":
            high = max(int(x.max()), 2)
            step = perturbed[i, t]
            perturbed[i, t] = np.where(step != 0, 1 + (step % high), step)
        else:
            perturbed[i, t] = perturbed[i, t] + 1.5
    batch[name] = perturbed
    base_rows = {n: v[rows] if v.shape[:1] == x.shape[:1] else v for n, v in values.items()}
    try:
        a = outputs(model, probe.feed(base_rows))
        b = outputs(model, probe.feed(batch))
    except Exception:
        return None
    time = keep.shape[1]
    found = set()
    for i, (r, t) in enumerate(pairs):
        for xa, xb in zip(a, b):
            ya, yb = xa[i], xb[i]
            if xa.ndim >= 2 and xa.shape[1] == time:
                ya, yb = ya[keep[r]], yb[keep[r]]
            ya, yb = ya.astype("float64"), yb.astype("float64")
            scale = max(
                float(np.max(np.abs(ya), initial=0.0)), float(np.max(np.abs(yb), initial=0.0))
            )
            if ya.size and np.max(np.abs(ya - yb)) > REACH_ATOL + REACH_RTOL * scale:
                found.add((int(r), int(t)))
                break
    return frozenset(found)


def _ranks(found: frozenset | None, keep: Any) -> frozenset | None:
    """(row, step) pairs as (row, which real step of the row: 0 for the first)."""
    if found is None:
        return None
    return frozenset((r, int(np.searchsorted(np.flatnonzero(keep[r]), t))) for r, t in found)


def _packed_probe(probe: Any) -> Any:
    """`probe` with each row's real steps first (as right padding has them), every
    input of the padded input's time length moved the same way; `None` when nothing
    moves."""
    keeps = {k: np.asarray(v, bool) for k, v in probe.keep.items() if v is not None}
    if not keeps:
        return None
    name, keep = next(iter(keeps.items()))
    time = keep.shape[1]
    order = np.stack([np.concatenate([np.flatnonzero(k), np.flatnonzero(~k)]) for k in keep])
    if np.array_equal(order, np.broadcast_to(np.arange(time), order.shape)):
        return None
    rows = np.arange(keep.shape[0])[:, None]
    values = {}
    for n, v in probe.values.items():
        v = np.asarray(v)
        moves = v.ndim >= 2 and v.shape[:2] == keep.shape
        values[n] = v[rows, order] if moves else v
    new_keep = {
        n: (np.asarray(k, bool)[rows, order] if np.shape(k) == keep.shape else k)
        for n, k in probe.keep.items()
    }
    return dataclasses.replace(probe, values=values, keep=new_keep)


def reference_sensitivity(model: Any, probe: Any) -> frozenset | None:
    """The real steps of padded rows that reach the outputs of the *original* model,
    as (row, which real step of the row). Where the original's outputs move with the
    side of the padding (MV113), which real steps reach depends on that side too: a
    step counts when it reaches with the padding where the probe has it and with the
    row's real steps first (as right padding has them). On rows already so, that is
    the plain measurement."""
    keeps = [np.asarray(v, bool) for v in probe.keep.values() if v is not None]
    if not keeps:
        return None
    here = _ranks(content_sensitivity(model, probe), keeps[0])
    packed = _packed_probe(probe)
    if packed is None or here is None:
        return here
    first = next(np.asarray(v, bool) for v in packed.keep.values() if v is not None)
    there = _ranks(content_sensitivity(model, packed), first)
    return here if there is None else here & there


def candidate_sensitivity(model: Any, probe: Any) -> frozenset | None:
    """`content_sensitivity` as (row, which real step of the row)."""
    keeps = [np.asarray(v, bool) for v in probe.keep.values() if v is not None]
    return _ranks(content_sensitivity(model, probe), keeps[0]) if keeps else None


def compare_sensitivity(before: frozenset | None, after: frozenset | None) -> Check:
    name = "real steps still reach the outputs"
    if before is None or after is None:
        return Check(name, None, "not measurable on this probe")
    lost = sorted(before - after)
    if lost:
        shown = ", ".join(f"row {r} real step {t + 1}" for r, t in lost[:4])
        return Check(
            name,
            False,
            f"{len(lost)} real step(s) no longer reach any output ({shown}): the mask is "
            "not aligned with the steps it masks",
        )
    return Check(name, True, f"{len(after)} real steps of padded rows reach the outputs")


def compare_invariance(
    before: Sequence[Invariance], after: Sequence[Invariance]
) -> tuple[Check, tuple[Invariance, ...]]:
    """The candidate may not break an invariance that held before it (as a repair
    may not add an error). Invariances violated before are reported, not judged:
    a positional model (`Flatten` then `Dense`) can never hold the side one."""
    name = "no padding invariance broken"
    prior = {i.variant: i for i in before}
    broken = []
    parts = []
    for inv in after:
        old = prior.get(inv.variant)
        if inv.change is None:
            parts.append(f"{inv.variant}: not measured")
            continue
        old_change = old.change if old is not None else None
        parts.append(
            f"{inv.variant}: {inv.change:.2g}"
            + (f" (was {old_change:.2g})" if old_change is not None else "")
        )
        if old is not None and old.holds and not inv.holds:
            broken.append(inv.variant)
    if broken:
        detail = "broken: " + ", ".join(broken) + "; " + "; ".join(parts)
        return Check(name, False, detail), tuple(after)
    measured = any(i.change is not None for i in after)
    return Check(name, True if measured else None, "; ".join(parts) or "not measured"), tuple(after)
