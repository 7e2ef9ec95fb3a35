"""What rules ask of a trace, written once: formatting, masks and tensors, the calls
around a call, and what the oracle measured.

Graph questions (who is inside whom, who consumes what, what lies downstream) go
through `ctx.graph`, the trace's `maskviz.callgraph.CallGraph`. The walks back along
one input (who made the mask a tensor carries) follow a chosen input of each call,
which the call graph does not record, and live here.

This module imports no Keras at import time (`maskviz explain` imports the rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..findings import Severity

if TYPE_CHECKING:
    from . import Context

# --------------------------------------------------------------------------- text


def fmt_shape(s: tuple) -> str:
    """`(None, 5)`, `(3,)`: a shape as Python prints a tuple, `None` for unknown axes."""
    dims = ", ".join("None" if d is None else str(d) for d in s)
    return f"({dims}{',' if len(s) == 1 else ''})"


def fmt_mask(t: Any) -> str:
    """`no mask` or `mask (batch, time)` for a tensor."""
    return "no mask" if t is None or t.mask is None else f"mask {fmt_shape(t.mask.shape)}"


def fmt_tensor(t: Any) -> str:
    """`(batch, time, d) with mask (batch, time)`, or `?` for no tensor."""
    if t is None:
        return "?"
    return f"{fmt_shape(t.shape)} with {fmt_mask(t)}"


def fmt_pct(x: float) -> str:
    """A relative change as a percentage (`inf` for NaN or infinity)."""
    if x != x or x == float("inf"):
        return "inf"
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1e}"


def fmt_change(change: float, max_abs: float | None = None) -> str:
    """`by up to 12% of its scale (max |change| 0.6)`, or `to NaN or infinity`."""
    if change != change or change == float("inf"):
        return "to NaN or infinity"
    size = f"by up to {fmt_pct(change)} of its scale"
    return size + (f" (max |change| {max_abs:.3g})" if max_abs is not None else "")


def fmt_rows(rows: tuple[int, ...], layouts: tuple[str, ...]) -> str:
    """`rows 1, 2 (left-padded, right-padded)`."""
    return f"row{'s' if len(rows) != 1 else ''} {', '.join(map(str, rows))} ({', '.join(layouts)})"


def call_label(call: Any) -> str:
    """`` `path` (Class) ``, or `` `path` (Class op) `` for a `keras.ops` call."""
    op = " op" if getattr(call, "kind", "layer") == "op" else ""
    return f"`{call.path}` ({call.class_name}{op})"


def mask_origin(maker: str | None, call: Any, *, verb: str = "was made by") -> str:
    """` Received: the mask was made by `maker`.` and ` The call failed: ...` (each
    when known), to end a message about a mask at `call`."""
    return (f" Received: the mask {verb} `{maker}`." if maker else "") + (
        f" The call failed: {call.error}" if call.error else ""
    )


def input_label(source: str) -> str:
    """`model input NAME` for an `input:NAME` source, else the source itself."""
    return f"model input {source[6:]}" if source.startswith("input:") else source


def source_path(ctx: Context, source: str | None) -> str | None:
    """Where a tensor comes from, in plain words: `model input NAME`, a call's path,
    or the raw source; `None` for no source."""
    if not source:
        return None
    if source.startswith("input:"):
        return input_label(source)
    call = ctx.trace.by_id().get(source)
    return call.path if call is not None else source


def source_label(ctx: Context, key: str) -> str:
    """Where a tensor comes from, quoted: ``input `NAME` `` or `` `path` (Class) ``."""
    if key.startswith("input:"):
        return f"input `{key[len('input:') :]}`"
    try:
        c = ctx.trace.call(key)
    except KeyError:
        return f"`{key}`"
    return f"`{c.path}` ({c.class_name})"


# --------------------------------------------------------------------------- calls


def seq_input(call: Any) -> Any:
    """The call's first input that is not a mask argument (its sequence), or `None`."""
    for t in call.inputs:
        if t.arg != "mask" and not t.arg.startswith("mask["):
            return t
    return None


def keeps_time(call: Any) -> bool:
    """The call's first output still has the (batch, time) axes of its input."""
    seq = seq_input(call)
    if seq is None or not call.outputs or len(seq.shape) < 2:
        return False
    out = call.outputs[0]
    return len(out.shape) == len(seq.shape) and tuple(out.shape[:2]) == tuple(seq.shape[:2])


