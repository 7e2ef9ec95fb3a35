"""MV121 mask-shape-misaligned: compares every mask a call got (attached to an input,
delivered in `mask`, or passed as `attention_mask`) with the tensor it is for.

The rule's docstring is its documentation (`maskviz explain MV121`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import (
    call_label,
    container_of,
    dim_ok,
    fmt_shape,
    leading_fit,
    mask_maker,
    mask_origin,
    observed_severity,
    source_path,
    time_axis_mismatch,
    trailing_fit,
)


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
            elif (mm := time_axis_mismatch(m.shape, t.shape)) is not None:
                problem = f"it has {mm[0]} steps, the tensor {mm[1]}"
            elif not leading_fit(m.shape, t.shape):
                problem = "its axes are not the tensor's leading axes"
            if problem is None:
                continue
            if call.error is None and not call.observed:
                continue
            want = tuple(t.shape[: 2 if len(t.shape) >= 3 else min(len(m.shape), len(t.shape))])
            yield ctx.finding(
                call,
                f"{call_label(call)}: {what} is {fmt_shape(m.shape)} for tensor "
                f"{fmt_shape(t.shape)}: "
                f"{problem}. Expected a mask of shape {fmt_shape(want)}."
                + mask_origin(maker, call),
                suggestion=(
                    "Build the mask from the same tensor (or the same padded input) that "
                    "the call consumes, after every change of its time axis."
                ),
                severity=observed_severity(ctx, call),
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
            ok = dim_ok(shape[0], expected[0]) or shape[0] == 1
        if ok:
            continue
        maker = source_path(ctx, am.source)
        yield ctx.finding(
            call,
            f"{call_label(call)}: `attention_mask` {fmt_shape(shape)} does not broadcast to "
            f"(batch, query steps, key steps) = {fmt_shape(expected)}."
            + mask_origin(maker, call, verb="came from"),
            suggestion=(
                "Build it as `ops.logical_and(query_mask[:, :, None], key_mask[:, None, :])` "
                "from the masks of the query and key sequences, or let the layer use the "
                "masks attached to its inputs."
            ),
            severity=observed_severity(ctx, call),
            fix=Fix(Applicability.DISPLAY_ONLY, "rebuild the attention mask"),
            details=(("mask_source", maker),),
        )


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
        parent = container_of(ctx, call)
        for i, m in enumerate(call.received_mask):
            if m is None:
                continue
            t = data[i] if i < len(data) else data[0]
            if t.mask is not None and tuple(t.mask.shape) == tuple(m.shape):
                continue  # the attached mask: above, or where it was made (MV103/MV104)
            what = f"the mask `call` received for `{t.arg}`"
            if i < len(explicit):
                maker = source_path(ctx, explicit[i].source)
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
