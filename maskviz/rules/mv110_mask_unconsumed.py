"""MV110 mask-unconsumed: flags a layer that makes a mask (`Embedding(mask_zero=True)`,
`Masking`) whose mask never reaches a layer that uses it, nor a model output (where the
loss would use it).

The rule's docstring is its documentation (`maskviz explain MV110`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import fmt_shape


@rule("MV110", "mask-unconsumed", Severity.WARNING)
def mask_unconsumed(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a layer that makes a mask (`Embedding(mask_zero=True)`, `Masking`) whose
    mask never reaches a layer that uses it, nor a model output (where the loss
    would use it).

    ## Why is this bad?
    The mask was asked for and then thrown away: everything downstream computes on
    padding as if it were data (e.g. `Flatten` then `Dense`).

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = keras.layers.Flatten()(x)
    y = keras.layers.Dense(1)(x)
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)   # averages over kept steps only
    y = keras.layers.Dense(1)(x)
    ```

    ## Fix safety
    *Display-only*: the right pooling depends on the model.
    """
    masked_outputs = {o.source for o in ctx.trace.outputs if o.mask is not None}
    for call in ctx.trace.calls:
        if call.role != "generator" or call.via != "__call__" or not call.observed:
            continue
        used, stopped_at = _follow(ctx, call, masked_outputs)
        if used:
            continue
        made = call.outputs[0].mask if call.outputs else None
        where = (
            f" It stops at `{stopped_at[0].path}` ({stopped_at[0].class_name})."
            if stopped_at
            else ""
        )
        yield ctx.finding(
            call,
            f"`{call.path}` ({call.class_name}) makes a mask "
            f"{fmt_shape(made.shape) if made else ''}"
            f" that no layer uses and no model output carries.{where} Expected a mask-using "
            "layer (RNN, attention, masked pooling) or a masked output downstream.",
            suggestion=(
                "Keep the mask to a layer that uses it: replace the layer where it stops "
                "with a mask-aware one (e.g. `GlobalAveragePooling1D` instead of `Flatten`), "
                "or drop `mask_zero=True` if padding is meant to be data."
            ),
            fix=Fix(Applicability.DISPLAY_ONLY, "route the mask to a layer that uses it"),
            details=(("stops_at", tuple(c.path for c in stopped_at)),),
            related=tuple(c.id for c in stopped_at),
        )


def _follow(ctx: Context, call: Any, masked_outputs: set[str]) -> tuple[bool, list[Any]]:
    """Follows the mask `call` makes through the calls that pass it on
    (`CallGraph.mask_consumers`, depth first): whether a call receives it or a model
    output carries it, else the calls without a mask-aware `call` where it stops."""
    graph = ctx.graph
    if call.id in masked_outputs:
        return True, []

    def passes_on(node: str) -> bool:
        c = graph.record(node)
        return c.output_masked and not c.received

    stopped_at = []
    for node in graph.walk(call.id, graph.mask_consumers, expand=passes_on, depth_first=True):
        c = graph.record(node)
        if c.received or (c.output_masked and node in masked_outputs):
            return True, []
        if not c.output_masked and c.role == "destroyer":
            stopped_at.append(c)
    return False, stopped_at
