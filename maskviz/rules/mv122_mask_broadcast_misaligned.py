"""MV122 mask-broadcast-misaligned: flags an operation that combines a tensor with a mask
of fewer axes (`x * mask`, `ops.where(mask, x, 0)`) where the mask matches the tensor's
*leading* axes `(batch, time)`, while broadcasting aligns shapes from the *right*.

The rule's docstring is its documentation (`maskviz explain MV122`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import call_label, fmt_shape, leading_fit, mask_maker, observed_severity, trailing_fit


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
                    "It ran only because the sizes coincide: the mask's axes met "
                    f"{fmt_shape(tail)} "
                    f"instead of {fmt_shape(lead)}."
                )
            else:
                outcome = f"The call failed: {call.error}"
            maker = mask_maker(ctx, m) if m.source else None
            expanded = tuple(m.shape) + (1,) * (len(x.shape) - r)
            downstream = tuple(ctx.graph.downstream(call.id))
            yield ctx.finding(
                call,
                f"{call_label(call)} combines `{x.arg}` {fmt_shape(x.shape)} with the mask "
                f"`{m.arg}` "
                f"{fmt_shape(m.shape)}: the mask matches the leading axes {fmt_shape(lead)}, but "
                f"broadcasting aligns it with the trailing axes {fmt_shape(tail)}. {outcome}"
                + (f" Received: the mask was made by `{maker}`." if maker else "")
                + f" Expected the mask expanded to {fmt_shape(expanded)}.",
                suggestion=(
                    "Add the missing axes to the mask before combining: "
                    f"`{m.arg}[{', '.join([':'] * r)}{', None' * (len(x.shape) - r)}]` "
                    "(or `ops.expand_dims(mask, -1)`)."
                ),
                severity=observed_severity(ctx, call, related=downstream),
                fix=Fix(Applicability.DISPLAY_ONLY, "expand the mask's trailing axes"),
                details=(("mask_source", maker),),
            )
