"""The leak oracle: does padding leak into what the model outputs?

Structure can be argued about; behaviour cannot. For each *mask source* the oracle
re-runs the model once with the values at the masked positions replaced by noise
while the mask stays exactly the same, and compares every call's output with the
baseline (the probe run in `Trace.values`) at the positions that matter:

- where the call's own output mask keeps (the mask must cover the output's leading
  axes, e.g. `(batch, time)` for `(batch, time, features)`);
- else, when the output is still aligned with the source's `(batch, time)` axes
  (it was derived from the source through calls that kept those two axes, e.g.
  `Conv1D(padding="same")` after `Masking`), where the *source's* mask keeps: the
  padded steps of such a tensor carry garbage by design, its real steps must not
  change;
- else (time was pooled, flattened or reshaped away) the whole tensor.

A call *changed* when `max |perturbed - baseline| > ATOL + RTOL * max |baseline|`
over those positions. Mask sources are:

- every generator call's output (`Embedding(mask_zero=True)`, `Masking`, any layer
  that makes a mask from nothing): its layer's `call` is wrapped for the run (an
  instance attribute, removed afterwards, even on error) to replace the values at
  masked positions and re-attach the very same mask. Perturbing the *input* instead
  would change the mask (a padded token 0 or a step equal to `mask_value` is what
  makes the mask);
- every data input paired with an explicit mask input (`padding_mask` with
  `token_ids`): that input is perturbed where the mask is off (token ids: other ids
  that occur in the batch; floats: noise), the mask input is left alone.

Leaks are localised: the *first* leaking calls are changed calls none of whose
upstream calls changed, on a chain of changed calls that reaches a changed model
output. Changes that never reach an output's kept positions (attention
probabilities of padded query rows, say) are recorded but are not leaks; calls that
only inherit a change from upstream are not separate leaks.

The same run also checks *fully masked samples* (MV108): two extra rows are
appended to the batch in which the source masks every step and the padding values
differ between the two rows. Their outputs must be finite, and must not depend on
the padding values (the two rows' outputs are equal at the positions compared as
above). If the model does not accept a batch of 6 rows, the run is repeated without
them and the check is skipped. So the oracle costs one forward pass per mask source.

Everything is seeded: the same model, probe and seed give the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RTOL = 1e-3
"""A change counts when it exceeds `RTOL * max |baseline|` (plus `ATOL`) over the
compared positions. float32 round-off is ~1e-7 per operation; re-running the same
ops on the same kept values is usually bit-exact, and the few kernels that block
differently for a batch of 6 rows differ by O(1e-6) relative, far below 1e-3.
The noise is of the tensor's own scale, so a real leak moves kept values by
O(1e-2 .. 1) relative."""
ATOL = 1e-6
EXTRA_ROWS = 2

__all__ = [
    "ATOL",
    "RTOL",
    "CallChange",
    "FullyMaskedIssue",
    "Leak",
    "OracleResult",
    "SourceResult",
    "run_oracle",
]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CallChange:
    """A call whose output changed at compared positions when padding was perturbed.

    Attributes:
        call_id: the call.
        output_index: which of its outputs changed most.
        change: `max |delta| / max |baseline|` over the compared positions.
        max_abs: `max |delta|`.
        scale: `max |baseline|` over the compared positions.
        compared: "mask" (its own output mask), "source-keep" (the source's mask,
            for outputs still aligned with the source's time axis) or "whole".
        rows: the batch rows that changed.
    """

    call_id: str
    output_index: int
    change: float
    max_abs: float
    scale: float
    compared: str
    rows: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "output_index": self.output_index,
            "change": _num(self.change),
            "max_abs": _num(self.max_abs),
            "scale": _num(self.scale),
            "compared": self.compared,
            "rows": list(self.rows),
        }


@dataclass(frozen=True)
class Leak:
    """A first leaking call: it changed, none of its upstream calls did.

    Attributes:
        call_id: the call where padding leaks in.
        change: its relative change (see `CallChange.change`).
        rows: the rows whose kept positions changed.
        layouts: how those rows are padded: "right-padded", "left-padded",
            "other" (gaps), "unpadded" (a change in a row without padding means
            rows are mixed) or "empty".
        outputs: the model outputs (names) the leak reaches.
        paths: per reached output, the call ids from this call to the output.
    """

    call_id: str
    change: float
    rows: tuple[int, ...]
    layouts: tuple[str, ...]
    outputs: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...]

    @property
    def left_padding_only(self) -> bool:
        return bool(self.layouts) and set(self.layouts) == {"left-padded"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "change": _num(self.change),
            "rows": list(self.rows),
            "layouts": list(self.layouts),
            "outputs": list(self.outputs),
            "paths": [list(p) for p in self.paths],
        }


@dataclass(frozen=True)
class FullyMaskedIssue:
    """A first call where a fully masked sample goes wrong.

    Attributes:
        call_id: the call.
        kind: "nonfinite" (NaN or inf in the fully masked rows) or "non-neutral"
            (the two fully masked rows, which differ only in their padding values,
            give different outputs at compared positions).
        outputs: the model outputs (names) that show it.
        count: number of non-finite values (nonfinite) or changed values.
        change: relative difference between the two rows (non-neutral).
    """

    call_id: str
    kind: str
    outputs: tuple[str, ...]
    count: int
    change: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "kind": self.kind,
            "outputs": list(self.outputs),
            "count": self.count,
            "change": _num(self.change),
        }


@dataclass(frozen=True)
class SourceResult:
    """What perturbing one mask source showed.

    Attributes:
        source: the generator call id, or `"input:NAME"` for a data input paired
            with an explicit mask input.
        kind: "generator" or "explicit-mask".
        mask_input: the explicit mask input's name (explicit-mask sources).
        masked_positions: how many (batch, time) positions were perturbed.
        row_layouts: per probe row, how the source pads it.
        outputs_reached: model outputs downstream of the source.
        outputs_changed: model outputs whose kept positions changed.
        changed: every call that changed (including those not reaching an output).
        leaks: the first leaking calls.
        fully_masked_checked: whether the fully-masked rows ran.
        fully_masked: first calls where a fully masked sample goes wrong.
    """

    source: str
    kind: str
    mask_input: str | None
    masked_positions: int
    row_layouts: tuple[str, ...]
    outputs_reached: tuple[str, ...]
    outputs_changed: tuple[str, ...]
    changed: tuple[CallChange, ...]
    leaks: tuple[Leak, ...]
    fully_masked_checked: bool
    fully_masked: tuple[FullyMaskedIssue, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "mask_input": self.mask_input,
            "masked_positions": self.masked_positions,
            "row_layouts": list(self.row_layouts),
            "outputs_reached": list(self.outputs_reached),
            "outputs_changed": list(self.outputs_changed),
            "changed": [c.to_dict() for c in self.changed],
            "leaks": [lk.to_dict() for lk in self.leaks],
            "fully_masked_checked": self.fully_masked_checked,
            "fully_masked": [i.to_dict() for i in self.fully_masked],
        }


@dataclass(frozen=True)
class OracleResult:
    """The oracle's verdict for one model.

    Attributes:
        sources: one result per mask source that was perturbed.
        skipped: `(what, why)` for sources or checks that could not run.
        rtol, atol: the tolerance used.
        seed: the noise seed.
        runs: extra forward passes made.
    """

    sources: tuple[SourceResult, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    rtol: float = RTOL
    atol: float = ATOL
    seed: int = 0
    runs: int = 0
    invariance: Any = None  # `invariance.InvarianceResult` (length/side, loss)

    @property
    def leaks(self) -> list[tuple[SourceResult, Leak]]:
        """Every first leaking call, with its source."""
        return [(s, lk) for s in self.sources for lk in s.leaks]

    @property
    def leaking_calls(self) -> set[str]:
        return {lk.call_id for _, lk in self.leaks}

    def summary_lines(self) -> list[str]:
        """One line per mask source, for the text report."""
        lines = []
        for s in self.sources:
            head = f"oracle: {s.source} ({s.kind}, {s.masked_positions} padded positions): "
            if not s.leaks:
                reached = ", ".join(s.outputs_reached) or "no output"
                lines.append(head + f"no leak; reaches {reached}")
                continue
            parts = []
            for lk in s.leaks:
                rows = ", ".join(str(r) for r in lk.rows)
                path = " -> ".join(lk.paths[0]) if lk.paths else lk.call_id
                parts.append(f"LEAK at {lk.call_id} (change {lk.change:.2f}, rows {rows}) {path}")
            lines.append(head + "; ".join(parts))
        for what, why in self.skipped:
            lines.append(f"oracle: skipped {what}: {why}")
        if self.invariance is not None:
            lines.extend(self.invariance.summary_lines())
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "rtol": self.rtol,
            "atol": self.atol,
            "seed": self.seed,
            "runs": self.runs,
            "sources": [s.to_dict() for s in self.sources],
            "skipped": [{"what": w, "why": y} for w, y in self.skipped],
            **({"invariances": self.invariance.to_dict()} if self.invariance else {}),
        }


def _num(x: float) -> float | str:
    x = float(x)
    if np.isfinite(x):
        return round(x, 6)
    return "inf" if x > 0 else ("nan" if np.isnan(x) else "-inf")


# --------------------------------------------------------------------------- graph


@dataclass
class _Graph:
    """The trace's calls as a graph the oracle can walk."""

    order: dict[str, int]
    comparable: set[str]
    upstream: dict[str, set[str]]  # resolved to comparable calls
    downstream: dict[str, set[str]]
    output_keys: list[tuple[str, str, int]]  # (output name, call id, index)


def _build_graph(trace: Any, model: Any) -> _Graph:
    calls = list(trace.calls)
    by_id = {c.id: c for c in calls}
    order = {c.id: i for i, c in enumerate(calls)}
    loop_bodies = _loop_body_pairs(model)
    excluded: set[str] = set()
    for c in calls:
        parent = by_id.get(c.parent) if c.parent else None
        if (
            c.via != "__call__"
            or (parent is not None and (parent.name, c.name) in loop_bodies)
            or (c.parent in excluded)
        ):
            excluded.add(c.id)
    comparable = {
        c.id
        for c in calls
        if c.id not in excluded and c.observed and not c.error and trace.values.get(c.id)
    }
    children: dict[str, list[str]] = {}
    for c in calls:
        if c.parent in by_id:
            children.setdefault(c.parent, []).append(c.id)

    raw: dict[str, set[str]] = {}
    for c in calls:
        up: set[str] = set()
        unknown = False
        for t in c.inputs:
            if t.source is None:
                unknown = True
            elif t.source in by_id and t.source != c.id:
                up.add(t.source)
        if unknown:
            # Made by an op maskviz does not see (a residual add, a slice): it may
            # depend on anything computed before it in the same container.
            siblings = (
                children.get(c.parent, [])
                if c.parent
                else [o.id for o in calls if o.parent is None]
            )
            up.update(s for s in siblings if order[s] < order[c.id])
            if c.parent in by_id:
                up.add(c.parent + "\0inputs")
        up.update(children.get(c.id, []))
        raw[c.id] = up

    def resolve(cid: str, seen: set[str]) -> set[str]:
        out: set[str] = set()
        for u in raw.get(cid, ()):
            if u.endswith("\0inputs"):
                parent = u[: -len("\0inputs")]
                ups = {t.source for t in by_id[parent].inputs if t.source in by_id}
                for p in ups:
                    if p in comparable:
                        out.add(p)
                    elif p not in seen:
                        seen.add(p)
                        out |= resolve(p, seen)
                continue
            if u in comparable:
                out.add(u)
            elif u not in seen:
                seen.add(u)
                out |= resolve(u, seen)
        return out

    upstream = {cid: resolve(cid, {cid}) for cid in comparable}
    downstream: dict[str, set[str]] = {cid: set() for cid in comparable}
    for cid, ups in upstream.items():
        for u in ups:
            downstream.setdefault(u, set()).add(cid)
    output_keys = [
        (o.name, o.source, o.source_index)
        for o in trace.outputs
        if o.source is not None and o.source in comparable
    ]
    return _Graph(order, comparable, upstream, downstream, output_keys)


def _loop_body_pairs(model: Any) -> set[tuple[str, str]]:
    """(owner name, cell name) for every RNN-like layer's step function: its call
    records hold the first step only."""
    from .. import _keras_internals as ki

    pairs = set()
    for layer in ki.flatten_layers(model):
        cell = getattr(layer, "cell", None)
        if cell is None or not ki.is_layer(cell):
            continue
        pairs.add((layer.name, cell.name))
        for sub in getattr(cell, "cells", None) or []:
            pairs.add((layer.name, sub.name))
            pairs.add((cell.name, sub.name))
    return pairs


def _layer_for(model: Any, call: Any) -> Any:
    """The layer object behind a call record (by path, then by name and class)."""
    from .. import _keras_internals as ki

    cur = model
    for seg in call.path.split("/"):
        nxt = None
        for lyr in ki.flatten_layers(cur)[1:]:
            if lyr.name == seg:
                nxt = lyr
                break
        if nxt is None:
            cur = None
            break
        cur = nxt
    if cur is not None and type(cur).__name__ == call.class_name:
        return cur
    for lyr in ki.flatten_layers(model):
        if lyr.name == call.name and type(lyr).__name__ == call.class_name:
            return lyr
    return None


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    key: str  # "embedding" or "input:token_ids"
    kind: str
    mask: np.ndarray  # the source's mask for the probe rows (any rank >= 2)
    mask_input: str | None = None
    layer: Any = None
    call: Any = None
    align_key: tuple[str, int] = ("", 0)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keep2(self) -> np.ndarray:
        """(batch, time): a step is kept when any of its positions is."""
        m = self.mask.astype(bool)
        return m if m.ndim == 2 else m.reshape(m.shape[:2] + (-1,)).any(axis=-1)


def _find_sources(
    model: Any, probe: Any, trace: Any, graph: _Graph, skipped: list[tuple[str, str]]
) -> list[_Source]:
    sources: list[_Source] = []
    by_id = trace.by_id()
    generators = [
        c
        for c in trace.calls
        if c.role == "generator" and c.id in graph.comparable and c.output_masked
    ]
    gen_ids = {c.id for c in generators}
    for c in generators:
        # A container that makes a mask because a layer inside it does: perturb
        # the inner generator.
        if any(_descends(by_id, g, c.id) for g in gen_ids if g != c.id):
            continue
        what = f"`{c.path}` ({c.class_name})"
        vals = trace.values.get(c.id) or ()
        masks = trace.masks.get(c.id) or ()
        if len(vals) != 1:
            skipped.append((c.id, f"{what} has {len(vals)} outputs; only one is perturbed"))
            continue
        v = vals[0]
        m = masks[0] if masks else None
        if v is None or m is None:
            skipped.append((c.id, f"{what}: its output or mask has no values"))
            continue
        m = np.asarray(m).astype(bool)
        if m.ndim < 2 or tuple(m.shape) != tuple(v.shape[: m.ndim]):
            skipped.append(
                (
                    c.id,
                    f"{what}: its mask {tuple(m.shape)} is not the leading axes of its "
                    f"output {tuple(v.shape)} (see MV103/MV104)",
                )
            )
            continue
        if not np.issubdtype(v.dtype, np.floating):
            skipped.append((c.id, f"{what}: its output is {v.dtype}, not floating point"))
            continue
        if m.all():
            skipped.append((c.id, f"{what}: the probe masks no position here"))
            continue
        if _emits_zeros(probe, c, v, m):
            skipped.append(
                (
                    c.id,
                    f"{what} emits exact zeros at every padded step of a padded float input "
                    "(the padding can only be `mask_value`, or the step is not padding): no "
                    "padding value can change there, so the values invariance holds by "
                    "construction; the length, side and truncation invariances check it",
                )
            )
            continue
        layer = _layer_for(model, c)
        if layer is None:
            skipped.append((c.id, f"{what}: its layer could not be found in the model"))
            continue
        sources.append(
            _Source(key=c.id, kind="generator", mask=m, layer=layer, call=c, align_key=(c.id, 0))
        )
    for inp in probe.inputs:
        if inp.kind != "mask":
            continue
        if not inp.pairs_with:
            skipped.append(
                (
                    f"input:{inp.name}",
                    f"explicit mask input `{inp.name}` is paired with no data input; pass "
                    f"`mask_inputs={{'{inp.name}': 'DATA_INPUT'}}`",
                )
            )
            continue
        m = np.asarray(probe.values[inp.name]).astype(bool)
        d = np.asarray(probe.values[inp.pairs_with])
        if m.ndim != 2 or tuple(d.shape[:2]) != tuple(m.shape):
            skipped.append(
                (
                    f"input:{inp.pairs_with}",
                    f"mask input `{inp.name}` {tuple(m.shape)} does not cover the leading "
                    f"axes of `{inp.pairs_with}` {tuple(d.shape)}",
                )
            )
            continue
        if m.all():
            skipped.append((f"input:{inp.pairs_with}", f"`{inp.name}` masks no position"))
            continue
        sources.append(
            _Source(
                key=f"input:{inp.pairs_with}",
                kind="explicit-mask",
                mask=m,
                mask_input=inp.name,
                align_key=(f"input:{inp.pairs_with}", 0),
            )
        )
    return sources


def _emits_zeros(probe: Any, call: Any, value: np.ndarray, mask: np.ndarray) -> bool:
    """The generator reads a padded float model input and its output is exactly 0 at
    every masked position (observed), as `Masking` makes it."""
    kinds = {i.name: i.kind for i in probe.inputs}
    fed = [
        t.source[len("input:") :] for t in call.inputs if t.source and t.source.startswith("input:")
    ]
    if not fed or any(kinds.get(n) != "masked-floats" for n in fed):
        return False
    off = ~np.broadcast_to(_expand(mask, value.ndim), value.shape)
    return bool(off.any()) and bool(np.all(value[off] == 0))


def _descends(by_id: Mapping[str, Any], cid: str, ancestor: str) -> bool:
    cur = by_id.get(cid)
    while cur is not None and cur.parent:
        if cur.parent == ancestor:
            return True
        cur = by_id.get(cur.parent)
    return False


# --------------------------------------------------------------------------- perturbation


def _noise_like(v: np.ndarray, keep: np.ndarray, shape: tuple, rng: np.random.Generator):
    """Noise of `v`'s own scale (mean and std of its kept values)."""
    kept = v[np.broadcast_to(keep, v.shape)] if keep is not None else v.reshape(-1)
    kept = kept[np.isfinite(kept)] if kept.size else kept
    mean = float(kept.mean()) if kept.size else 0.0
    std = float(kept.std()) if kept.size else 1.0
    if not np.isfinite(std) or std == 0.0:
        std = max(abs(mean), 1.0)
    return (mean + std * rng.standard_normal(shape)).astype(v.dtype)


def _expand(m: np.ndarray, ndim: int) -> np.ndarray:
    return m.reshape(m.shape + (1,) * (ndim - m.ndim))


def _other_ids(base: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Token ids drawn from `pool`, each different from `base` where the pool allows."""
    idx = rng.integers(0, len(pool), size=base.shape)
    out = pool[idx]
    if len(pool) > 1:
        same = out == base
        out = np.where(same, pool[(idx + 1) % len(pool)], out)
    return out.astype(base.dtype)


def _padding_rows(inp: Any, v: np.ndarray, keep: np.ndarray | None, n: int) -> np.ndarray:
    """`n` rows in which input `inp` is all padding (or a copy of row 0 when it has
    no padding pattern)."""
    shape = (n,) + v.shape[1:]
    if keep is None or v.ndim < 2:
        return np.repeat(v[:1], n, axis=0)
    if inp.kind in ("tokens", "mask"):
        return np.zeros(shape, dtype=v.dtype)
    pads = np.argwhere(~keep.astype(bool))
    if inp.kind == "masked-floats" and len(pads):
        r, t = pads[0]
        step = v[r, t]
        return np.broadcast_to(step, shape).astype(v.dtype).copy()
    return np.repeat(v[:1], n, axis=0)


def _perturbed_feed(
    probe: Any, src: _Source, rng: np.random.Generator, extra: int
) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for inp in probe.inputs:
        v = np.asarray(probe.values[inp.name])
        if extra:
            pad = _padding_rows(inp, v, probe.keep.get(inp.name), extra)
            v = np.concatenate([v, pad], axis=0)
        values[inp.name] = v
    if src.kind == "explicit-mask":
        name = src.key[len("input:") :]
        base = np.asarray(probe.values[name])
        b = base.shape[0]
        off = np.concatenate([~src.mask, np.ones((extra,) + src.mask.shape[1:], bool)])
        off = np.broadcast_to(_expand(off, base.ndim), (b + extra,) + base.shape[1:])
        full = values[name].copy()  # the appended rows are perturbed everywhere
        if np.issubdtype(base.dtype, np.integer) or base.dtype == bool:
            kept = base[np.broadcast_to(_expand(src.mask, base.ndim), base.shape)]
            pool = np.unique(kept)
            if pool.size == 0:
                pool = np.unique(base)
            noise = _other_ids(full, pool, rng)
        else:
            noise = _noise_like(base, _expand(src.mask, base.ndim), full.shape, rng)
        values[name] = np.where(off, noise, full).astype(base.dtype)
        if extra and src.mask_input:
            mi = values[src.mask_input]
            mi[b:] = 0
    return values


def _generator_wrapper(src: _Source, rng: np.random.Generator, extra: int):
    """A factory for `patched_instance_calls`: the generator's `call`, with the values
    at masked positions replaced by noise and the same mask re-attached.

    The mask is the one the layer makes for these inputs (attached by its `call`,
    or its `compute_mask`), so the appended fully-padded rows get the mask the
    layer really makes for them. Functional models replay `compute_mask` from the
    generator's inputs to deliver masks, so a mask forced from outside would not
    reach the consumers anyway.
    """
    import keras

    from .. import _keras_internals as ki

    base = np.asarray(src.extra["value"])
    b = base.shape[0]
    noise = _noise_like(base, _expand(src.mask, base.ndim), (b + extra,) + base.shape[1:], rng)
    state = {"count": 0, "done": False}
    target = src.call.call_index

    def factory(layer, original):
        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            k = state["count"]
            state["count"] += 1
            if k != target or not ki.is_tensor(out) or ki.is_symbolic(out):
                return out
            n = int(out.shape[0])
            if n > noise.shape[0] or tuple(out.shape[1:]) != tuple(base.shape[1:]):
                return out
            mask = ki.get_mask(out)
            if mask is None:
                first = args[0] if args else next(iter(kwargs.values()), None)
                mask = layer.compute_mask(first, kwargs.get("mask"))
            if mask is None or isinstance(mask, (list, tuple, dict)):
                return out
            m = np.asarray(keras.ops.convert_to_numpy(mask)).astype(bool)
            if m.ndim > base.ndim or tuple(m.shape) != (n,) + tuple(base.shape[1 : m.ndim]):
                return out
            keep = np.broadcast_to(_expand(m, base.ndim), (n,) + base.shape[1:])
            new = keras.ops.where(
                keras.ops.convert_to_tensor(keep), out, keras.ops.cast(noise[:n], out.dtype)
            )
            ki.set_mask(new, mask)
            state["done"] = True
            return new

        return call

    return factory, state


# --------------------------------------------------------------------------- comparison


def _aligned(trace: Any, src: _Source) -> set[tuple[str, int]]:
    """Outputs still aligned with the source's (batch, time) axes."""
    bt = tuple(src.mask.shape[:2])
    aligned = {src.align_key}
    has_aligned_input: set[str] = set()
    for c in trace.calls:
        ins = []
        for t in c.inputs:
            key = (t.source, t.source_index)
            if key in aligned:
                ins.append(t)
            elif t.source is None and c.parent in has_aligned_input and tuple(t.shape[:2]) == bt:
                ins.append(t)
        if not ins:
            continue
        has_aligned_input.add(c.id)
        for i, o in enumerate(c.outputs):
            for t in ins:
                per_step = int(np.prod([d or 1 for d in t.shape[2:]])) if len(t.shape) > 2 else 1
                if tuple(o.shape[:2]) == tuple(t.shape[:2]) and (
                    len(o.shape) >= 3 or per_step <= 1
                ):
                    aligned.add((c.id, i))
                    break
    return aligned


def _positions(
    shape: tuple, mask: Any, aligned: bool, keep2: np.ndarray, resample: bool = False
) -> tuple[np.ndarray | None, str]:
    """Which positions of an output are compared: (bool array or None for all, label)."""
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        if 1 <= m.ndim <= len(shape) and tuple(m.shape) == tuple(shape[: m.ndim]):
            return np.broadcast_to(_expand(m, len(shape)), shape), "mask"
    if aligned and len(shape) >= 2 and tuple(shape[:2]) == tuple(keep2.shape):
        return np.broadcast_to(_expand(keep2, len(shape)), shape), "source-keep"
    if (
        resample
        and len(shape) >= 3
        and keep2.ndim == 2
        and shape[0] == keep2.shape[0]
        and 1 <= shape[1] < keep2.shape[1]
    ):
        real = _resampled_keep(keep2, int(shape[1]))
        return np.broadcast_to(_expand(real, len(shape)), shape), "resampled"
    return None, "whole"


def _resampled_keep(keep2: np.ndarray, length: int) -> np.ndarray:
    """(batch, length): the steps of a time axis shortened from T to `length` (pooling,
    a `valid` or strided convolution) made of real input steps only.

    The window is read off the two lengths: stride `s = round(T / length)`, width
    `w = T - (length - 1) * s` (at least `s`), so step `j` covers input steps
    `[j*s, j*s + w)`. Rows padded on the right keep the steps whose window lies in
    their real prefix; unpadded rows keep every step; other rows (left-padded, gaps)
    none: their resampled steps do not line up with real input. The truncated row
    would produce exactly these steps for pooling and `valid` convolutions; for a
    stack of them the estimate keeps fewer steps, never a step with padding in it.
    """
    b, t = keep2.shape
    s = max(1, int(round(t / length)))
    w = max(s, t - (length - 1) * s)
    out = np.zeros((b, length), bool)
    for r in range(b):
        n = int(keep2[r].sum())
        if n == t:
            out[r] = True
        elif n and keep2[r, :n].all():
            count = max(0, (n - w) // s + 1)
            out[r, : min(count, length)] = True
    return out


def _diff(a: np.ndarray, b: np.ndarray, where: np.ndarray | None):
    """(max |a-b|, max |a|, per-row max |a-b|, number of differing values) over
    `where`; NaN equal to NaN; a NaN against a number is an infinite change."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype == bool:
        a, b = a.astype(np.int8), b.astype(np.int8)
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    d = np.abs(a64 - b64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    d = np.where(both_nan, 0.0, d)
    d = np.where(np.isnan(d), np.inf, d)
    if where is not None:
        d = np.where(where, d, 0.0)
        mag = np.where(where & np.isfinite(a64), np.abs(a64), 0.0)
    else:
        mag = np.where(np.isfinite(a64), np.abs(a64), 0.0)
    if d.size == 0:
        return 0.0, 0.0, np.zeros(a.shape[:1]), d
    per_row = d.reshape(d.shape[0], -1).max(axis=1) if d.ndim else np.array([float(d)])
    return float(d.max()), float(mag.max()), per_row, d


def _compare_calls(
    trace: Any,
    pert: Any,
    graph: _Graph,
    src: _Source,
    aligned: set[tuple[str, int]],
    batch: int,
) -> dict[tuple[str, int], CallChange]:
    """Every (call, output) whose compared positions changed in the probe rows."""
    keep2 = src.keep2
    changes: dict[tuple[str, int], CallChange] = {}
    for cid in sorted(graph.comparable, key=graph.order.get):
        base = trace.values.get(cid) or ()
        new = pert.values.get(cid) or ()
        masks = trace.masks.get(cid) or ()
        for i, (b, p) in enumerate(zip(base, new)):
            if b is None or p is None or b.ndim == 0 or p.shape[0] < batch:
                continue
            p = p[:batch]
            if p.shape != b.shape or not (np.issubdtype(b.dtype, np.number) or b.dtype == bool):
                continue
            where, how = _positions(
                b.shape,
                masks[i] if i < len(masks) else None,
                (cid, i) in aligned,
                keep2,
                resample=True,
            )
            max_abs, scale, per_row, _ = _diff(b, p, where)
            tol = ATOL + RTOL * scale
            if max_abs > tol:
                rows = tuple(int(r) for r in np.nonzero(per_row > tol)[0])
                rel = max_abs / scale if scale > 0 else float("inf")
                changes[(cid, i)] = CallChange(cid, i, rel, max_abs, scale, how, rows)
    return changes


def _first_calls(
    graph: _Graph, bad: set[str], bad_outputs: Iterable[tuple[str, str, int]]
) -> list[tuple[str, list[tuple[str, tuple[str, ...]]]]]:
    """The first calls of `bad` on chains of `bad` calls reaching a bad output, each
    with the outputs it reaches and the path to each."""
    targets: dict[str, list[str]] = {}
    for name, cid, _ in bad_outputs:
        targets.setdefault(cid, []).append(name)
    # Calls in `bad` connected (through `bad`) to a bad output.
    connected: set[str] = set()
    stack = [c for c in targets if c in bad]
    while stack:
        cur = stack.pop()
        if cur in connected:
            continue
        connected.add(cur)
        stack.extend(u for u in graph.upstream.get(cur, ()) if u in bad and u not in connected)
    firsts = [c for c in connected if not any(u in bad for u in graph.upstream.get(c, ()))]
    out = []
    for f in sorted(firsts, key=graph.order.get):
        # Breadth first along bad calls: shortest path to each output.
        prev = {f: None}
        queue = [f]
        while queue:
            cur = queue.pop(0)
            for d in sorted(graph.downstream.get(cur, ()), key=graph.order.get):
                if d in connected and d not in prev:
                    prev[d] = cur
                    queue.append(d)
        reached = []
        for cid in sorted(targets, key=graph.order.get):
            if cid in prev:
                path = []
                cur = cid
                while cur is not None:
                    path.append(cur)
                    cur = prev[cur]
                for name in targets[cid]:
                    reached.append((name, tuple(reversed(path))))
        out.append((f, reached))
    return out


def _owner(by_id: dict[str, Any], call_id: str, changed: set[str]) -> str:
    """A leak inside a layer with code of its own (MultiHeadAttention, Bidirectional,
    a keras-hub block) is that layer's: its sublayers may be compared on the wrong
    axes (an attention output runs along the query, not the value), and the layer
    is what the user wrote. Inside nested Functional models the inner call stays."""
    cur = by_id.get(call_id)
    owner = call_id
    while cur is not None and cur.parent:
        parent = by_id.get(cur.parent)
        if parent is None or parent.is_functional:
            break
        if parent.id in changed:
            owner = parent.id
        cur = parent
    return owner


def _row_layouts(keep2: np.ndarray) -> tuple[str, ...]:
    out = []
    for row in keep2.astype(bool):
        n = int(row.sum())
        if n == len(row):
            out.append("unpadded")
        elif n == 0:
            out.append("empty")
        elif row[:n].all():
            out.append("right-padded")
        elif row[len(row) - n :].all():
            out.append("left-padded")
        else:
            out.append("other")
    return tuple(out)


def _fully_masked(
    trace: Any,
    pert: Any,
    graph: _Graph,
    src: _Source,
    aligned: set[tuple[str, int]],
    batch: int,
) -> tuple[dict[str, int], dict[str, tuple[int, float]], set, set]:
    """Compares the two fully masked rows appended after the probe rows.

    Returns per call: non-finite counts; (differing count, relative change) for the
    two rows; and the bad output keys for each kind.
    """
    nonfinite: dict[str, int] = {}
    nonneutral: dict[str, tuple[int, float]] = {}
    empty_keep = np.zeros((2,) + src.keep2.shape[1:], bool)
    bad_nf: set[tuple[str, int]] = set()
    bad_nn: set[tuple[str, int]] = set()
    for cid in graph.comparable:
        new = pert.values.get(cid) or ()
        masks = pert.masks.get(cid) or ()
        for i, p in enumerate(new):
            if p is None or p.ndim == 0 or p.shape[0] < batch + 2:
                continue
            e = p[batch : batch + 2]
            if np.issubdtype(e.dtype, np.floating):
                n_bad = int((~np.isfinite(e)).sum())
                if n_bad:
                    nonfinite[cid] = nonfinite.get(cid, 0) + n_bad
                    bad_nf.add((cid, i))
            if not (np.issubdtype(e.dtype, np.number) or e.dtype == bool):
                continue
            m = masks[i] if i < len(masks) else None
            m = None if m is None else np.asarray(m)[batch : batch + 2]
            where, _ = _positions(e.shape, m, (cid, i) in aligned, empty_keep)
            e1, e2 = e[:1], e[1:]
            w = None if where is None else where[:1]
            a = np.where(np.isfinite(e1), e1, 0) if e1.dtype.kind == "f" else e1
            b = np.where(np.isfinite(e2), e2, 0) if e2.dtype.kind == "f" else e2
            max_abs, _, _, d = _diff(a, b, w)
            scale = max(
                float(np.abs(a if w is None else np.where(w, a, 0)).max(initial=0.0)),
                float(np.abs(b if w is None else np.where(w, b, 0)).max(initial=0.0)),
            )
            tol = ATOL + RTOL * scale
            if max_abs > tol:
                count = int((d > tol).sum())
                prev = nonneutral.get(cid, (0, 0.0))
                rel = max_abs / scale if scale > 0 else float("inf")
                nonneutral[cid] = (prev[0] + count, max(prev[1], rel))
                bad_nn.add((cid, i))
    return nonfinite, nonneutral, bad_nf, bad_nn


# --------------------------------------------------------------------------- driver


def run_oracle(model: Any, probe: Any, trace: Any, *, seed: int = 0) -> OracleResult:
    """Perturbs each mask source's padded values and reports where padding leaks.

    Args:
        model: the Keras model the trace came from (left exactly as it was).
        probe: the probe (or `--data`) the trace ran on.
        trace: the baseline trace; its `values` and `masks` are the baseline.
        seed: seed of the noise.

    Returns:
        An `OracleResult`: per source, the calls that changed, the first leaking
        calls and the outputs they reach; the fully-masked-sample check; and why
        anything was skipped.
    """
    from .. import _keras_internals as ki
    from ..trace import run_trace

    skipped: list[tuple[str, str]] = []
    if trace.error:
        return OracleResult((), (("model", f"the probe run failed: {trace.error}"),), seed=seed)
    graph = _build_graph(trace, model)
    sources = _find_sources(model, probe, trace, graph, skipped)
    if not sources and not skipped:
        skipped.append(("model", "no mask source: no layer makes a mask, no explicit mask input"))
    results: list[SourceResult] = []
    runs = 0
    batch = _batch(probe)
    for k, src in enumerate(sources):
        if src.kind == "generator":
            src.extra = {"value": np.asarray(trace.values[src.key][0])}
        pert = None
        extra_used = 0
        for extra in (EXTRA_ROWS, 0):
            rng = np.random.default_rng([seed, k, extra])
            values = _perturbed_feed(probe, src, rng, extra)
            runs += 1
            if src.kind == "generator":
                factory, state = _generator_wrapper(src, rng, extra)
                with ki.patched_instance_calls([src.layer], factory):
                    pert = run_trace(model, probe.inputs, probe.feed(values))
                if not state["done"] and pert.error is None:
                    pert = None
                    skipped.append((src.key, f"`{src.call.path}` was not called as traced"))
                    break
            else:
                pert = run_trace(model, probe.inputs, probe.feed(values))
            if pert.error is None:
                extra_used = extra
                break
            if extra:
                skipped.append(
                    (
                        f"{src.key}:fully-masked",
                        f"the model did not run on {batch + extra} rows ({pert.error}); "
                        "the fully-masked-sample check was skipped",
                    )
                )
            else:
                skipped.append((src.key, f"the perturbed run failed: {pert.error}"))
                pert = None
        if pert is None or pert.error is not None:
            continue
        if src.kind == "generator":
            got = (pert.masks.get(src.key) or (None,))[0]
            if got is None or not np.array_equal(np.asarray(got)[:batch].astype(bool), src.mask):
                skipped.append(
                    (src.key, f"perturbing `{src.call.path}` changed its mask; not compared")
                )
                continue
        results.append(_analyse(trace, pert, graph, src, batch, extra_used, skipped))
    return OracleResult(sources=tuple(results), skipped=tuple(skipped), seed=seed, runs=runs)


def _batch(probe: Any) -> int:
    for v in probe.values.values():
        v = np.asarray(v)
        if v.ndim:
            return int(v.shape[0])
    return 0


def _fully_masked_ok(
    pert: Any, src: _Source, batch: int, extra: int, skipped: list[tuple[str, str]]
) -> int:
    """Whether the appended rows are fully masked at the source (0 if not)."""
    if src.kind != "generator":
        return extra
    got = (pert.masks.get(src.key) or (None,))[0]
    if got is not None and not np.asarray(got)[batch:].astype(bool).any():
        return extra
    skipped.append(
        (
            f"{src.key}:fully-masked",
            f"`{src.call.path}` did not mask every step of the all-padding rows (its "
            "input is computed by the model, not a padded model input); the "
            "fully-masked-sample check was skipped for it",
        )
    )
    return 0


def _analyse(
    trace: Any,
    pert: Any,
    graph: _Graph,
    src: _Source,
    batch: int,
    extra: int,
    skipped: list[tuple[str, str]],
) -> SourceResult:
    aligned = _aligned(trace, src)
    changes = _compare_calls(trace, pert, graph, src, aligned, batch)
    changed_calls = {cid for cid, _ in changes}
    bad_outputs = [(n, c, i) for n, c, i in graph.output_keys if (c, i) in changes]
    layouts = _row_layouts(src.keep2)
    leaks = []
    by_id = trace.by_id()
    seen: set[str] = set()
    for f, reached in _first_calls(graph, changed_calls, bad_outputs):
        f = _owner(by_id, f, changed_calls)
        if f in seen:
            continue
        seen.add(f)
        mine = [ch for (cid, _), ch in changes.items() if cid == f]
        # The rows that matter are those where the reached outputs change too (a
        # leak can travel through padded steps into rows its first call keeps clean).
        names = {n for n, _ in reached}
        out_rows = {r for n, c, i in bad_outputs if n in names for r in changes[(c, i)].rows}
        rows = tuple(sorted({r for ch in mine for r in ch.rows} | out_rows))
        leaks.append(
            Leak(
                call_id=f,
                change=max(ch.change for ch in mine),
                rows=rows,
                layouts=tuple(sorted({layouts[r] for r in rows if r < len(layouts)})),
                outputs=tuple(n for n, _ in reached),
                paths=tuple(p[p.index(f) :] if f in p else p for _, p in reached),
            )
        )
    reached_outputs = _reached(trace, graph, src)
    issues: list[FullyMaskedIssue] = []
    if extra:
        extra = _fully_masked_ok(pert, src, batch, extra, skipped)
    if extra:
        nonfinite, nonneutral, bad_nf, bad_nn = _fully_masked(
            trace, pert, graph, src, aligned, batch
        )
        nf_outputs = [(n, c, i) for n, c, i in graph.output_keys if (c, i) in bad_nf]
        owned: set[str] = set()
        for f, reached in _first_calls(graph, set(nonfinite), nf_outputs):
            count = nonfinite[f]
            f = _owner(by_id, f, set(nonfinite))
            if f in owned:
                continue
            owned.add(f)
            issues.append(FullyMaskedIssue(f, "nonfinite", tuple(n for n, _ in reached), count))
        nn_outputs = [(n, c, i) for n, c, i in graph.output_keys if (c, i) in bad_nn]
        # A leak of this source already explains what happens downstream of it
        # (Conv1D drops the mask, so the LSTM after it reads padding even when
        # every step is padding): only report non-neutral calls it does not reach.
        explained = _downstream_closure(graph, {lk.call_id for lk in leaks})
        for f, reached in _first_calls(graph, set(nonneutral), nn_outputs):
            count, rel = nonneutral[f]
            f = _owner(by_id, f, set(nonneutral))
            if f in explained or f in nonfinite or f in owned:
                continue  # already reported as a leak / as non-finite
            owned.add(f)
            issues.append(
                FullyMaskedIssue(f, "non-neutral", tuple(n for n, _ in reached), count, rel)
            )
    return SourceResult(
        source=src.key,
        kind=src.kind,
        mask_input=src.mask_input,
        masked_positions=int((~src.keep2).sum()),
        row_layouts=layouts,
        outputs_reached=reached_outputs,
        outputs_changed=tuple(n for n, _, _ in bad_outputs),
        changed=tuple(
            sorted(changes.values(), key=lambda c: (graph.order[c.call_id], c.output_index))
        ),
        leaks=tuple(leaks),
        fully_masked_checked=bool(extra),
        fully_masked=tuple(issues),
    )


def _downstream_closure(graph: _Graph, start: set[str]) -> set[str]:
    seen = set(start)
    stack = list(start)
    while stack:
        for d in graph.downstream.get(stack.pop(), ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def _reached(trace: Any, graph: _Graph, src: _Source) -> tuple[str, ...]:
    """Model outputs downstream of the source."""
    if src.kind == "generator":
        start = {src.key}
    else:
        start = {
            c.id
            for c in trace.calls
            if c.id in graph.comparable and any(t.source == src.key for t in c.inputs)
        }
    seen = set(start)
    stack = list(start)
    while stack:
        cur = stack.pop()
        for d in graph.downstream.get(cur, ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return tuple(n for n, c, _ in graph.output_keys if c in seen)


def summarize(result: OracleResult) -> str:
    """A few lines of text: per source, the first leaking calls and what they reach."""
    lines = []
    for s in result.sources:
        head = f"{s.source} ({s.kind}, {s.masked_positions} padded steps)"
        if not s.leaks:
            lines.append(f"{head}: no leak; outputs {', '.join(s.outputs_reached) or '-'} clean")
        for lk in s.leaks:
            lines.append(
                f"{head}: LEAK at {lk.call_id} (change {lk.change:.3g}, rows "
                f"{list(lk.rows)} {'/'.join(lk.layouts)}) -> "
                + "; ".join(" -> ".join(p) for p in lk.paths)
            )
        for i in s.fully_masked:
            lines.append(
                f"{head}: fully masked sample: {i.kind} at {i.call_id} -> {', '.join(i.outputs)}"
            )
    for what, why in result.skipped:
        lines.append(f"skipped {what}: {why}")
    return "\n".join(lines)
