"""MV105 explicit-mask-override: flags a call that was given `mask=` explicitly, where that
mask differs from the mask its input already carried.

The rule's docstring is its documentation (`maskviz explain MV105`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import fmt_mask, fmt_shape, seq_input


@rule("MV105", "explicit-mask-override", Severity.WARNING)
def explicit_mask_override(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a call that was given `mask=` explicitly, where that mask differs from the
    mask its input already carried.

    ## Why is this bad?
    An explicit mask wins over the propagated one. When it comes from another
    sequence (the encoder's mask passed to the decoder) or from an older tensor,
    the layer masks the wrong steps, silently.

    ## Example
    ```python
    y = keras.layers.LSTM(32)(dec_x, mask=enc_mask)   # dec_x carries its own mask
    ```

    Use instead:
    ```python
    y = keras.layers.LSTM(32)(dec_x)                  # its own mask is used
    ```

    ## Fix safety
    *Display-only*: maskviz cannot know which mask was meant.
    """
    for call in ctx.trace.calls:
        if call.explicit_mask and call.explicit_mask_matches is False:
            seq = seq_input(call)
            got = call.received_mask[0] if call.received_mask else None
            yield ctx.finding(
                call,
                f"`{call.path}` ({call.class_name}) was called with an explicit `mask=` that "
                f"differs from the mask its input `{seq.arg if seq else '?'}` carried. "
                f"Received: explicit mask "
                f"{fmt_shape(got.shape) if got else '?'}"
                f"{f' keeping {got.kept:.0%}' if got and got.kept is not None else ''}, "
                f"input {fmt_mask(seq)}"
                f"{f' keeping {seq.mask.kept:.0%}' if seq and seq.mask and seq.mask.kept is not None else ''}.",  # noqa: E501
                suggestion=(
                    "Check that the explicit mask belongs to this sequence; drop `mask=` to "
                    "use the input's own mask."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "drop the explicit mask= argument"),
            )
