"""Alignment rules (MV120-MV122): each mask checked against the tensor it belongs to,
and against what happened to it between the call that made it and the call that used it.

Severity follows what was observed: an error when the call crashed or the leak
oracle saw padding change an output there, a warning otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, iter_downstream, rule


def _shape(s: tuple) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in s)
    return f"({dims}{',' if len(s) == 1 else ''})"


def _dim_ok(m: int | None, d: int | None) -> bool:
    return m is None or d is None or m == d or m == 1


def leading_fit(mask_shape: tuple, shape: tuple) -> bool:
    """The mask lines up with the tensor's leading axes (size-1 mask axes broadcast)."""
    return len(mask_shape) <= len(shape) and all(_dim_ok(m, d) for m, d in zip(mask_shape, shape))


def trailing_fit(small: tuple, shape: tuple) -> bool:
    """NumPy broadcasting: `small` lines up with the trailing axes of `shape`."""
    if len(small) > len(shape):
        return False
    tail = shape[len(shape) - len(small) :]
    return all(m is None or d is None or m == d or m == 1 or d == 1 for m, d in zip(small, tail))


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


def _severity(ctx: Context, call: Any, *, related: tuple[str, ...] = ()) -> Severity:
    if call.error:
        return Severity.ERROR
    leaks = leaking_calls(ctx)
    if call.id in leaks or any(r in leaks for r in related):
        return Severity.ERROR
    return Severity.WARNING


def _label(call: Any) -> str:
    op = " op" if getattr(call, "kind", "layer") == "op" else ""
    return f"`{call.path}` ({call.class_name}{op})"


def mask_maker(ctx: Context, t: Any) -> str | None:
    """The call that made the mask `t` carries: its producer if it changed or made
    the mask, else further up the chain of calls that passed it on."""
    by_id = ctx.trace.by_id()
    cur = by_id.get(t.source) if t.source else None
    if cur is None:
        return _source_name(ctx, t.source)
    for _ in range(len(by_id)):
        if cur.role in ("generator", "modifier") or not cur.input_masked:
            return cur.path
        seq = next((i for i in cur.inputs if i.mask is not None), None)
        nxt = by_id.get(seq.source) if seq is not None and seq.source else None
        if nxt is None:
            return cur.path
        cur = nxt
    return None


def fits(mask_shape: tuple, shape: tuple) -> bool:
    """A mask fits its tensor: the tensor's leading axes, the same number of steps."""
    return leading_fit(mask_shape, shape) and _time_axis_mismatch(mask_shape, shape) is None


def misfit_origin(ctx: Context, t: Any) -> str | None:
    """The call where the mask `t` carries stopped fitting its tensor: the earliest
    producer, going back, whose output carries this mask shape and does not fit."""
    if t.mask is None or fits(t.mask.shape, t.shape):
        return None
    by_id = ctx.trace.by_id()
    cur, origin = by_id.get(t.source) if t.source else None, None
    for _ in range(len(by_id)):
        if cur is None or not cur.outputs:
            break
        out = cur.outputs[0]
        if out.mask is None or fits(out.mask.shape, out.shape):
            break
        origin = cur.path
        seq = next((i for i in cur.inputs if i.mask is not None), None)
        if seq is None or not seq.source or fits(seq.mask.shape, seq.shape):
            break
        cur = by_id.get(seq.source)
    return origin


# --------------------------------------------------------------------------- MV120


