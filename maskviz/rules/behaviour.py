"""Behavioural rules (MV106-MV109): what the probe data and the leak oracle show.

MV107 and MV108 read the leak oracle's result (`ctx.oracle`, see
`maskviz/oracle.py`); they find nothing when the oracle did not run. MV106 reads
the values a `Masking` layer saw; MV109 the masks attached to the model outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, MaskOf, Severity
from . import Context, rule
from .structure import _seq_input


def _shape(s: tuple) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in s)
    return f"({dims}{',' if len(s) == 1 else ''})"


def _tensor(t: Any) -> str:
    if t is None:
        return "?"
    m = "no mask" if t.mask is None else f"mask {_shape(t.mask.shape)}"
    return f"{_shape(t.shape)} with {m}"


def _source_name(ctx: Context, key: str) -> str:
    if key.startswith("input:"):
        return f"input `{key[len('input:') :]}`"
    try:
        c = ctx.trace.call(key)
    except KeyError:
        return f"`{key}`"
    return f"`{c.path}` ({c.class_name})"


def _pct(x: float) -> str:
    if x != x or x == float("inf"):
        return "inf"
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1e}"


def _rows(rows: tuple[int, ...], layouts: tuple[str, ...]) -> str:
    return f"row{'s' if len(rows) != 1 else ''} {', '.join(map(str, rows))} ({', '.join(layouts)})"


# --------------------------------------------------------------------------- MV106


@rule("MV106", "partial-feature-mask", Severity.WARNING)
def partial_feature_mask(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Reads the values a `Masking` layer received (on the probe, or on your samples
    with `--data`) and counts the timesteps where some, but not all, features
    equal `mask_value`.

    ## Why is this bad?
    `Masking` masks a step only when *every* feature equals `mask_value`. A step
    where only some features are padding (a sensor that did not report, a field
    left empty, a ReLU output that is zero in a few units) stays unmasked, and the
    padding value is fed to the model as if it were a measurement. Nothing warns.

    ## Example
    ```python
    x = keras.Input((None, 3))            # missing readings are 0.0
    y = keras.layers.Masking(0.0)(x)      # [0.0, 1.2, 0.0] is NOT masked
    y = keras.layers.LSTM(16)(y)
    ```

    Use instead:
    ```python
    x = keras.Input((None, 3))
    y = maskviz.layers.FeatureMasking(mask_value=0.0)(x)  # fills + flags missing features,
    y = keras.layers.LSTM(16)(y)                          # masks fully-missing steps
    ```

    ## Fix safety
    *Unsafe*: `FeatureMasking` appends one indicator per feature by default, which
    changes the next layer's input size (and weights); with
    `add_indicators=False` it only fills, which changes values where features
    were missing.
    """
    if ctx.model is None or ctx.probe is None:
        return
    import numpy as np

    from ..oracle import _layer_for

    trace = ctx.trace
    for call in trace.calls:
        if call.via != "__call__" or not call.observed or call.error:
            continue
        if call.class_name == "FeatureMasking":
            continue
        if call.class_name != "Masking" and call.role != "generator":
            continue
        layer = _layer_for(ctx.model, call)
        if layer is None or not hasattr(layer, "mask_value"):
            continue
        seq = _seq_input(call)
        if seq is None or seq.source is None:
            continue
        if seq.source.startswith("input:"):
            arr = ctx.probe.values.get(seq.source[len("input:") :])
        else:
            vals = trace.values.get(seq.source) or ()
            arr = vals[seq.source_index] if seq.source_index < len(vals) else None
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.ndim < 3 or not np.issubdtype(arr.dtype, np.number):
            continue
        mv = float(layer.mask_value)
        eq = np.isnan(arr) if mv != mv else arr == mv
        # Keras's Masking compares the last axis; masks that cover whole steps
        # (TimestepMasking) compare every axis after time.
        axes = (-1,) if call.class_name == "Masking" else tuple(range(2, arr.ndim))
        partial = eq.any(axis=axes) & ~eq.all(axis=axes)
        count = int(partial.sum())
        if not count:
            continue
        total = int(partial.size)
        n_feat = int(np.prod([arr.shape[a] for a in axes]))
        where = "your `--data` samples" if ctx.probe.from_data else "the probe"
        producer = (
            f"model input `{seq.source[len('input:') :]}`"
            if seq.source.startswith("input:")
            else f"`{seq.source}`"
        )
        yield ctx.finding(
            "MV106",
            call,
            f"`{call.path}` ({call.class_name}) saw {count} of {total} timesteps where some "
            f"but not all of the {n_feat} features equal `mask_value={mv:g}`; a step is "
            "masked only when all of them do, so these steps stay unmasked and their "
            f"padding values are fed as data. Received: input {_shape(arr.shape)} from "
            f"{producer} on {where}. Expected each step to be all padding or no padding.",
            suggestion=(
                f"Replace `{call.name}` with `maskviz.layers.FeatureMasking(mask_value={mv:g})`: "
                "it fills missing features, appends a missing-indicator per feature, and "
                "masks the steps where every feature is missing."
            ),
            fix=Fix(Applicability.UNSAFE, "replace Masking with maskviz.layers.FeatureMasking"),
            details=(("partial_steps", count), ("steps", total), ("mask_value", mv)),
        )


