"""The values oracle's mask sources and the graph it compares along."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def _expand(m: np.ndarray, ndim: int) -> np.ndarray:
    return m.reshape(m.shape + (1,) * (ndim - m.ndim))