@rule("MV120", "mask-changed-in-transit", Severity.INFO)
def mask_changed_in_transit(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Compares, for every tensor a call consumes, the mask the tensor carried when
    the call that produced it returned it with the mask it carries when it is
    consumed. When they differ, a call in between rewrote the mask attached to a
    tensor it only read: the finding is on that call, and names the consumers that
    got the tensor with the changed mask.

    ## Why is this bad?
    Keras attaches masks to tensor objects. A layer that clears or replaces the
    mask of one of its *inputs* (MultiHeadAttention removes the masks of its query,
    key and value) changes what every later consumer of the same tensor sees: a
    pooling op or a residual branch computed after it silently reads padding.
    The result depends on the order in which Keras happens to run the graph.

    Severity follows what was observed: an error when a consumer that takes a mask
    got none, or the oracle saw padding change an output there; info when every
    consumer still got its mask another way (a Functional model replays the
    `mask=` argument Keras recorded when it was built).

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    a = keras.layers.MultiHeadAttention(4, 16)(x, x)   # clears x's mask
    p = keras.layers.GlobalAveragePooling1D()(x)       # may get x without a mask
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    mask = keras.ops.not_equal(tokens, 0)
    a = keras.layers.MultiHeadAttention(4, 16)(x, x)
    p = keras.layers.GlobalAveragePooling1D()(x, mask=mask)   # explicit, order-proof
    ```

    ## Fix safety
    *Display-only*: passing the mask explicitly is a model change maskviz leaves to
    the user.
    """
    by_id = ctx.trace.by_id()
    groups: dict[str, list[tuple[Any, Any]]] = {}
    for call in ctx.trace.calls:
        for t in call.inputs:
            if t.mask_changed:
                groups.setdefault(t.changed_by or call.id, []).append((call, t))
    for where, hits in groups.items():
        changer = by_id.get(where)
        first_call, first_t = hits[0]
        producer = by_id.get(first_t.source) if first_t.source else None
        consumers = []
        for c, _t in hits:
            if c.path not in consumers:
                consumers.append(c.path)
        before = first_t.produced_mask
        after = first_t.mask
        what = (
            "removed"
            if after is None
            else ("added" if before is None else f"replaced with mask {_shape(after.shape)}")
        )
        lost = [
            c
            for c, t in hits
            if t.mask is None
            and (
                (c.call_accepts_mask and c.observed and not c.received)
                or not c.output_masked
                and any(
                    d.call_accepts_mask and not d.received for d in iter_downstream(ctx.trace, c.id)
                )
            )
        ]
        related = tuple(c.id for c, _ in hits)
        target = changer if changer is not None else first_call
        leaks = leaking_calls(ctx)
        harmed = lost or any(r in leaks for r in related)
        sev = Severity.ERROR if harmed else Severity.INFO
        by = (
            f"{_label(changer)} rewrote it while it ran (it changed the masks of its inputs "
            f"{', '.join(f'`{a}`' for a in changer.changed_masks)})"
            if changer is not None and changer is not first_call
            else "a step maskviz did not see changed it"
        )
        src = f"`{producer.path}`" if producer is not None else f"`{first_t.source}`"
        yield ctx.finding(
            "MV120",
            target,
            f"The mask on {src}'s output was {what} between its production and its use: "
            f"produced with mask {_shape(before.shape) if before else 'none'}, consumed by "
            f"{', '.join(f'`{p}`' for p in consumers)} with "
            f"{'no mask' if after is None else 'mask ' + _shape(after.shape)}; {by}. "
            "Expected every consumer to see the mask the tensor was produced with.",
            suggestion=(
                "Pass the mask to the later consumers explicitly (`mask=`), or compute them "
                "from their own copy of the tensor; do not rely on the order Keras runs "
                "the graph in."
            ),
            severity=sev,
            fix=Fix(Applicability.DISPLAY_ONLY, "pass the mask explicitly to later consumers"),
            details=(("consumers", tuple(consumers)), ("lost_at", tuple(c.path for c in lost))),
        )


def _user_downstream(ctx: Context, call: Any) -> bool:
    """A call downstream that takes a mask and got none."""
    return any(
        d.call_accepts_mask and d.observed and not d.received
        for d in iter_downstream(ctx.trace, call.id)
    )


# --------------------------------------------------------------------------- MV121


def _time_axis_mismatch(mask_shape: tuple, shape: tuple) -> tuple[int, int] | None:
    if len(mask_shape) >= 2 and len(shape) >= 2:
        m, d = mask_shape[1], shape[1]
        if m is not None and d is not None and m != d and m != 1:
            return m, d
    return None


def _source_name(ctx: Context, source: str | None) -> str | None:
    if not source:
        return None
    if source.startswith("input:"):
        return f"model input {source[6:]}"
    call = ctx.trace.by_id().get(source)
    return call.path if call is not None else source


def _pairs(ctx: Context, call: Any) -> list[tuple[str, Any, Any, str | None]]:
    """(what, mask, tensor, who made the mask) for every mask a call got and the
    tensor it is for."""
    out: list[tuple[str, Any, Any, str | None]] = []
    data = [t for t in call.inputs if not t.arg.endswith("mask") and "mask[" not in t.arg]
    explicit = [t for t in call.inputs if t.arg == "mask" or t.arg.startswith("mask[")]
    by_id = ctx.trace.by_id()
    for t in data:
        # A traced call's output mask is checked where it is made (MV103, MV104);
        # here only masks that came from elsewhere (a model input, unseen code).
        if t.mask is not None and t.source not in by_id:
            out.append((f"the mask attached to `{t.arg}`", t.mask, t, mask_maker(ctx, t)))
    if call.received_mask and data:
        parent = by_id.get(call.parent) if call.parent else None
        for i, m in enumerate(call.received_mask):
            if m is None:
                continue
            t = data[i] if i < len(data) else data[0]
            if t.mask is not None and tuple(t.mask.shape) == tuple(m.shape):
                continue  # the attached mask: above, or where it was made (MV103/MV104)
            what = f"the mask `call` received for `{t.arg}`"
            if i < len(explicit):
                maker = _source_name(ctx, explicit[i].source)
            elif call.via == "call" and parent is not None:
                maker = parent.path
                what = f"the per-step mask `{parent.path}` handed it for `{t.arg}`"
            else:
                maker = None
            out.append((what, m, t, maker))
    return out


def _attention_expected(call: Any) -> tuple[Any, tuple] | None:
    """For a call with an `attention_mask` argument: (that mask, the shape it must
    broadcast to: (batch, query steps, key steps))."""
    am = next((t for t in call.inputs if t.arg == "attention_mask"), None)
    if am is None:
        return None
    data = [t for t in call.inputs if not t.arg.endswith("mask")]
    if not data or len(data[0].shape) < 3:
        return None
    q = data[0]
    k = next((t for t in data if t.arg in ("key", "value")), None) or (
        data[1] if len(data) > 1 else q
    )
    if len(k.shape) < 3:
        return None
    return am, (q.shape[0], q.shape[1], k.shape[1])


@rule("MV121", "mask-shape-misaligned", Severity.WARNING)
def mask_shape_misaligned(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Compares every mask a call got (attached to an input, delivered in `mask`, or
    passed as `attention_mask`) with the tensor it is for. A per-step mask's axes
    must be the tensor's leading axes: no more axes than the tensor, the same
    batch and the same number of steps. An `attention_mask` must broadcast to
    `(batch, query steps, key steps)`.

    ## Why is this bad?
    A mask whose time length differs from its tensor masks the wrong steps, or
    crashes deep inside the layer with an opaque "Incompatible shapes" error. An
    attention mask built for other lengths does the same inside the softmax.

    ## Example
    ```python
    x = keras.Input((6, 8))
    m = keras.Input((5,), dtype="bool")                  # 5 steps, x has 6
    y = keras.layers.LSTM(4)(x, mask=m)
    ```

    Use instead:
    ```python
    m = keras.Input((6,), dtype="bool")                  # one entry per step of x
    y = keras.layers.LSTM(4)(x, mask=m)
    ```

    ## Fix safety
    *Display-only*: which length is right is the user's decision.
    """
    for call in ctx.trace.calls:
        for what, m, t, maker in _pairs(ctx, call):
            problem = None
            if call.call_accepts_mask and len(t.shape) >= 3 and len(m.shape) < 2:
                problem = f"it has no time axis ({len(m.shape)} axis)"
            elif len(m.shape) > len(t.shape):
                problem = f"it has {len(m.shape)} axes, the tensor {len(t.shape)}"
            elif (mm := _time_axis_mismatch(m.shape, t.shape)) is not None:
                problem = f"it has {mm[0]} steps, the tensor {mm[1]}"
            elif not leading_fit(m.shape, t.shape):
                problem = "its axes are not the tensor's leading axes"
            if problem is None:
                continue
            if call.error is None and not call.observed:
                continue
            want = tuple(t.shape[: 2 if len(t.shape) >= 3 else min(len(m.shape), len(t.shape))])
            yield ctx.finding(
                "MV121",
                call,
                f"{_label(call)}: {what} is {_shape(m.shape)} for tensor {_shape(t.shape)}: "
                f"{problem}. Expected a mask of shape {_shape(want)}."
                + (f" Received: the mask was made by `{maker}`." if maker else "")
                + (f" The call failed: {call.error}" if call.error else ""),
                suggestion=(
                    "Build the mask from the same tensor (or the same padded input) that "
                    "the call consumes, after every change of its time axis."
                ),
                severity=_severity(ctx, call),
                fix=Fix(Applicability.DISPLAY_ONLY, "rebuild the mask for this tensor"),
                details=(("mask_source", maker),),
            )
        att = _attention_expected(call)
        if att is None:
            continue
        am, expected = att
        shape = tuple(am.shape)
        ok = len(shape) <= 4 and trailing_fit(
            shape, expected if len(shape) < 4 else (expected[0], 1) + expected[1:]
        )
        if len(shape) == 3 and ok:
            ok = _dim_ok(shape[0], expected[0]) or shape[0] == 1
        if ok:
            continue
        maker = _source_name(ctx, am.source)
        yield ctx.finding(
            "MV121",
            call,
            f"{_label(call)}: `attention_mask` {_shape(shape)} does not broadcast to "
            f"(batch, query steps, key steps) = {_shape(expected)}."
            + (f" Received: the mask came from `{maker}`." if maker else "")
            + (f" The call failed: {call.error}" if call.error else ""),
            suggestion=(
                "Build it as `ops.logical_and(query_mask[:, :, None], key_mask[:, None, :])` "
                "from the masks of the query and key sequences, or let the layer use the "
                "masks attached to its inputs."
            ),
            severity=_severity(ctx, call),
            fix=Fix(Applicability.DISPLAY_ONLY, "rebuild the attention mask"),
            details=(("mask_source", maker),),
        )


# --------------------------------------------------------------------------- MV122


@rule("MV122", "mask-broadcast-misaligned", Severity.WARNING)
def mask_broadcast_misaligned(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags an operation that combines a tensor with a mask of fewer axes
    (`x * mask`, `ops.where(mask, x, 0)`) where the mask matches the tensor's
    *leading* axes `(batch, time)`, while broadcasting aligns shapes from the
    *right*: the mask's time axis meets the tensor's feature axis.

    ## Why is this bad?
    With `x` of shape `(batch, time, features)` and `mask` of shape
    `(batch, time)`, `x * mask` either fails ("Incompatible shapes") or, when the
    sizes happen to match (`time == features`, a batch of one), runs and masks
    features instead of steps: padding passes through untouched.

    ## Example
    ```python
    mask = keras.ops.cast(keras.ops.not_equal(tokens, 0), "float32")  # (batch, time)
    y = x * mask                                                        # x: (batch, time, d)
    ```

    Use instead:
    ```python
    y = x * mask[..., None]                                             # (batch, time, 1)
    ```

    ## Fix safety
    *Display-only*: maskviz does not rewrite `keras.ops` calls.
    """
    for call in ctx.trace.calls:
        if call.via != "__call__" or call.is_container or not (call.is_op or call.error):
            continue
        for m in call.inputs:
            if not m.mask_like or len(m.shape) < 2 or m.shape[1] in (None, 1):
                continue
            x = next(
                (
                    t
                    for t in call.inputs
                    if t is not m
                    and not t.mask_like
                    and len(t.shape) > len(m.shape)
                    and leading_fit(m.shape, t.shape)
                ),
                None,
            )
            if x is None:
                continue
            r = len(m.shape)
            lead, tail = tuple(x.shape[:r]), tuple(x.shape[len(x.shape) - r :])
            if call.error is None:
                out = call.outputs[0] if call.outputs else None
                if (
                    out is None
                    or len(out.shape) != len(x.shape)
                    or not trailing_fit(m.shape, x.shape)
                ):
                    continue  # not an elementwise broadcast of the two
                outcome = (
                    f"It ran only because the sizes coincide: the mask's axes met {_shape(tail)} "
                    f"instead of {_shape(lead)}."
                )
            else:
                outcome = f"The call failed: {call.error}"
            maker = mask_maker(ctx, m) if m.source else None
            expanded = tuple(m.shape) + (1,) * (len(x.shape) - r)
            downstream = tuple(c.id for c in iter_downstream(ctx.trace, call.id))
            yield ctx.finding(
                "MV122",
                call,
                f"{_label(call)} combines `{x.arg}` {_shape(x.shape)} with the mask `{m.arg}` "
                f"{_shape(m.shape)}: the mask matches the leading axes {_shape(lead)}, but "
                f"broadcasting aligns it with the trailing axes {_shape(tail)}. {outcome}"
                + (f" Received: the mask was made by `{maker}`." if maker else "")
                + f" Expected the mask expanded to {_shape(expanded)}.",
                suggestion=(
                    "Add the missing axes to the mask before combining: "
                    f"`{m.arg}[{', '.join([':'] * r)}{', None' * (len(x.shape) - r)}]` "
                    "(or `ops.expand_dims(mask, -1)`)."
                ),
                severity=_severity(ctx, call, related=downstream),
                fix=Fix(Applicability.DISPLAY_ONLY, "expand the mask's trailing axes"),
                details=(("mask_source", maker),),
            )
