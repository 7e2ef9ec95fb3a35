"""MV103 mask-rank-mismatch: flags a mask whose shape is not the leading `(batch, time)`
axes that the layer using it expects.

The rule's docstring is its documentation (`maskviz explain MV103`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import (
    fmt_shape,
    inner_calls,
    invariances_hold,
    mask_origin,
    mask_source,
    seq_input,
)


@rule("MV103", "mask-rank-mismatch", Severity.ERROR)
def mask_rank_mismatch(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a mask whose shape is not the leading `(batch, time)` axes that the layer
    using it expects: a mask-using layer that received a mask covering more than
    `(batch, time)` (e.g. per pixel), or a mask with more axes than its tensor.

    ## Why is this bad?
    `Masking` on a 5-D input `(batch, time, rows, cols, channels)` makes a 4-D
    per-pixel mask. `ConvLSTM2D(padding="valid")` then fails with "Dimensions must be
    equal"; with `padding="same"` it runs, masking single pixels instead of whole
    frames.

    ## Example
    ```python
    x = keras.layers.Masking()(video)            # mask (batch, time, rows, cols)
    y = keras.layers.ConvLSTM2D(8, 3)(x)
    ```

    Use instead:
    ```python
    x = maskviz.layers.TimestepMasking()(video)  # mask (batch, time)
    y = keras.layers.ConvLSTM2D(8, 3)(x)
    ```

    ## Fix safety
    Replacing `Masking` with `TimestepMasking` is *safe*: a step is masked exactly
    when all its values equal `mask_value`, so unpadded rows are unchanged.
    """
    for call in ctx.trace.calls:
        if call.via != "__call__":
            continue
        seq = seq_input(call)
        if seq is None:
            continue
        if any(_aligned_per_step(k) for k in inner_calls(ctx, call)):
            # A wrapper (TimeDistributed) that hands each step's slice of the mask to
            # its inner layer, where it fits: the extra axes are the inner sequence's.
            continue
        got = None
        if call.received_mask:
            got = call.received_mask[0]
        elif call.call_accepts_mask and seq.mask is not None and (call.error or not call.observed):
            got = seq.mask
        # Only a mask the sequence input itself carried: an explicit broadcastable
        # mask (an attention mask handed to Softmax) is not a per-step mask.
        carried = seq.mask is not None and (got is None or got.shape == seq.mask.shape)
        if (
            got is not None
            and carried
            and call.call_accepts_mask
            and len(seq.shape) > 3
            and got.rank > 2
        ):
            src = mask_source(ctx, seq)
            # Severity follows observation: with every invariance measured and holding
            # (whole padded frames, no crash), the per-pixel mask is a hazard for real
            # values equal to mask_value, not a leak seen here.
            quiet = not call.error and invariances_hold(ctx)
            yield ctx.finding(
                call,
                f"`{call.path}` ({call.class_name}) got mask {fmt_shape(got.shape)} for input "
                f"{fmt_shape(seq.shape)}: the mask covers more than the (batch, time) axes. "
                f"Expected a mask of shape {fmt_shape(seq.shape[:2])}."
                + mask_origin(src, call)
                + (
                    " On this data no real output depends on the padding (the padded "
                    "steps are masked whole), but any real value equal to the mask value "
                    "is masked on its own."
                    if quiet
                    else ""
                ),
                severity=Severity.WARNING if quiet else None,
                suggestion=(
                    f"Make the mask per timestep: replace `{src or 'Masking'}` with "
                    "`maskviz.layers.TimestepMasking(mask_value=...)`, whose mask is "
                    "(batch, time) for inputs of any rank."
                ),
                fix=Fix(Applicability.SAFE, "make the mask per timestep (maskviz fix)"),
                details=(("mask_source", src), ("mask_misfit", True)),
            )
        for t in call.outputs:
            if t.mask is not None and t.mask.rank > len(t.shape):
                yield ctx.finding(
                    call,
                    f"`{call.path}` ({call.class_name}) attached mask {fmt_shape(t.mask.shape)} to "
                    f"{t.arg} {fmt_shape(t.shape)}: the mask has more axes than the tensor. "
                    "Expected its leading (batch, time) axes.",
                    suggestion="Reduce the mask to (batch, time) in `compute_mask`.",
                    fix=Fix(Applicability.DISPLAY_ONLY, "reduce the mask in compute_mask"),
                )


def _aligned_per_step(inner: Any) -> bool:
    """An inner call that received a mask fitting its own input's leading axes."""
    if not inner.received_mask or inner.received_mask[0] is None or not inner.inputs:
        return False
    m, x = inner.received_mask[0], inner.inputs[0]
    return m.rank < len(x.shape) and tuple(m.shape) == tuple(x.shape[: m.rank])
