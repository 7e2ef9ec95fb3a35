"""Advice that more than one rule gives, written once.

`builtin_advice` is what MV101 and MV111 say about one of Keras's own layers that
does not pass its mask on; `leak_suggestion` is what MV107 and MV113 say at the call
where padding first changes a real output. Advice picks words, never a verdict.
"""

from __future__ import annotations

from typing import Any

from .queries import not_delivered, seq_input

# The repair for a Keras layer that does not pass its mask on: a `maskviz.layers` twin
# where there is one (the class name only picks the advice, the verdict is observed).
TWINS = {
    "LSTM": "MaskedLSTM.from_layer(lstm)",
    "GRU": "MaskedGRU.from_layer(gru)",
    "SimpleRNN": "MaskedRNN.from_layer(rnn)",
    "RNN": "MaskedRNN.from_layer(rnn)",
    "TimeDistributed": "MaskedTimeDistributed(inner_layer)",
    "Conv1D": "MaskedConv1D.from_layer(conv)",
    "GlobalMaxPooling1D": "MaskedGlobalMaxPooling1D()",
}

CONV1D = (
    "Replace it with `maskviz.layers.MaskedConv1D(...)` (same weights): it zeroes "
    "padded steps before convolving and returns a mask aligned with its output."
)


def builtin_advice(call: Any, version: str, computed: Any) -> str:
    """Advice for one of Keras's own layers: what this Keras version does, and the repair
    (a `maskviz.layers` twin, or an explicit `mask=` downstream), never "edit the class"."""
    cls = call.class_name
    did = (
        f"On Keras {version}, `{cls}` does not pass its mask on "
        f"(`supports_masking` is {call.supports_masking}"
        + (", although its `compute_mask` returns one" if computed is not None else "")
        + ")."
    )
    twin = TWINS.get(cls)
    repair = (
        f"Use `maskviz.layers.{twin}` (same weights; it passes the mask on), or pass"
        if twin
        else "Pass"
    )
    return (
        f"{did} {repair} the mask on yourself: keep it "
        "(`mask = keras.ops.not_equal(tokens, 0)`, or the input's mask) and give it to the "
        f"next layer that uses it, `layer(y, mask=mask)`."
    )


def leak_suggestion(call: Any, left_only: bool, dropper: Any = None) -> str:
    """What to change at a call where padding leaks into real outputs (`dropper`: the
    call upstream that dropped the mask, if any)."""
    cls = call.class_name
    tail = " Or pad sequences on the right." if left_only else ""
    seq = seq_input(call)
    if call.call_accepts_mask and (seq is None or seq.mask is None) and dropper is not None:
        return (
            f"`{call.name}` would use a mask, but `{dropper.path}` ({dropper.class_name}) "
            "upstream dropped it (see MV101 there): make that layer pass the mask on, and "
            f"`{call.name}` gets it." + tail
        )
    if cls == "Conv1D":
        return CONV1D + tail
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
    if not_delivered(call, seq):
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
