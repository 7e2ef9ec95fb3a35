"""MV106 partial-feature-mask: reads the values a `Masking` layer received (on the probe,
or on your samples with `--data`) and counts the timesteps where some, but not all,
features equal `mask_value`.

The rule's docstring is its documentation (`maskviz explain MV106`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import fmt_shape, seq_input


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
        seq = seq_input(call)
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
            call,
            f"`{call.path}` ({call.class_name}) saw {count} of {total} timesteps where some "
            f"but not all of the {n_feat} features equal `mask_value={mv:g}`; a step is "
            "masked only when all of them do, so these steps stay unmasked and their "
            f"padding values are fed as data. Received: input {fmt_shape(arr.shape)} from "
            f"{producer} on {where}. Expected each step to be all padding or no padding.",
            suggestion=(
                f"Replace `{call.name}` with `maskviz.layers.FeatureMasking(mask_value={mv:g})`: "
                "it fills missing features, appends a missing-indicator per feature, and "
                "masks the steps where every feature is missing."
            ),
            fix=Fix(Applicability.UNSAFE, "replace Masking with maskviz.layers.FeatureMasking"),
            details=(("partial_steps", count), ("steps", total), ("mask_value", mv)),
        )
