"""What the values oracle compares, and where a change appears first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .results import ATOL, RTOL, CallChange
from .sources import _expand, _Graph, _Source

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
