"""MV112 call-failed: reports the layer call where the forward pass on the probe (or
`--data`) failed, with the exception's message.

The rule's docstring is its documentation (`maskviz explain MV112`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import container_of, fmt_shape, input_label, mask_maker, misfit_origin


@rule("MV112", "call-failed", Severity.ERROR)
def call_failed(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Reports the layer call where the forward pass on the probe (or `--data`) failed,
    with the exception's message. Calls after it are shown from the model's
    symbolic graph.

    ## Why is this bad?
    The model builds but cannot run on padded data, often because of a mask: a
    per-pixel mask reaching `ConvLSTM2D`, a mask whose time length no longer
    matches its tensor.

    ## Example
    ```python
    x = keras.layers.Masking()(video)                 # 4-D mask
    y = keras.layers.ConvLSTM2D(8, 3, padding="valid")(x)   # fails on data
    ```

    Use instead:
    ```python
    x = maskviz.layers.TimestepMasking()(video)
    y = keras.layers.ConvLSTM2D(8, 3, padding="valid")(x)
    ```

    ## Fix safety
    *Display-only*: the fix is the one of the mask finding on the same layer, if any.
    """
    trace = ctx.trace
    if not trace.error:
        return
    call = None
    if trace.error_call:
        try:
            call = trace.call(trace.error_call)
        except KeyError:
            call = None
    where = f"`{call.path}` ({call.class_name})" if call else f"model `{trace.model_name}`"
    at = _crash_shapes(ctx, call) if call is not None else ""
    yield ctx.finding(
        call,
        f"The forward pass failed at {where}.{at} Received: {trace.error}",
        suggestion="See the mask findings on this layer; rerun with `--data` to use real samples.",
        fix=Fix(Applicability.DISPLAY_ONLY, "fix the failing layer"),
    )


def _crash_shapes(ctx: Context, call: Any) -> str:
    """The shapes of each tensor and mask at a failed call, and who made each mask."""
    by_id = ctx.trace.by_id()
    parts = []
    for t in call.inputs:
        desc = f"`{t.arg}` {fmt_shape(t.shape)}"
        if t.mask is not None:
            maker = mask_maker(ctx, t)
            desc += f" with mask {fmt_shape(t.mask.shape)}" + (
                f" made by `{input_label(maker)}`" if maker else ""
            )
            origin = misfit_origin(ctx, t)
            if origin and origin != maker:
                desc += f" and passed on by `{origin}`, whose output it no longer fits"
        elif t.arg.endswith("mask") or t.mask_like:
            src = by_id.get(t.source) if t.source else None
            origin = src.path if src is not None else (t.source or "")
            desc += " (a mask" + (f" from `{input_label(origin)}`" if origin else "") + ")"
        parts.append(desc)
    text = " At this call: " + ", ".join(parts) + "." if parts else ""
    got = ""
    if call.received_mask:
        got = ", ".join("None" if m is None else fmt_shape(m.shape) for m in call.received_mask)
        text += f" Its `call` received mask {got}."
    parent = container_of(ctx, call)
    if call.via == "call" and parent is not None:
        text += (
            f" It was called per step by `{parent.path}` ({parent.class_name}), which "
            f"handed it {'mask ' + got if call.received_mask else 'no mask'}"
            f" for its input {fmt_shape(call.inputs[0].shape) if call.inputs else '?'}."
        )
    return text
