"""MV111 compute-mask-ignored: flags a call whose output carries a mask that differs from
what the layer's own `compute_mask` returns for the same inputs.

The rule's docstring is its documentation (`maskviz explain MV111`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .advice import builtin_advice
from .queries import fmt_shape, keras_builtin, owned_by_parent


@rule("MV111", "compute-mask-ignored", Severity.WARNING)
def compute_mask_ignored(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a call whose output carries a mask that differs from what the layer's own
    `compute_mask` returns for the same inputs. When that loses a mask something
    downstream needs, MV101 reports it instead (one finding per cause); a layer inside a
    wrapper that takes the mask (the LSTMs of a `Bidirectional`) is the wrapper's
    business. For one of Keras's own layers (an `LSTM` on a Keras whose RNNs do not pass
    masks on) it is info: it names what the installed Keras does and the repair
    (a `maskviz.layers` twin or an explicit `mask=`), since the class is not yours to edit.

    ## Why is this bad?
    Keras calls `compute_mask` only when `supports_masking` is true and the output
    has no mask yet. A layer that sets `supports_masking = False` but overrides
    `compute_mask`, or whose `call` returns a tensor that already carries another
    mask (its input, unchanged), hands downstream a mask its author did not mean.

    ## Example
    ```python
    class Shift(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.supports_masking = False       # compute_mask below is never called
        def compute_mask(self, x, mask=None):
            return mask[:, 1:]
    ```

    Use instead:
    ```python
    class Shift(keras.layers.Layer):
        def compute_mask(self, x, mask=None):   # supports_masking follows from it
            return mask[:, 1:]
    ```

    ## Fix safety
    *Display-only*: it depends on which of the two masks was meant.
    """
    for call in ctx.trace.calls:
        if call.via != "__call__" or call.computed_mask_matches is not False:
            continue
        if owned_by_parent(ctx, call):
            # The wrapper around it (Bidirectional, an RNN) decides what comes out.
            continue
        attached = call.outputs[0].mask if call.outputs else None
        made = call.computed_mask[0] if call.computed_mask else None
        if made is None:
            # `compute_mask` returns None on purpose in layers that attach their mask
            # in `call` (ReversibleEmbedding, keras-hub's TokenAndPositionEmbedding).
            continue
        what = (
            f"`{call.path}` ({call.class_name}) output carries "
            f"{'no mask' if attached is None else 'mask ' + fmt_shape(attached.shape)}, but its "
            f"`compute_mask` returns a mask {fmt_shape(made.shape)}"
        )
        builtin = keras_builtin(ctx, call)
        if builtin is not None:
            # Keras's own layer, by its design in this version: nothing to edit, and
            # nothing downstream needs the mask (else MV101 reports this call, and the
            # overlap policy keeps MV101's finding: one cause, one finding).
            yield ctx.finding(
                call,
                f"{what}. No layer downstream needs it, so nothing is lost here yet.",
                suggestion=builtin_advice(call, builtin, made),
                severity=Severity.INFO,
                fix=Fix(Applicability.DISPLAY_ONLY, "pass the mask on with a twin or mask="),
            )
            continue
        why = (
            "`supports_masking` is False, so Keras never calls `compute_mask`"
            if not call.supports_masking
            else "the output already carried a mask, so Keras did not call `compute_mask`"
        )
        yield ctx.finding(
            call,
            f"{what}: {why}.",
            suggestion=(
                "Make them agree: set `supports_masking = True` (or drop the override), and "
                "return a new tensor from `call` rather than the input itself."
            ),
            fix=Fix(Applicability.DISPLAY_ONLY, "make compute_mask and call agree"),
        )
