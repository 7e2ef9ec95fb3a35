"""MV104 mask-time-misaligned: flags a mask whose time length differs from its tensor's (a
strided or `valid` convolution, pooling, cropping or reshape that passed the mask on
unchanged), a `TimeDistributed` wrapper whose inner layer makes a mask that the wrapper
loses or misaligns, and an RNN that returns its sequence reversed (`go_backwards=True,
return_sequences=True`) with the input's mask unreversed.

The rule's docstring is its documentation (`maskviz explain MV104`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import broadcastable, container_of, fmt_shape, inner_calls, seq_input


@rule("MV104", "mask-time-misaligned", Severity.ERROR)
def mask_time_misaligned(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a mask whose time length differs from its tensor's (a strided or `valid`
    convolution, pooling, cropping or reshape that passed the mask on unchanged),
    a `TimeDistributed` wrapper whose inner layer makes a mask that the wrapper
    loses or misaligns, and an RNN that returns its sequence reversed
    (`go_backwards=True, return_sequences=True`) with the input's mask unreversed.

    ## Why is this bad?
    A mask of length 10 on a tensor of length 5 masks the wrong steps, or fails
    later with a shape error. `TimeDistributed(Embedding(mask_zero=True))` gives no
    mask at all, so the padding inside each step reaches everything downstream.

    ## Example
    ```python
    x = keras.layers.TimeDistributed(keras.layers.Embedding(100, 8, mask_zero=True))(chars)
    y = keras.layers.TimeDistributed(keras.layers.LSTM(16))(x)  # inner padding unmasked
    ```

    Use instead:
    ```python
    x = maskviz.layers.MaskedTimeDistributed(keras.layers.Embedding(100, 8, mask_zero=True))(chars)
    ```

    ## Fix safety
    `MaskedTimeDistributed` is *safe*: it applies the same inner layer with the
    same weights; only how the mask is reported changes.
    """
    for call in ctx.trace.calls:
        parent = container_of(ctx, call)
        own_code = parent is not None and not parent.is_functional and parent.received
        if (
            call.reverses_time
            and call.mask_unchanged
            and not own_code  # Bidirectional reverses its backward layer's output back
            and call.outputs
            and call.outputs[0].mask is not None
            and call.outputs[0].mask.kept not in (0.0, 1.0)
        ):
            yield ctx.finding(
                call,
                f"`{call.path}` ({call.class_name}) returns its sequence reversed "
                "(`go_backwards=True`, `return_sequences=True`) but passes the input's mask "
                f"on unreversed: output {fmt_shape(call.outputs[0].shape)} with mask "
                f"{fmt_shape(call.outputs[0].mask.shape)}. Expected the mask reversed along "
                "time too; downstream layers now read padding steps and skip real ones.",
                suggestion=(
                    "Reverse the output back before the next layer (`ops.flip(y, axis=1)`), "
                    "use `Bidirectional`, or `maskviz.layers.MaskedRNN(cell, "
                    "go_backwards=True, return_sequences=True)`, which reverses its mask."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "reverse the output or its mask"),
            )
        for t in call.outputs:
            if t.mask is None or len(t.shape) < 2 or t.mask.rank < 2:
                continue
            mt, tt = t.mask.shape[1], t.shape[1]
            if broadcastable(t.mask.shape, t.shape):
                continue
            if mt is not None and tt is not None and mt != tt:
                seq = seq_input(call)
                yield ctx.finding(
                    call,
                    f"`{call.path}` ({call.class_name}) returned {t.arg} {fmt_shape(t.shape)} "
                    f"with mask {fmt_shape(t.mask.shape)}: the mask has {mt} steps, the tensor "
                    f"{tt}. Received: input {fmt_shape(seq.shape) if seq else '?'}. Expected a "
                    "mask aligned with the output's time axis.",
                    suggestion=(
                        "Recompute the mask for the new time axis (e.g. "
                        "`maskviz.layers.MaskedConv1D` for strided or valid convolutions), "
                        "or drop it deliberately and pool before the time axis changes."
                    ),
                    fix=Fix(Applicability.DISPLAY_ONLY, "recompute the mask for the output length"),
                )
        inner = [c for c in inner_calls(ctx, call) if c.via == "call"]
        for c in inner:
            made = c.computed_mask[0] if c.computed_mask else None
            if made is None:
                continue
            out = call.outputs[0] if call.outputs else None
            if out is None:
                continue
            if out.mask is None:
                yield ctx.finding(
                    call,
                    f"`{call.path}` ({call.class_name}) loses the mask its inner layer "
                    f"`{c.name}` ({c.class_name}) makes: per step the inner mask is "
                    f"{fmt_shape(made.shape)}, but the output {fmt_shape(out.shape)} carries "
                    "no mask. "
                    f"Expected a mask of shape {fmt_shape(out.shape[: 2 + made.rank - 1])}.",
                    suggestion=(
                        f"Wrap with `maskviz.layers.MaskedTimeDistributed({c.class_name}(...))`: "
                        "it reshapes the inner mask to (batch, time, ...) and reduces it to "
                        "(batch, time) where needed."
                    ),
                    fix=Fix(
                        Applicability.SAFE,
                        "replace TimeDistributed with maskviz.layers.MaskedTimeDistributed",
                    ),
                )
            else:
                expected = tuple(out.shape[:2]) + tuple(made.shape[1:])
                if tuple(out.mask.shape) not in (expected, tuple(out.shape[:2])):
                    yield ctx.finding(
                        call,
                        f"`{call.path}` ({call.class_name}) gives mask "
                        f"{fmt_shape(out.mask.shape)} but its inner layer `{c.name}` masks per "
                        f"step as {fmt_shape(made.shape)}. Expected {fmt_shape(expected)} or "
                        f"{fmt_shape(out.shape[:2])}.",
                        suggestion="Use `maskviz.layers.MaskedTimeDistributed`.",
                        fix=Fix(
                            Applicability.SAFE,
                            "replace TimeDistributed with maskviz.layers.MaskedTimeDistributed",
                        ),
                    )
