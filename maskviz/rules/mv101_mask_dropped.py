"""MV101 mask-dropped: a call that received a masked sequence and returned it unmasked.

Like every structural rule, it reads what the installed Keras actually did on the
probe (the masks attached to tensors, the mask each `call` received), never a table
of what a Keras version is believed to do. The rule's docstring is its documentation
(`maskviz explain MV101`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .advice import CONV1D, builtin_advice
from .queries import (
    calls_downstream,
    fmt_shape,
    invariances_hold,
    keeps_time,
    keras_builtin,
    owned_by_parent,
    owns_mask,
    seq_input,
)


@rule("MV101", "mask-dropped", Severity.ERROR)
def mask_dropped(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a layer call that received a tensor carrying a mask and returned tensors
    without one (or with a weaker one: positions the incoming mask dropped are kept
    again), while a mask-using layer or a per-step model output lies downstream. A layer
    with sublayers is judged by what it returns: an RNN (whose cell is its child) or a
    `TimeDistributed` that drops the mask is named itself; a nested model is named only
    when none of its inner calls dropped the mask. For Keras's own layers the advice names
    what the installed Keras does and a repair (a `maskviz.layers` twin, or `mask=`).

    ## Why is this bad?
    Downstream layers (an RNN, attention, pooling, the loss) then treat padding as
    data. Keras only prints a `UserWarning` when a layer without `supports_masking`
    gets a mask; nothing fails, the model silently learns from padding.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    x = keras.layers.Conv1D(64, 3, padding="same")(x)   # drops the mask
    x = keras.layers.LSTM(64)(x)                         # sees padding as data
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    x = maskviz.layers.MaskedConv1D(64, 3, padding="same")(x)  # zeroes padding, keeps the mask
    x = keras.layers.LSTM(64)(x)
    ```
    For a custom layer that works per timestep, set `self.supports_masking = True`
    in its `__init__` (or wrap it in `maskviz.layers.MaskPassthrough`).

    ## Fix safety
    Measured by `maskviz fix`: a repair (a `maskviz.layers` twin, zeroing padded
    steps and putting the mask back, a masked reduction) is kept only when rows
    without padding give the same outputs; one that changes them is *unsafe*.
    """
    for call in ctx.trace.calls:
        if call.via != "__call__" or call.error or not call.outputs:
            continue
        seq = seq_input(call)
        if seq is None or seq.mask is None:
            continue
        if not owns_mask(call) and _dropped_inside(ctx, call):
            # A nested model or a layer that leaves masks to its sublayers: the inner
            # call that drops the mask is flagged, not the container too.
            continue
        if owned_by_parent(ctx, call):
            # Inside a layer that takes the mask itself (an RNN and its cell,
            # MultiHeadAttention, Bidirectional, a keras-hub block): its own code
            # applies it and decides what comes out, so that layer is flagged (or, when
            # it got none, MV102 says so there), not its sublayers.
            continue
        if call.mask_weakened:
            kept_in = seq.mask.kept
            kept_out = call.outputs[0].mask.kept if call.outputs[0].mask else None
            yield ctx.finding(
                call,
                f"`{call.name}` ({call.class_name}) weakens the mask: its output mask keeps "
                f"positions that the input mask dropped. Received: input mask "
                f"{fmt_shape(seq.mask.shape)} keeping {kept_in:.0%}, output mask keeping "
                f"{kept_out:.0%}. Expected the output mask to keep no more than the input's.",
                suggestion=(
                    f"Make `{call.class_name}.compute_mask` combine the incoming mask "
                    "(`ops.logical_and(new_mask, mask)`) instead of replacing it."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "combine the incoming mask in compute_mask"),
            )
            continue
        if call.output_masked or (call.received and not keeps_time(call)):
            # Taking the mask and reducing the time axis (an RNN returning its last
            # output, masked pooling) consumes it; keeping the time axis drops it.
            continue
        downstream = calls_downstream(ctx, call)
        # Users that would want the mask and did not get one from elsewhere.
        users = [
            c for c in downstream if c.call_accepts_mask and c.via == "__call__" and not c.received
        ]
        down_ids = {c.id for c in downstream}
        # An output that still has the call's (batch, time) axes: its loss is per step,
        # so padding counts there (a pooled output's leak is the oracle's business).
        reaches_output = any(
            (o.source == call.id or o.source in down_ids)
            and tuple(o.shape[:2]) == tuple(seq.shape[:2])
            for o in ctx.trace.outputs
        )
        if users:
            # Measured, not assumed: where every invariance held on this data (no leak of
            # padded values, of their amount or side, into real outputs or the loss), a
            # user that got no mask is a hazard, not a violation.
            severity = Severity.WARNING if invariances_hold(ctx) else Severity.ERROR
            why = (
                f"`{users[0].path}` ({users[0].class_name}) downstream accepts a mask "
                "but will get none"
            ) + (
                "; the padding invariances held on this data"
                if severity == Severity.WARNING
                else ""
            )
        elif reaches_output and keeps_time(call):
            # Keras weights the loss by the mask of a model output: an output that
            # still has this call's (batch, time) axes would have carried the mask,
            # so a loss the model trains with counts padding (a layer or an op alike).
            # Without a known loss, an output's padded steps are the caller's to skip.
            trains = ctx.loss is not None and _output_keeps_time(ctx, call, downstream)
            severity = Severity.ERROR if trains else Severity.WARNING
            why = "the model output it reaches loses its mask, so the loss counts padding"
        else:
            continue
        yield ctx.finding(
            call,
            f"`{call.path}` ({call.class_name}) drops the mask: it received "
            f"{seq.arg} {fmt_shape(seq.shape)} with mask {fmt_shape(seq.mask.shape)} and returned "
            f"{fmt_shape(call.outputs[0].shape)} with no mask; {why}. Expected a layer "
            "with `supports_masking=True` or a mask-aware replacement.",
            suggestion=_drop_suggestion(call, keras_builtin(ctx, call)),
            severity=severity,
            fix=_drop_fix(call),
            details=(("downstream_users", tuple(c.path for c in users[:5])),),
        )


