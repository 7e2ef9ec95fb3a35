"""MV115 mask-misses-padding: compares each mask a layer makes (`Masking`,
`Embedding(mask_zero=True)`, any generator in the trace) with the padding found in the
data that feeds it.

The rule's docstring is its documentation (`maskviz explain MV115`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule


@rule("MV115", "mask-misses-padding", Severity.WARNING)
def mask_misses_padding(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Compares each mask a layer makes (`Masking`, `Embedding(mask_zero=True)`, any
    generator in the trace) with the padding found in the data that feeds it: the
    steps an explicit mask input marks off, or a run of constant steps at the end or
    start of rows in `--data`. It fires when the mask keeps *every* padded step.

    ## Why is this bad?
    The mask is there but masks the wrong thing: `Masking(mask_value=-1.0)` on data
    padded with `0.0`, a mask computed from the wrong token id. Every layer that
    reads the mask treats padding as data.

    ## Example
    ```python
    x = keras.layers.Masking(mask_value=-1.0)(features)   # the data is padded with 0.0
    ```

    Use instead:
    ```python
    x = keras.layers.Masking(mask_value=0.0)(features)
    ```

    ## Fix safety
    *Display-only*: maskviz cannot know which padding value is meant.
    """
    if ctx.probe is None:
        return
    import numpy as np

    for call in ctx.trace.calls:
        if call.role != "generator" or not call.output_masked:
            continue
        masks = ctx.trace.masks.get(call.id) or ()
        if not masks or masks[0] is None:
            continue
        m = np.asarray(masks[0]).astype(bool)
        if m.ndim != 2:
            continue
        for inp in ctx.probe.inputs:
            keep = ctx.probe.keep.get(inp.name)
            if keep is None or tuple(np.shape(keep)) != tuple(m.shape):
                continue
            keep = np.asarray(keep, bool)
            if keep.all() or f"input:{inp.name}" not in ctx.graph.ancestors(call.id):
                continue
            if m[~keep].all():
                n = int((~keep).sum())
                vals = np.asarray(ctx.probe.values.get(inp.name))
                nan_padded = vals.dtype.kind == "f" and bool(np.isnan(vals[~keep]).all())
                how = (
                    "The data is padded with NaN, and NaN never equals NaN, so no "
                    "`mask_value` can match it: pad with a number instead (e.g. "
                    "`np.nan_to_num(x, nan=0.0)`) and mask that value."
                    if nan_padded
                    else f"Make `{call.name}` mask the value the data is padded with "
                    "(`mask_value=` of `Masking`, the padding id of the tokenizer)."
                )
                yield ctx.finding(
                    call,
                    f"`{call.path}` ({call.class_name}) makes a mask that keeps all {n} "
                    f"padded steps of input `{inp.name}`: none of the padding is masked. "
                    f"Received: mask {tuple(m.shape)} keeping {int(m.sum())} of {m.size} "
                    f"steps; padding found in the data: {n} steps. Expected the mask to "
                    "be off on padded steps.",
                    suggestion=how,
                    fix=Fix(Applicability.DISPLAY_ONLY, "mask the data's padding value"),
                    details=(("input", inp.name), ("padded_steps", n)),
                )