def owns_mask(call: Any) -> bool:
    """A layer whose own code takes the mask (`call(..., mask=None)`), not a model whose
    masks flow through its graph."""
    return call.call_accepts_mask and not call.is_functional


def container_of(ctx: Context, call: Any) -> Any:
    """The call `call` runs inside, or `None`."""
    parent = ctx.graph.container(call.id)
    return ctx.graph.record(parent) if parent is not None else None


def owned_by_parent(ctx: Context, call: Any) -> bool:
    """`call` runs inside a layer that takes the mask itself (an RNN and its cell,
    MultiHeadAttention, Bidirectional, a keras-hub block)."""
    parent = container_of(ctx, call)
    return parent is not None and owns_mask(parent)


def inner_calls(ctx: Context, call: Any) -> list[Any]:
    """The calls directly inside `call`, in trace order."""
    return [ctx.graph.record(i) for i in ctx.graph.children(call.id)]


def calls_downstream(ctx: Context, call: Any) -> list[Any]:
    """Every call that depends on `call`'s outputs, nearest first (see
    `CallGraph.downstream`: a container that restored the mask itself is not reached
    from inside it)."""
    return [ctx.graph.record(i) for i in ctx.graph.downstream(call.id)]


def not_delivered(call: Any, seq: Any) -> bool:
    """The call takes a mask, its sequence carried one, and `call` got none (MV102)."""
    return (
        call.call_accepts_mask
        and not call.received
        and not call.explicit_mask
        and seq is not None
        and seq.mask is not None
    )


def keras_builtin(ctx: Context, call: Any) -> str | None:
    """The installed Keras's version when `call`'s layer is one of Keras's own classes
    (its code is not the user's to edit), else `None`. Chooses advice, never a verdict."""
    if ctx.model is None:
        return None
    from .. import _keras_internals as ki

    layer = ctx.model
    for part in call.path.split("/"):
        layer = next((s for s in ki.direct_sublayers(layer) if s.name == part), None)
        if layer is None:
            return None
    module = type(layer).__module__ or ""
    if module == "keras" or module.startswith(("keras.", "keras_hub.")):
        return ctx.trace.keras_version
    return None


def _up_seq(ctx: Context, start: Any, pick: Callable[[Any], Any]) -> Iterator[Any]:
    """The calls met going back from the producer of `start` along the input `pick`
    chooses of each call (at most one visit per call of the trace)."""
    by_id = ctx.trace.by_id()
    cur = by_id.get(start.source) if start is not None and start.source else None
    for _ in range(len(by_id)):
        if cur is None:
            return
        yield cur
        t = pick(cur)
        cur = by_id.get(t.source) if t is not None and t.source else None


def mask_source(ctx: Context, t: Any) -> str | None:
    """The path of the call that made or changed the mask `t` carries, going back
    along sequence inputs; `None` when the chain leaves the traced calls."""
    for cur in _up_seq(ctx, t, seq_input):
        if cur.role in ("generator", "modifier") or not cur.input_masked:
            return cur.path
    return None


def upstream_dropper(ctx: Context, call: Any) -> Any:
    """The nearest call upstream (along sequence inputs) that received a mask and
    returned none."""
    return next(
        (c for c in _up_seq(ctx, seq_input(call), seq_input) if c.role == "destroyer"), None
    )


def mask_maker(ctx: Context, t: Any) -> str | None:
    """The call that made the mask `t` carries: its producer if it changed or made
    the mask, else further up the chain of calls that passed it on."""
    by_id = ctx.trace.by_id()
    cur = by_id.get(t.source) if t.source else None
    if cur is None:
        return source_path(ctx, t.source)
    for _ in range(len(by_id)):
        if cur.role in ("generator", "modifier") or not cur.input_masked:
            return cur.path
        seq = next((i for i in cur.inputs if i.mask is not None), None)
        nxt = by_id.get(seq.source) if seq is not None and seq.source else None
        if nxt is None:
            return cur.path
        cur = nxt
    return None


# --------------------------------------------------------------------------- shapes


