"""MV102 mask-not-delivered: flags a call whose `call` method accepts `mask` but received
`None`, although its sequence input carried a mask.

The rule's docstring is its documentation (`maskviz explain MV102`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, MaskOf, Severity
from . import Context, rule
from .queries import fmt_shape, seq_input


@rule("MV102", "mask-not-delivered", Severity.ERROR)
def mask_not_delivered(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a call whose `call` method accepts `mask` but received `None`, although
    its sequence input carried a mask.

    ## Why is this bad?
    Keras 3 fills the `mask` argument only when a layer is called with a single
    tensor argument. An RNN called as `LSTM(...)(x, initial_state=[h, c])` has two,
    so it runs over the padding as if it were data, silently; its final state
    is the state after the padding.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(dec_tokens)
    y = keras.layers.LSTM(64, return_sequences=True)(x, initial_state=[h, c])
    ```

    Use instead:
    ```python
    mask = keras.layers.Embedding(1000, 64, mask_zero=True).compute_mask(dec_tokens)
    y = keras.layers.LSTM(64, return_sequences=True)(x, initial_state=[h, c], mask=mask)
    # or: maskviz.layers.MaskedLSTM, which reads the sequence's mask itself
    ```

    ## Fix safety
    Passing the sequence's own mask explicitly is *safe*: rows without padding are
    unchanged (their mask is all true).
    """
    for call in ctx.trace.calls:
        if call.via != "__call__" or not call.call_accepts_mask or call.received:
            continue
        if not call.observed or call.explicit_mask:
            continue
        seq = seq_input(call)
        if seq is None or seq.mask is None:
            continue
        others = [t.arg for t in call.inputs if t is not seq and not t.arg.startswith("mask")]
        yield ctx.finding(
            call,
            f"`{call.path}` ({call.class_name}) accepts `mask` but its `call` received "
            f"`mask=None`, although its input `{seq.arg}` {fmt_shape(seq.shape)} carried mask "
            f"{fmt_shape(seq.mask.shape)}. Received: {len(call.inputs)} tensor arguments "
            f"({', '.join([seq.arg, *others])}); Keras fills `mask` only for a call with "
            "one tensor argument.",
            suggestion=(
                f"Pass the mask explicitly: `{call.name}({seq.arg}, "
                + "".join(f"{a}=..., " for a in dict.fromkeys(a.split("[")[0] for a in others))
                + f"mask=mask)` with the mask of `{seq.arg}`, e.g. "
                "`mask = embedding.compute_mask(tokens)`. Or use "
                "`maskviz.layers.MaskedLSTM`/`MaskedGRU`/`MaskedRNN` "
                "(`MaskedLSTM.from_layer(lstm)` keeps the weights), which read it themselves."
            ),
            fix=Fix(
                Applicability.SAFE,
                "pass the sequence input's own mask explicitly with `mask=`",
                call_kwargs=(("mask", MaskOf(seq.arg)),),
            ),
            details=(("input", seq.arg),),
        )
