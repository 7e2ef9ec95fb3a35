"""The loss-and-gradients invariance: does the model learn from padding?

With the model's compiled loss (or one named with `--loss` / `loss=`), and targets
built for the probe (or the user's own, from `PaddingCheck`), three changes must
leave the loss and the gradients of every trainable weight unchanged:

- the targets at padded steps replaced by other targets (`loss-targets`);
- the same rows with more padding, or padded on the other side, targets moved with
  their steps (`loss-padding`);

A change in the loss or in a gradient means the model learns from padding: an
output reaches the loss with no mask, a mask reaches a loss that cannot use it, or
the loss is normalised by a count that includes padded steps.

Losses are called as Keras calls them in training: a `Loss` object reads the mask
attached to the prediction (`Loss.__call__`); a loss given as a name or a function
is wrapped as `compile()` wraps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .grads import loss_and_grads
from .length import Violation
from .results import ATOL, RTOL
from .runs import compare, output_names
from .variants import Seq, Variant, layout


def resolve_losses(model: Any, loss: Any, n_outputs: int, names: list[str]) -> list[Any] | None:
    """One Keras `Loss` (or `None`) per flat model output, from `loss` or the model's
    compiled loss; `None` when there is no loss."""
    spec = loss if loss is not None else getattr(model, "loss", None)
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        items = [spec.get(n) for n in names]
    elif isinstance(spec, (list, tuple)):
        items = list(spec) + [None] * (n_outputs - len(spec))
    else:
        items = [spec] * n_outputs
    return [None if it is None else _as_loss(it) for it in items]


def _as_loss(item: Any) -> Any:
    import keras

    obj = keras.losses.get(item) if isinstance(item, (str, dict)) else item
    if isinstance(obj, keras.losses.Loss):
        return obj
    if callable(obj):
        return _FunctionLoss(obj)
    raise ValueError(f"Unknown loss. Received: {item!r}; expected a Keras loss name or object.")


def _FunctionLoss(fn: Any) -> Any:
    """A function wrapped as `compile()` wraps it (Keras's `LossFunctionWrapper`):
    `sum_over_batch_size`, and the prediction's mask applied by `Loss.__call__`."""
    import keras

    class FunctionLoss(keras.losses.Loss):
        def call(self, y_true: Any, y_pred: Any) -> Any:
            return fn(y_true, y_pred)

    return FunctionLoss(name=getattr(fn, "__name__", "loss"))


def build_targets(y_pred: np.ndarray, loss: Any, rng: np.random.Generator) -> np.ndarray | None:
    """Targets the loss accepts for a prediction like `y_pred`: integer labels
    (shape without the last axis) or values in [0, 1] summing to 1 over the last
    axis. The first the loss computes a finite value on wins; failing that, the first
    it computes a value on at all (a prediction can make any loss non-finite: on
    PyTorch and JAX, a probability loss divides all-zero predictions by their sum)."""
    import keras

    shape = y_pred.shape
    cands = []
    if len(shape) >= 2 and shape[-1] and shape[-1] > 1:
        cands.append(rng.integers(0, shape[-1], size=shape[:-1]).astype("int32"))
    dense = rng.random(shape).astype("float32") + 0.05
    if len(shape) >= 1 and shape[-1] and shape[-1] > 1:
        dense = dense / dense.sum(axis=-1, keepdims=True)
    cands.append(dense)
    name = (getattr(loss, "name", "") or type(loss).__name__).lower()
    if "sparse" not in name:
        cands.reverse()
    computed = []
    for y in cands:
        try:
            v = np.asarray(keras.ops.convert_to_numpy(loss(y, y_pred)))
        except Exception:
            continue
        if v.size == 1 and np.isfinite(v).all():
            return y
        if v.size == 1:
            computed.append(y)
    return computed[0] if computed else None


@dataclass
class LossSetup:
    losses: list[Any]
    targets: list[np.ndarray | None]
    sample_weight: list[np.ndarray | None]
    names: list[str]


def _loss_fn(setup: LossSetup, targets: list[Any], weights: list[Any]):
    import keras

    def fn(y: Any) -> Any:
        flat = keras.tree.flatten(y)
        total = None
        for loss, yt, sw, yp in zip(setup.losses, targets, weights, flat):
            if loss is None or yt is None:
                continue
            v = loss(yt, yp, sw)
            total = v if total is None else total + v
        return total

    return fn


def _aligned(y: np.ndarray | None, seqs: list[Seq], time: dict[str, int]) -> str | None:
    """The sequence input whose time axis a target follows (axis 1 of its length)."""
    if y is None or y.ndim < 2:
        return None
    names = [s.name for s in seqs if y.shape[1] == time.get(s.name)]
    return names[0] if len(names) == 1 else None


def _retarget(
    arr: np.ndarray | None, variant: Variant, name: str | None, fill: np.ndarray | None
) -> np.ndarray | None:
    """Targets (or per-step sample weights) for a variant: real steps moved with
    their inputs, new padded steps from `fill` (same rows, any values)."""
    if arr is None:
        return None
    rows = variant.rows
    if name is None:
        return arr[rows]
    t = variant.time[name]
    out = np.zeros((len(rows), t) + arr.shape[2:], dtype=arr.dtype)
    if fill is not None:
        out[:] = fill[: len(rows), :t] if fill.shape[1] >= t else fill[: len(rows), :1]
    for j, r in enumerate(rows):
        bp, vp = variant.positions[j][name]
        out[j, vp] = arr[r, bp]
    return out


def check_loss(
    model: Any,
    probe: Any,
    trace: Any,
    seqs: list[Seq],
    variants: list[Variant],
    base_out: list[Any],
    *,
    loss: Any = None,
    targets: Any = None,
    sample_weight: Any = None,
    seed: int = 0,
    reset: Any,
    skipped: list[tuple[str, str]],
) -> tuple[list[Violation], int]:
    """Runs the loss-and-gradients invariance. Returns the violations and the number
    of runs made."""
    import keras

    names = output_names(trace, len(base_out))
    losses = resolve_losses(model, loss, len(base_out), names)
    if losses is None:
        skipped.append(("loss", "the model is not compiled and no loss was given (`--loss`)"))
        return [], 0
    rng = np.random.default_rng([seed, 77])
    if targets is not None:
        ts = [np.asarray(t) for t in keras.tree.flatten(targets)]
    else:
        ts = [
            None if lo is None or y is None else build_targets(y, lo, rng)
            for lo, y in zip(losses, base_out)
        ]
    if all(t is None for t in ts):
        skipped.append(("loss", "no targets the loss accepts could be built for the outputs"))
        return [], 0
    sws: list[Any] = [None] * len(ts)
    if sample_weight is not None:
        flat = [np.asarray(w) for w in keras.tree.flatten(sample_weight)]
        sws = flat if len(flat) == len(ts) else [flat[0]] * len(ts)
    setup = LossSetup(losses, ts, sws, names)
    base_time = {s.name: s.time for s in seqs}
    batch = seqs[0].keep.shape[0] if seqs else 0

    def measure(values: Mapping[str, np.ndarray], tgt: list[Any], sw: list[Any]):
        reset()
        return loss_and_grads(model, probe.feed(values), _loss_fn(setup, tgt, sw))

    runs = 1
    try:
        l0, g0 = measure(probe.values, ts, sws)
    except Exception as e:
        skipped.append(("loss", f"the loss could not be computed: {type(e).__name__}: {e}"))
        return [], runs
    violations: list[Violation] = []
    weights = [v.path if hasattr(v, "path") else v.name for v in model.trainable_variables]
    layouts = [
        next((layout(s.keep[r]) for s in seqs if not s.keep[r].all()), "unpadded")
        for r in range(batch)
    ]

    def judge(invariance: str, what: str, rows: list[int], l1: float, g1: list[np.ndarray]):
        # A finite loss against a non-finite one, either way, is an infinite change;
        # gradients compare as outputs do (`runs.compare`: NaN equals NaN).
        finite = (bool(np.isfinite(l0)), bool(np.isfinite(l1)))
        dl = abs(l1 - l0) if all(finite) else (0.0 if finite == (False, False) else np.inf)
        scale = abs(l0) if finite[0] else 0.0
        lay = tuple(sorted({layouts[r] for r in rows if r < len(layouts)}))
        if dl > ATOL + RTOL * scale:
            rel = dl / scale if scale else float("inf")
            violations.append(Violation(invariance, what, "loss", tuple(rows), lay, rel, dl, scale))
        gscale = max((compare(g, g)[1] for g in g0), default=0.0)
        worst = (0.0, "")
        for w, a, b in zip(weights, g0, g1):
            d = compare(a, b)[0] if a.shape == b.shape else float("inf")
            if d > worst[0]:
                worst = (d, w)
        if worst[0] > ATOL + RTOL * gscale:
            violations.append(
                Violation(
                    "gradients",
                    what,
                    "gradients",
                    tuple(rows),
                    lay,
                    worst[0] / gscale if gscale else float("inf"),
                    worst[0],
                    gscale,
                    detail=f"largest change in the gradient of `{worst[1]}`",
                )
            )

    # 1. Other targets at padded steps.
    base_variant = Variant(
        "loss-targets",
        "",
        dict(probe.values),
        list(range(batch)),
        [{s.name: (np.nonzero(s.keep[r])[0],) * 2 for s in seqs} for r in range(batch)],
        base_time,
    )
    new_ts = []
    touched: set[int] = set()
    for t, _lo in zip(ts, losses):
        name = _aligned(t, seqs, base_time)
        if t is None or name is None:
            new_ts.append(t)
            continue
        keep = next(s.keep for s in seqs if s.name == name)
        other = build_targets_like(t, rng)
        pad = ~keep.reshape(keep.shape + (1,) * (t.ndim - 2))
        new_ts.append(np.where(pad, other, t).astype(t.dtype))
        touched |= {r for r in range(batch) if not keep[r].all()}
    if touched:
        runs += 1
        l1, g1 = measure(probe.values, new_ts, sws)
        judge("loss-targets", "other targets at padded steps", sorted(touched), l1, g1)
    # 2. More padding, padding on the other side.
    del base_variant
    for v in variants:
        if v.invariance not in ("length", "side"):
            continue
        tv = []
        sv = []
        for t, sw in zip(ts, sws):
            name = _aligned(t, seqs, base_time)
            fill = build_targets_like(_retarget(t, v, name, None), rng) if name else None
            tv.append(_retarget(t, v, name, fill))
            sname = _aligned(sw, seqs, base_time) if sw is not None and sw.ndim >= 2 else None
            sv.append(_retarget(sw, v, sname, None) if sw is not None else None)
        runs += 1
        try:
            l1, g1 = measure(v.values, tv, sv)
        except Exception as e:
            skipped.append(("loss", f"the loss could not be computed on {v.what}: {e}"))
            continue
        rows = [r for r in range(batch) if layouts[r] != "unpadded" or v.invariance == "length"]
        judge("loss-padding", v.what, rows, l1, g1)
    return violations, runs


def build_targets_like(t: np.ndarray | None, rng: np.random.Generator) -> np.ndarray | None:
    """Other targets of the same kind as `t` (labels in its range, or values)."""
    if t is None:
        return None
    if np.issubdtype(t.dtype, np.integer):
        hi = int(t.max(initial=0)) + 1
        return rng.integers(0, max(hi, 2), size=t.shape).astype(t.dtype)
    out = rng.random(t.shape).astype(t.dtype) + 0.05
    if t.ndim >= 1 and t.shape[-1] > 1 and np.allclose(t.sum(axis=-1), 1.0, atol=1e-3):
        out = out / out.sum(axis=-1, keepdims=True)
    return out.astype(t.dtype)