# --------------------------------------------------------------------------- MV107


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
        sources = ", ".join(dict.fromkeys(_source_name(ctx, s.source) for s, _ in items))
        change = next(
            (ch for s, _ in items for ch in s.changed if ch.call_id == call_id),
            None,
        )
        seq = _seq_input(call)
        out = call.outputs[0] if call.outputs else None
        how = {
            "mask": "the positions its own output mask keeps",
            "source-keep": "the positions the source's mask keeps (the output still has "
            "the source's time axis and no mask)",
            "whole": "every position (no mask, no time axis)",
        }.get(change.compared if change else "", "its kept positions")
        size = (
            f"up to {_pct(leak.change)} of its scale (max |change| {change.max_abs:.3g}, "
            f"max |value| {change.scale:.3g})"
            if change
            else f"up to {_pct(leak.change)} of its scale"
        )
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
            "MV107",
            call,
            f"Padding leaks into `{call.path}` ({call.class_name}): with only the padded "
            f"values of {sources} replaced by noise (mask unchanged), its output changed by "
            f"{size} at {how}, in {_rows(rows, layouts)}.{reach} Received: "
            f"input {_tensor(seq)}, output {_tensor(out)}. Expected kept positions to "
            f"be unchanged.{left_note}",
            suggestion=_leak_suggestion(call, left_only, _upstream_dropper(ctx, call)),
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


def _upstream_dropper(ctx: Context, call: Any) -> Any:
    """The nearest call upstream that received a mask and returned none."""
    by_id = ctx.trace.by_id()
    seq = _seq_input(call)
    cur = by_id.get(seq.source) if seq is not None and seq.source else None
    for _ in range(len(by_id)):
        if cur is None:
            return None
        if cur.role == "destroyer":
            return cur
        nxt = _seq_input(cur)
        cur = by_id.get(nxt.source) if nxt is not None and nxt.source else None
    return None


def _not_delivered(call: Any, seq: Any) -> bool:
    """The call takes a mask, its sequence carried one, and `call` got none (MV102)."""
    return (
        call.call_accepts_mask
        and not call.received
        and not call.explicit_mask
        and seq is not None
        and seq.mask is not None
    )


def _leak_suggestion(call: Any, left_only: bool, dropper: Any = None) -> str:
    cls = call.class_name
    tail = " Or pad sequences on the right." if left_only else ""
    seq = _seq_input(call)
    if call.call_accepts_mask and (seq is None or seq.mask is None) and dropper is not None:
        return (
            f"`{call.name}` would use a mask, but `{dropper.path}` ({dropper.class_name}) "
            "upstream dropped it (see MV101 there): make that layer pass the mask on, and "
            f"`{call.name}` gets it." + tail
        )
    if cls == "Conv1D":
        return (
            "Replace it with `maskviz.layers.MaskedConv1D(...)` (same weights): it zeroes "
            "padded steps before convolving and returns a mask aligned with its output." + tail
        )
    if cls == "GlobalMaxPooling1D":
        return (
            "Use `maskviz.layers.MaskedGlobalMaxPooling1D()`: it takes the max over kept "
            "steps only." + tail
        )
    if cls == "Flatten":
        return (
            "`Flatten` mixes every step, padded or not, into one vector: pool over time "
            "with a mask-aware layer instead (`GlobalAveragePooling1D()` uses the mask, "
            "`maskviz.layers.MaskedGlobalMaxPooling1D()`)." + tail
        )
    if _not_delivered(call, seq):
        return (
            f"`{call.name}` accepts a mask but received none (Keras fills `mask` only for "
            f"a call with one tensor argument): pass it, `{call.name}(..., mask=mask)`, or "
            "use `maskviz.layers.MaskedLSTM`/`MaskedGRU`/`MaskedRNN`, which read the "
            "sequence's mask themselves." + tail
        )
    if any(t.source is None for t in call.inputs):
        return (
            f"An input of `{call.name}` is made by an operation maskviz does not trace (a "
            "slice such as `x[:, 0]`, a reshape or an arithmetic op), and that operation "
            "reads padded positions. Take the position from the mask (e.g. the first or "
            "last kept step) or pool with the mask." + tail
        )
    if call.is_container:
        return (
            f"The code in `{call.class_name}.call` between its sublayers reads padded "
            "positions: pass the mask to the operations that mix steps (attention, "
            "pooling, recurrence), or zero padded steps first (`x * mask[..., None]`)." + tail
        )
    return (
        f"`{cls}` mixes padded steps into kept ones. Zero the padded steps before it "
        "(`x * ops.cast(mask, x.dtype)[..., None]`) or use a layer whose `call` takes "
        "`mask`." + tail
    )