def dim_ok(m: int | None, d: int | None) -> bool:
    """A mask axis fits a tensor axis: equal, unknown, or 1 (broadcast)."""
    return m is None or d is None or m == d or m == 1


def leading_fit(mask_shape: tuple, shape: tuple) -> bool:
    """The mask lines up with the tensor's leading axes (size-1 mask axes broadcast)."""
    return len(mask_shape) <= len(shape) and all(dim_ok(m, d) for m, d in zip(mask_shape, shape))


def trailing_fit(small: tuple, shape: tuple) -> bool:
    """NumPy broadcasting: `small` lines up with the trailing axes of `shape`."""
    if len(small) > len(shape):
        return False
    tail = shape[len(shape) - len(small) :]
    return all(m is None or d is None or m == d or m == 1 or d == 1 for m, d in zip(small, tail))


def broadcastable(mask_shape: tuple, shape: tuple) -> bool:
    """A mask of 1s on some axes (an attention mask `(batch, 1, 1, keys)`) broadcasts
    against its tensor: it is not misaligned."""
    if len(mask_shape) > len(shape) or 1 not in mask_shape[1:]:
        return False
    return all(m in (None, 1, d) for m, d in zip(mask_shape, shape))


def time_axis_mismatch(mask_shape: tuple, shape: tuple) -> tuple[int, int] | None:
    """(mask steps, tensor steps) when both are known and differ (a mask axis of 1
    broadcasts), else `None`."""
    if len(mask_shape) >= 2 and len(shape) >= 2:
        m, d = mask_shape[1], shape[1]
        if m is not None and d is not None and m != d and m != 1:
            return m, d
    return None


def mask_fits(mask_shape: tuple, shape: tuple) -> bool:
    """A mask fits its tensor: the tensor's leading axes, the same number of steps."""
    return leading_fit(mask_shape, shape) and time_axis_mismatch(mask_shape, shape) is None


def misfit_origin(ctx: Context, t: Any) -> str | None:
    """The call where the mask `t` carries stopped fitting its tensor: the earliest
    producer, going back, whose output carries this mask shape and does not fit."""
    if t.mask is None or mask_fits(t.mask.shape, t.shape):
        return None
    by_id = ctx.trace.by_id()
    cur, origin = by_id.get(t.source) if t.source else None, None
    for _ in range(len(by_id)):
        if cur is None or not cur.outputs:
            break
        out = cur.outputs[0]
        if out.mask is None or mask_fits(out.mask.shape, out.shape):
            break
        origin = cur.path
        seq = next((i for i in cur.inputs if i.mask is not None), None)
        if seq is None or not seq.source or mask_fits(seq.mask.shape, seq.shape):
            break
        cur = by_id.get(seq.source)
    return origin


# --------------------------------------------------------------------------- oracle


def invariances(ctx: Context) -> Any:
    """The length/side/truncation/loss invariances' result, or `None`."""
    return getattr(ctx.oracle, "invariance", None) if ctx.oracle is not None else None


def invariances_hold(ctx: Context) -> bool:
    """The oracle ran every invariance it could and saw no violation anywhere: no value
    leak, and nothing for the length, side, truncation or loss invariances."""
    inv = invariances(ctx)
    if inv is None or not inv.checked:
        return False
    return not ctx.oracle.leaking_calls and not inv.violations


def leaking_calls(ctx: Context) -> set[str]:
    """Calls where the oracle measured a violation (empty when it did not run)."""
    oracle = ctx.oracle
    if oracle is None:
        return set()
    try:
        got = oracle.leaking_calls
        calls = set(got() if callable(got) else got)
    except Exception:
        return set()
    inv = getattr(oracle, "invariance", None)
    for v in getattr(inv, "violations", ()) or ():  # length/side/truncation: where first seen
        calls.update(v.calls)
    return calls


def observed_severity(ctx: Context, call: Any, *, related: tuple[str, ...] = ()) -> Severity:
    """Error when `call` crashed or the oracle saw padding change an output there (or
    at one of `related`), warning otherwise."""
    if call.error:
        return Severity.ERROR
    leaks = leaking_calls(ctx)
    if call.id in leaks or any(r in leaks for r in related):
        return Severity.ERROR
    return Severity.WARNING
