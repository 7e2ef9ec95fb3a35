"""MV114 learns-from-padding: computes the loss (the model's compiled loss, `--loss NAME`,
or `inspect(..., loss=)`) and the gradients of every trainable weight on targets built
for the probe (or your own batch, with `maskviz.callbacks.PaddingCheck`), then changes
only what is padding.

The rule's docstring is its documentation (`maskviz explain MV114`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import fmt_pct, fmt_rows, invariances


@rule("MV114", "learns-from-padding", Severity.ERROR)
def learns_from_padding(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Computes the loss (the model's compiled loss, `--loss NAME`, or
    `inspect(..., loss=)`) and the gradients of every trainable weight on targets
    built for the probe (or your own batch, with `maskviz.callbacks.PaddingCheck`),
    then changes only what is padding: the targets at padded steps, the amount of
    padding, its side. The loss and every gradient must stay the same. The
    finding says which change moved the loss or which weight's gradient, in which
    rows, and by how much.

    ## Why is this bad?
    The model trains on padding. An output that reaches the loss without its mask
    makes padded steps part of the objective; a mask that reaches a loss that
    cannot use it is ignored; a loss normalised by the number of steps, padded
    ones included, weights short sequences less the more padding the batch has.
    Forward checks can be clean while the gradients are not.

    ## Example
    ```python
    y = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(x))
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(tokens, labels, sample_weight=(tokens != 0))  # normalised by all steps
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    y = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(x))
    model.compile(loss="sparse_categorical_crossentropy")  # the mask weights the loss
    ```

    ## Fix safety
    *Display-only*: the repair is in the model's mask flow or in the loss.
    """
    inv = invariances(ctx)
    if inv is None:
        return
    items = inv.of("loss-targets", "loss-padding", "gradients")
    if not items:
        return
    call = None
    for o in ctx.trace.outputs:
        by_id = ctx.trace.by_id()
        if o.source in by_id:
            call = by_id[o.source]
            break
    parts = []
    for v in items:
        detail = f" ({v.detail})" if v.detail else ""
        parts.append(
            f"with {v.what}, the {v.target} changed by {fmt_pct(v.change)} "
            f"(max |change| {v.max_abs:.3g}, scale {v.scale:.3g}){detail} in "
            f"{fmt_rows(v.rows, v.layouts)}"
        )
    yield ctx.finding(
        call,
        "The loss or its gradients depend on the padding, so the model learns from it: "
        + "; ".join(parts)
        + ". Expected the loss and the gradients of the trainable weights to be unchanged.",
        suggestion=(
            "Make the mask reach the outputs the loss reads (a Keras loss weights by the "
            "prediction's mask and divides by the kept count), or weight padded steps by 0 "
            "and normalise by the number of real steps."
        ),
        fix=Fix(Applicability.DISPLAY_ONLY, "mask the loss"),
        details=(
            ("invariances", tuple(dict.fromkeys(v.invariance for v in items))),
            ("change", round(float(max(v.change for v in items)), 6)),
        ),
    )