def _leak_fix(call: Any) -> Fix:
    # What to repair, not how: `maskviz fix` searches candidates and measures them.
    if _not_delivered(call, _seq_input(call)):
        seq = _seq_input(call)
        return Fix(
            Applicability.SAFE,
            "pass the sequence input's own mask explicitly with `mask=`",
            call_kwargs=(("mask", MaskOf(seq.arg)),),
        )
    return Fix(Applicability.SAFE, "keep padding out of this call (verified by maskviz fix)")


# --------------------------------------------------------------------------- MV108


@rule("MV108", "fully-masked-sample", Severity.WARNING)
def fully_masked_sample(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    The leak oracle appends two samples in which every step is masked (tokens all
    padding, or the mask source masking every step) and whose padding values
    differ. It reports the first call where such a sample gives NaN or inf, and
    the first call where its output is not *neutral*: the two samples, identical
    except for their padding values, give different outputs at the positions the
    oracle compares (see MV107). A neutral output carries no information from the
    padding; it need not be zero (a `Dense` bias after a masked RNN's zero state
    is fine).

    ## Why is this bad?
    Empty sequences happen (a blank document, a sensor with no readings, a batch
    sliced to a short window). A NaN from one empty sample poisons the whole
    batch: Keras weights the loss with the mask by multiplying, and NaN * 0 is
    NaN. A non-neutral output means the prediction for an empty sample is
    whatever the padding happened to contain. The classic case is a masked
    average (`GlobalAveragePooling1D` with a mask) that divides by zero kept
    steps.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    y = keras.layers.GlobalAveragePooling1D()(x)   # 0 / 0 for an all-padding row
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    m = ops.cast(ops.not_equal(tokens, 0), x.dtype)[..., None]
    y = ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)  # 0 when empty
    ```
    or drop empty samples from the data.

    NaN/inf is a warning; a non-neutral output is info.

    ## Fix safety
    *Display-only*: what an empty sample should give depends on the model.
    """
    oracle = ctx.oracle
    if oracle is None:
        return
    by_id = ctx.trace.by_id()
    seen: set[tuple[str, str]] = set()
    for src in oracle.sources:
        for issue in src.fully_masked:
            key = (issue.call_id, issue.kind)
            call = by_id.get(issue.call_id)
            if key in seen or call is None:
                continue
            seen.add(key)
            outs = ", ".join(f"`{o}`" for o in issue.outputs) or "no output"
            source = _source_name(ctx, src.source)
            out = call.outputs[0] if call.outputs else None
            if issue.kind == "nonfinite":
                msg = (
                    f"A sample whose every step is masked gives NaN/inf at `{call.path}` "
                    f"({call.class_name}): {issue.count} non-finite values in its output "
                    f"{_tensor(out)}, reaching model output{'s' if len(issue.outputs) > 1 else ''}"
                    f" {outs}. Received: every step of {source} masked. Expected finite "
                    "values (NaN * 0 is NaN, so the masked loss becomes NaN)."
                )
                suggestion = (
                    "Guard the reduction for empty samples: divide by "
                    "`ops.maximum(count, 1)` instead of the number of kept steps, or drop "
                    "samples with no kept step from the data."
                    if "Average" in call.class_name or "Pooling" in call.class_name
                    else f"Make `{call.name}` return a finite constant when no step is kept "
                    "(guard divisions and all-masked softmaxes), or drop empty samples."
                )
            else:
                msg = (
                    f"A sample whose every step is masked gets an output from `{call.path}` "
                    f"({call.class_name}) that depends on its padding values: two such samples "
                    f"differing only in padding differ by up to {_pct(issue.change)} of the "
                    f"output's scale ({issue.count} values), reaching {outs}. Received: every "
                    f"step of {source} masked, output {_tensor(out)}. Expected the same "
                    "output for any padding."
                )
                suggestion = (
                    f"Make `{call.name}` give a constant for empty samples, e.g. zero its "
                    "output where the mask keeps no step (`ops.where(ops.any(mask, axis=1)"
                    "[:, None], y, 0)`), or drop empty samples from the data."
                )
            yield ctx.finding(
                "MV108",
                call,
                msg,
                suggestion=suggestion,
                # NaN poisons a batch's loss; a padding-dependent output for an empty
                # sample is worth knowing but often harmless (BERT's pooled output).
                severity=Severity.WARNING if issue.kind == "nonfinite" else Severity.INFO,
                fix=Fix(Applicability.DISPLAY_ONLY, "handle samples with no kept step"),
                details=(
                    ("kind", issue.kind),
                    ("outputs", issue.outputs),
                    ("count", issue.count),
                    ("source", src.source),
                ),
            )


# --------------------------------------------------------------------------- MV109


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
                "MV109",
                call,
                f"Model output `{out.name}` {_shape(s)} carries mask {_shape(m)}"
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
                else f"the mask's axes {_shape(m)} differ from the output's leading axes "
                f"{_shape(s[: len(m)])}"
            )
            yield ctx.finding(
                "MV109",
                call,
                f"Model output `{out.name}` {_shape(s)} carries mask {_shape(m)} that cannot "
                f"weight its loss: {why}. Received: mask from `{out.source}`. Expected a "
                f"mask of shape {_shape(s[: max(1, min(len(m), len(s) - 1))])}. Keras "
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
