"""MV113 padding-dependent-output: runs the same real content padded differently and
compares the model's outputs at real positions (and its pooled or last-step outputs,
which have no time axis).

The rule's docstring is its documentation (`maskviz explain MV113`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .advice import leak_suggestion
from .queries import (
    fmt_change,
    fmt_rows,
    fmt_tensor,
    invariances,
    seq_input,
    upstream_dropper,
)


@rule("MV113", "padding-dependent-output", Severity.ERROR)
def padding_dependent_output(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Runs the same real content padded differently and compares the model's
    outputs at real positions (and its pooled or last-step outputs, which have no
    time axis): with more padding, with the padding moved to the other side, and
    truncated to its real length (no padding at all). Padding is found in the data:
    token id 0, steps equal to `Masking`'s `mask_value`, the steps an explicit mask
    input marks off, or a run of constant steps at the end or start of rows in
    `--data`. Keras masks are not needed: a model with no mask at all is checked
    like any other. The finding is at the first calls where real positions change
    (each call's output is compared between the runs), and says which variant
    changed which output, in which rows and by how much.

    A change counts when `max |delta| > 1e-6 + 1e-3 * max |baseline|` over the
    compared positions. Severity is *error* when more padding, or none, changes a
    row that is not padded on the left; *warning* when only the side of the padding
    matters (BERT reads its `[CLS]` token at position 0: right for right padding) or
    only left-padded rows change (a causal model that reads padding before the real
    steps), unless the change first appears at a call whose input carried a mask: that
    mask declared the steps padding, so where they sit must not move real outputs. With
    `--data`, left-padded rows are the user's own: a change in them is an error too.

    ## Why is this bad?
    The prediction for a sentence depends on how long the longest sentence of its
    batch was, or on the side the tokenizer padded. Perturbing padded *values*
    does not show this: an RNN with `return_sequences=True` fills padded steps with
    its carried state whatever the padding holds, and a layer that drops the mask
    afterwards (a `Conv1D`, a `Dense` followed by an unmasked mean) reads those
    steps. So does a model with no mask at all (`Embedding` without `mask_zero`,
    then `GlobalAveragePooling1D`).

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16)(tokens)          # no mask_zero
    y = keras.layers.GlobalAveragePooling1D()(x)           # averages the padding in
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    y = keras.layers.GlobalAveragePooling1D()(x)           # uses the mask
    ```

    ## Fix safety
    *Display-only*: the repair depends on where the mask is lost (see MV101 and
    MV107 at the same calls), or on making a mask where there is none.
    """
    inv = invariances(ctx)
    if inv is None:
        return
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for v in inv.of("length", "side", "truncation"):
        for call in _at(ctx, v):
            grouped.setdefault(call.id if call is not None else "", []).append((call, v))
    for _, items in grouped.items():
        call = items[0][0]
        worst = max((v for _, v in items), key=lambda v: v.change)
        rows = tuple(sorted({r for _, v in items for r in v.rows}))
        layouts = tuple(sorted({x for _, v in items for x in v.layouts}))
        left_only = all(v.left_padding_only for _, v in items)
        # Error when the amount of padding (or its absence) changes the outputs of a
        # row that is not padded on the left; a model that depends only on the side
        # of the padding, or only in left-padded rows, is right for data padded the
        # way it was trained (BERT reads position 0), so that is a warning.
        # The side counts too where the change first appears at a call whose input
        # carried a mask: the mask declared those steps padding, yet where they sit moves
        # the call's real outputs (a mask dropped there, e.g. Flatten after Masking).
        # Left-padded rows of the user's own data (`--data`) are real: a change there
        # counts, whereas the probe's left-padded row only shows what left padding would do.
        from_data = bool(getattr(ctx.probe, "from_data", False))
        error = any(
            v.invariance in ("length", "truncation") and (from_data or not v.left_padding_only)
            for _, v in items
        ) or (
            call is not None and call.input_masked and any(v.invariance == "side" for _, v in items)
        )
        side_only = all(v.invariance == "side" for _, v in items)
        parts = [
            f"with {v.what} ({v.invariance}), output `{v.target}` changed "
            f"{fmt_change(v.change, v.max_abs)} in {fmt_rows(v.rows, v.layouts)}"
            for _, v in items
        ]
        where = (
            f" The change first appears at `{call.path}` ({call.class_name})"
            + (f", via {' -> '.join(worst.paths[0])}" if worst.paths and worst.paths[0] else "")
            + "."
            if call is not None and worst.calls
            else " Not localised to a call."
        )
        received = ""
        if call is not None:
            seq = seq_input(call)
            out = call.outputs[0] if call.outputs else None
            received = f" Received: input {fmt_tensor(seq)}, output {fmt_tensor(out)}."
        yield ctx.finding(
            call,
            "The outputs at real positions depend on the padding: "
            + "; ".join(parts)
            + "."
            + where
            + received
            + " Expected the same outputs at real positions whatever the padding."
            + (
                " Only the side of the padding matters here: fine if your data is always "
                "padded on the side the model expects."
                if side_only
                else ""
            ),
            suggestion=(
                _no_mask_suggestion(ctx)
                or leak_suggestion(call, left_only, upstream_dropper(ctx, call))
                if call is not None
                else "Give the model a mask (`mask_zero=True`, `Masking`) that reaches every "
                "layer mixing steps."
            ),
            fix=Fix(Applicability.DISPLAY_ONLY, "make the padding reach no real output"),
            severity=Severity.ERROR if error else Severity.WARNING,
            details=(
                ("invariances", tuple(dict.fromkeys(v.invariance for _, v in items))),
                ("outputs", tuple(dict.fromkeys(v.target for _, v in items))),
                ("change", round(float(worst.change), 6)),
                ("rows", rows),
                ("layouts", layouts),
            ),
        )


def _at(ctx: Context, v: Any) -> list[Any]:
    """The calls a violation is reported at: its first calls, else the output's call."""
    by_id = ctx.trace.by_id()
    calls = [by_id[c] for c in v.calls if c in by_id]
    if calls:
        return calls
    for o in ctx.trace.outputs:
        if o.name == v.target and o.source in by_id:
            return [by_id[o.source]]
    return [None]


def _no_mask_suggestion(ctx: Context) -> str:
    """When no call of the model makes or carries a mask at all."""
    if any(c.output_masked or c.role == "generator" for c in ctx.trace.calls):
        return ""
    return (
        "The model has no mask at all, so every layer treats padding as data. Make one "
        "where the padding enters: `Embedding(..., mask_zero=True)` for token ids padded "
        "with 0, `Masking(mask_value=...)` for padded float steps, or pass "
        "`mask=ops.not_equal(tokens, 0)` to the layers that mix steps."
    )