def _output_keeps_time(ctx: Context, call: Any, downstream: list) -> bool:
    """A model output reached from `call` has `call`'s (batch, time) axes and no
    mask: the mask dropped at `call` would have reached it (and weighted the loss)."""
    ids = {call.id} | {c.id for c in downstream}
    axes = tuple(call.outputs[0].shape[:2])
    return any(
        o.source in ids and o.mask is None and len(o.shape) >= 2 and tuple(o.shape[:2]) == axes
        for o in ctx.trace.outputs
    )


def _dropped_inside(ctx: Context, call: Any) -> bool:
    """Some call inside `call` (at any depth) got a masked sequence and returned no
    mask."""
    for node in ctx.graph.walk(call.id, ctx.graph.children):
        kid = ctx.graph.record(node)
        seq = seq_input(kid)
        if kid.via == "__call__" and seq is not None and seq.mask is not None:
            if kid.outputs and not kid.output_masked:
                return True
    return False


def _drop_suggestion(call: Any, builtin: str | None = None) -> str:
    cls = call.class_name
    if builtin is not None and call.call_accepts_mask:
        return builtin_advice(call, builtin, call.computed_mask)
    if getattr(call, "kind", "layer") == "op":
        return (
            f"`{call.name}` is a `keras.ops` call: ops never carry masks on. Do this step "
            "inside a layer that supports masking, or pass the mask to the next layer "
            "explicitly (`mask=`); if it mixes steps, zero the padded steps first "
            "(`x * ops.cast(mask, x.dtype)[..., None]`)."
        )
    if cls == "Conv1D":
        return CONV1D
    if cls in ("GlobalMaxPooling1D",):
        return "Use `maskviz.layers.MaskedGlobalMaxPooling1D()`: it takes the max over kept steps."
    if cls == "Flatten":
        return (
            "Flatten mixes all steps into one vector: pool over time with a mask-aware layer "
            "(`GlobalAveragePooling1D()` uses the mask) instead of Flatten."
        )
    if not call.supports_masking and keeps_time(call):
        return (
            f"If `{cls}` works per timestep, set `self.supports_masking = True` in its "
            f"`__init__`, or wrap it: `maskviz.layers.MaskPassthrough({cls}(...))`."
        )
    if not call.supports_masking:
        return (
            f"`{cls}` changes the time axis, so the incoming mask cannot be passed on as is: "
            f"define `{cls}.compute_mask` to return the mask for its output, or pool over "
            "time with a mask-aware layer before it."
        )
    return (
        f"Pass the mask on: make `{cls}.compute_mask(inputs, mask)` return the incoming "
        "mask (or the mask of its output's steps)."
    )


def _drop_fix(call: Any) -> Fix:
    # What to repair, not how: `maskviz fix` searches candidates and measures them.
    if keeps_time(call):
        return Fix(Applicability.SAFE, "pass the mask on past this call (verified by maskviz fix)")
    return Fix(
        Applicability.SAFE, "consume or carry the mask where the time axis changes (maskviz fix)"
    )
