"""MV107 padding-leak: reports where the leak oracle saw padding leak into the outputs.

The rule's docstring is its documentation (`maskviz explain MV107`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, MaskOf, Severity
from . import Context, rule
from .advice import leak_suggestion
from .queries import (
    fmt_pct,
    fmt_rows,
    fmt_tensor,
    not_delivered,
    seq_input,
    source_label,
    upstream_dropper,
)


@rule("MV107", "padding-leak", Severity.ERROR)
def padding_leak(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Reports where the leak oracle saw padding leak into the outputs. For each mask
    source (a layer that makes a mask, such as `Embedding(mask_zero=True)` or
    `Masking`, and each data input paired with an explicit mask input such as
    `padding_mask`) the oracle re-runs the model once with the values at masked
    positions replaced by noise of the tensor's own scale, keeping the mask
    exactly as it was, and compares each call's output with the probe run at the
    positions that matter: where its own output mask keeps; where the source's
    mask keeps, for an unmasked output that still has the source's (batch, time)
    axes (e.g. `Conv1D(padding="same")` after `Masking`); the whole tensor once
    time was pooled or flattened away. The finding is on the *first* call where
    kept values change and that change reaches a model output; calls that only
    inherit the change are not reported. A `Masking` layer fed by a padded float
    input emits exact zeros at padded steps whatever the padding: no noise is put
    there (no input could put anything there); MV113 checks those models by
    varying the amount and side of the padding instead.

    A change counts when `max |delta| > 1e-6 + 1e-3 * max |baseline|` over the
    compared positions. Re-running the same operations on the same kept values is
    bit-exact or differs by float32 round-off (~1e-7 relative), four orders of
    magnitude below the threshold; the noise is of the tensor's own scale, so a
    real leak moves kept values by 1e-2 or more. Clean models are tested on several
    seeds.

    Severity is *error* when rows padded on the right (or rows of `--data`)
    leak, *warning* when only left-padded rows do: a causal RNN that never got its
    mask, or a model that reads a fixed position (BERT's `[CLS]` at index 0), is
    unaffected by right padding.

    ## Why is this bad?
    The model's outputs depend on what sits in the padding: the same sentence
    gives different predictions depending on how long the batch's longest
    sentence was, and training learns from padding. This is what structural rules
    (MV101, MV102) argue about; the oracle shows it happens.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = keras.layers.Conv1D(16, 3, padding="same")(x)   # mixes padded steps in
    y = keras.layers.LSTM(16)(x)
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = maskviz.layers.MaskedConv1D(16, 3, padding="same")(x)  # zeroes padding first
    y = keras.layers.LSTM(16)(x)
    ```
    Likewise: `Flatten` -> a masked pooling (`GlobalAveragePooling1D` uses the
    mask); `GlobalMaxPooling1D` -> `maskviz.layers.MaskedGlobalMaxPooling1D`; an RNN
    called with `initial_state=` -> pass `mask=` or use `maskviz.layers.MaskedLSTM`.

    ## Fix safety
    Measured by `maskviz fix`: a repair (a `maskviz.layers` twin, passing an RNN
    its own mask, zeroing padded steps, a masked reduction) is kept only when the
    leak is gone and rows without padding give the same outputs.
    """
    oracle = ctx.oracle
    if oracle is None:
        return
    by_id = ctx.trace.by_id()
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for src, leak in oracle.leaks:
        grouped.setdefault(leak.call_id, []).append((src, leak))
    for call_id, items in grouped.items():
        call = by_id.get(call_id)
        if call is None:
            continue
        leak = max((lk for _, lk in items), key=lambda lk: lk.change)
        rows = tuple(sorted({r for _, lk in items for r in lk.rows}))
        layouts = tuple(sorted({x for _, lk in items for x in lk.layouts}))
        left_only = bool(layouts) and set(layouts) == {"left-padded"}
        outputs = tuple(dict.fromkeys(o for _, lk in items for o in lk.outputs))
        path = next((p for _, lk in items for p in lk.paths), ())
        sources = ", ".join(dict.fromkeys(source_label(ctx, s.source) for s, _ in items))
        change = next(
            (ch for s, _ in items for ch in s.changed if ch.call_id == call_id),
            None,
        )
        seq = seq_input(call)
        out = call.outputs[0] if call.outputs else None
        how = {
            "mask": "the positions its own output mask keeps",
            "source-keep": "the positions the source's mask keeps (the output still has "
            "the source's time axis and no mask)",
            "whole": "every position (no mask, no time axis)",
        }.get(change.compared if change else "", "its kept positions")
        size = (
            f"by up to {fmt_pct(leak.change)} of its scale (max |change| {change.max_abs:.3g}, "
            f"max |value| {change.scale:.3g})"
            if change
            else f"by up to {fmt_pct(leak.change)} of its scale"
        )
        if not leak.change < float("inf"):
            size = "to NaN or infinity"
        reach = (
            f" It reaches model output{'s' if len(outputs) > 1 else ''} "
            f"{', '.join(f'`{o}`' for o in outputs)}"
            + (f" via {' -> '.join(path)}" if len(path) > 1 else "")
            + "."
        )
        left_note = (
            " Only left-padded rows leak: right-padded rows are unaffected here (as for a "
            "forward RNN, or a read of position 0 such as BERT's `[CLS]`), so it matters "
            "when your data is padded on the left."
            if left_only
            else ""
        )
        yield ctx.finding(
            call,
            f"Padding leaks into `{call.path}` ({call.class_name}): with only the padded "
            f"values of {sources} replaced by noise (mask unchanged), its output changed "
            f"{size} at {how}, in {fmt_rows(rows, layouts)}.{reach} Received: "
            f"input {fmt_tensor(seq)}, output {fmt_tensor(out)}. Expected kept positions to "
            f"be unchanged.{left_note}",
            suggestion=leak_suggestion(call, left_only, upstream_dropper(ctx, call)),
            fix=_leak_fix(call),
            severity=Severity.WARNING if left_only else Severity.ERROR,
            details=(
                ("invariance", "values"),
                ("change", round(float(leak.change), 6)),
                ("rows", rows),
                ("layouts", layouts),
                ("outputs", outputs),
                ("path", tuple(path)),
                ("sources", tuple(s.source for s, _ in items)),
            ),
        )


def _leak_fix(call: Any) -> Fix:
    # What to repair, not how: `maskviz fix` searches candidates and measures them.
    if not_delivered(call, seq_input(call)):
        seq = seq_input(call)
        return Fix(
            Applicability.SAFE,
            "pass the sequence input's own mask explicitly with `mask=`",
            call_kwargs=(("mask", MaskOf(seq.arg)),),
        )
    return Fix(Applicability.SAFE, "keep padding out of this call (verified by maskviz fix)")
