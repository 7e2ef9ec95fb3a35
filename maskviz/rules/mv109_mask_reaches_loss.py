"""MV109 mask-reaches-loss: reports a model output that carries a mask.

The rule's docstring is its documentation (`maskviz explain MV109`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import fmt_shape


@rule("MV109", "mask-reaches-loss", Severity.INFO)
def mask_reaches_loss(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Reports a model output that carries a mask. Keras applies that mask to the
    loss and metrics of that output (masked positions get weight 0). Info when
    the mask covers the output's leading axes (e.g. mask `(batch, time)` on
    logits `(batch, time, vocab)`); error when it cannot match them (a mask with
    more axes than the output, or a different time length).

    ## Why is this bad?
    Often it is what you want (a sequence tagger should not be scored on padding),
    but it is implicit: the same model without the mask, or with `sample_weight`,
    is weighted differently, and a mask that does not fit the output fails in
    `fit()` with a shape error, or broadcasts onto the wrong axis.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = keras.layers.Conv1D(16, 3, strides=2)(x)  # a custom layer passing the mask on
    y = keras.layers.Dense(5)(x)                  # mask (batch, 20) on (batch, 9, 5)
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = maskviz.layers.MaskedConv1D(16, 3, strides=2)(x)  # mask (batch, 9)
    y = keras.layers.Dense(5)(x)
    ```

    ## Fix safety
    *Display-only*: the info case needs no fix; a mismatched mask is fixed where
    it went out of step (see MV104).
    """
    by_id = ctx.trace.by_id()
    for out in ctx.trace.outputs:
        if out.mask is None:
            continue
        call = by_id.get(out.source) if out.source else None
        m = tuple(out.mask.shape)
        s = tuple(out.shape)
        fits = len(m) <= len(s) and all(
            a is None or b is None or a == b for a, b in zip(m, s[: len(m)])
        )
        if fits:
            yield ctx.finding(
                call,
                f"Model output `{out.name}` {fmt_shape(s)} carries mask {fmt_shape(m)}"
                + (f" ({out.mask.kept:.0%} kept on the probe)" if out.mask.kept is not None else "")
                + ": Keras weights its loss and metrics with this mask, so masked "
                "positions are not trained on or scored. Received: mask from "
                f"`{out.source}`.",
                suggestion=(
                    "Nothing to do if this is meant (a sequence tagger); otherwise drop the "
                    "mask before the output (a layer with `compute_mask` returning None) "
                    "or weight the loss with `sample_weight` explicitly."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "no change needed if intended"),
                details=(("output", out.name), ("mask_shape", m)),
            )
        else:
            why = (
                f"the mask has {len(m)} axes, the output {len(s)}"
                if len(m) > len(s)
                else f"the mask's axes {fmt_shape(m)} differ from the output's leading axes "
                f"{fmt_shape(s[: len(m)])}"
            )
            yield ctx.finding(
                call,
                f"Model output `{out.name}` {fmt_shape(s)} carries mask {fmt_shape(m)} that cannot "
                f"weight its loss: {why}. Received: mask from `{out.source}`. Expected a "
                f"mask of shape {fmt_shape(s[: max(1, min(len(m), len(s) - 1))])}. Keras "
                "applies it to the loss in `fit()`, where it fails or broadcasts onto the "
                "wrong axis.",
                suggestion=(
                    "Recompute the mask where the time axis changes (e.g. "
                    "`maskviz.layers.MaskedConv1D` for strided or valid convolutions), or drop "
                    "it before the output if the output is not a sequence."
                ),
                severity=Severity.ERROR,
                fix=Fix(Applicability.DISPLAY_ONLY, "recompute or drop the output mask"),
                details=(("output", out.name), ("mask_shape", m)),
            )
