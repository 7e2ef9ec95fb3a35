"""Invariance rules (MV113-MV115): what the length/side and loss invariances measured.

They read `ctx.oracle.invariance` (`maskviz/oracle/invariance.py`) and find nothing
when the oracle did not run. MV115 compares the masks the trace saw with the padding
the data has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .behaviour import _leak_suggestion, _pct, _tensor, _upstream_dropper
from .structure import _seq_input


def _invariance(ctx: Context) -> Any:
    return getattr(ctx.oracle, "invariance", None) if ctx.oracle is not None else None


def _rows(rows: tuple[int, ...], layouts: tuple[str, ...]) -> str:
    return f"row{'s' if len(rows) != 1 else ''} {', '.join(map(str, rows))} ({', '.join(layouts)})"


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


# --------------------------------------------------------------------------- MV113


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
    inv = _invariance(ctx)
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
            f"with {v.what} ({v.invariance}), output `{v.target}` changed by up to "
            f"{_pct(v.change)} of its scale (max |change| {v.max_abs:.3g}) in "
            f"{_rows(v.rows, v.layouts)}"
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
            seq = _seq_input(call)
            out = call.outputs[0] if call.outputs else None
            received = f" Received: input {_tensor(seq)}, output {_tensor(out)}."
        yield ctx.finding(
            "MV113",
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
                or _leak_suggestion(call, left_only, _upstream_dropper(ctx, call))
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


# --------------------------------------------------------------------------- MV114


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
    inv = _invariance(ctx)
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
            f"with {v.what}, the {v.target} changed by {_pct(v.change)} "
            f"(max |change| {v.max_abs:.3g}, scale {v.scale:.3g}){detail} in "
            f"{_rows(v.rows, v.layouts)}"
        )
    yield ctx.finding(
        "MV114",
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


# --------------------------------------------------------------------------- MV115


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

    from ..callgraph import CallGraph

    graph = None
    for call in ctx.trace.calls:
        if call.role != "generator" or not call.output_masked:
            continue
        masks = ctx.trace.masks.get(call.id) or ()
        if not masks or masks[0] is None:
            continue
        m = np.asarray(masks[0]).astype(bool)
        if m.ndim != 2:
            continue
        graph = graph or CallGraph(ctx.trace)
        for inp in ctx.probe.inputs:
            keep = ctx.probe.keep.get(inp.name)
            if keep is None or tuple(np.shape(keep)) != tuple(m.shape):
                continue
            keep = np.asarray(keep, bool)
            if keep.all() or f"input:{inp.name}" not in graph.ancestors(call.id):
                continue
            if m[~keep].all():
                n = int((~keep).sum())
                yield ctx.finding(
                    "MV115",
                    call,
                    f"`{call.path}` ({call.class_name}) makes a mask that keeps all {n} "
                    f"padded steps of input `{inp.name}`: none of the padding is masked. "
                    f"Received: mask {tuple(m.shape)} keeping {int(m.sum())} of {m.size} "
                    f"steps; padding found in the data: {n} steps. Expected the mask to "
                    "be off on padded steps.",
                    suggestion=(
                        f"Make `{call.name}` mask the value the data is padded with "
                        "(`mask_value=` of `Masking`, the padding id of the tokenizer)."
                    ),
                    fix=Fix(Applicability.DISPLAY_ONLY, "mask the data's padding value"),
                    details=(("input", inp.name), ("padded_steps", n)),
                )
