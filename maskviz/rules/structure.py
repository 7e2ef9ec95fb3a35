"""Structural rules: what the trace shows about masks made, carried, delivered and lost.

Every rule reads what the installed Keras actually did on the probe (the masks
attached to tensors, the mask each `call` received), never a table of what a Keras
version is believed to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, MaskOf, Severity
from . import Context, iter_downstream, rule


def _shape(s: tuple) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in s)
    return f"({dims}{',' if len(s) == 1 else ''})"


def _mask_of(t: Any) -> str:
    return "no mask" if t is None or t.mask is None else f"mask {_shape(t.mask.shape)}"


def _children(ctx: Context) -> dict[str, list[Any]]:
    kids: dict[str, list[Any]] = {}
    for c in ctx.trace.calls:
        if c.parent is not None:
            kids.setdefault(c.parent, []).append(c)
    return kids


def _seq_input(call: Any) -> Any:
    for t in call.inputs:
        if t.arg != "mask" and not t.arg.startswith("mask["):
            return t
    return None


def _broadcastable(mask_shape: tuple, shape: tuple) -> bool:
    """A mask of 1s on some axes (an attention mask `(batch, 1, 1, keys)`) broadcasts
    against its tensor: it is not misaligned."""
    if len(mask_shape) > len(shape) or 1 not in mask_shape[1:]:
        return False
    return all(m in (None, 1, d) for m, d in zip(mask_shape, shape))


def _keeps_time(call: Any) -> bool:
    """The call's first output still has the (batch, time) axes of its input."""
    seq = _seq_input(call)
    if seq is None or not call.outputs or len(seq.shape) < 2:
        return False
    out = call.outputs[0]
    return len(out.shape) == len(seq.shape) and tuple(out.shape[:2]) == tuple(seq.shape[:2])


@rule("MV101", "mask-dropped", Severity.ERROR)
def mask_dropped(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a layer call that received a tensor carrying a mask and returned tensors
    without one (or with a weaker one: positions the incoming mask dropped are kept
    again), while a mask-using layer or a per-step model output lies downstream. A layer
    with sublayers is judged by what it returns: an RNN (whose cell is its child) or a
    `TimeDistributed` that drops the mask is named itself; a nested model is named only
    when none of its inner calls dropped the mask. For Keras's own layers the advice names
    what the installed Keras does and a repair (a `maskviz.layers` twin, or `mask=`).

    ## Why is this bad?
    Downstream layers (an RNN, attention, pooling, the loss) then treat padding as
    data. Keras only prints a `UserWarning` when a layer without `supports_masking`
    gets a mask; nothing fails, the model silently learns from padding.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    x = keras.layers.Conv1D(64, 3, padding="same")(x)   # drops the mask
    x = keras.layers.LSTM(64)(x)                         # sees padding as data
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    x = maskviz.layers.MaskedConv1D(64, 3, padding="same")(x)  # zeroes padding, keeps the mask
    x = keras.layers.LSTM(64)(x)
    ```
    For a custom layer that works per timestep, set `self.supports_masking = True`
    in its `__init__` (or wrap it in `maskviz.layers.MaskPassthrough`).

    ## Fix safety
    Measured by `maskviz fix`: a repair (a `maskviz.layers` twin, zeroing padded
    steps and putting the mask back, a masked reduction) is kept only when rows
    without padding give the same outputs; one that changes them is *unsafe*.
    """
    kids = _children(ctx)
    by_id = ctx.trace.by_id()
    for call in ctx.trace.calls:
        if call.via != "__call__" or call.error or not call.outputs:
            continue
        seq = _seq_input(call)
        if seq is None or seq.mask is None:
            continue
        if call.id in kids and not _owns_mask(call) and _dropped_inside(call, kids):
            # A nested model or a layer that leaves masks to its sublayers: the inner
            # call that drops the mask is flagged, not the container too.
            continue
        if _owned_by_parent(call, by_id):
            # Inside a layer that takes the mask itself (an RNN and its cell,
            # MultiHeadAttention, Bidirectional, a keras-hub block): its own code
            # applies it and decides what comes out, so that layer is flagged (or, when
            # it got none, MV102 says so there), not its sublayers.
            continue
        if call.mask_weakened:
            kept_in = seq.mask.kept
            kept_out = call.outputs[0].mask.kept if call.outputs[0].mask else None
            yield ctx.finding(
                "MV101",
                call,
                f"`{call.name}` ({call.class_name}) weakens the mask: its output mask keeps "
                f"positions that the input mask dropped. Received: input mask "
                f"{_shape(seq.mask.shape)} keeping {kept_in:.0%}, output mask keeping "
                f"{kept_out:.0%}. Expected the output mask to keep no more than the input's.",
                suggestion=(
                    f"Make `{call.class_name}.compute_mask` combine the incoming mask "
                    "(`ops.logical_and(new_mask, mask)`) instead of replacing it."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "combine the incoming mask in compute_mask"),
            )
            continue
        if call.output_masked or (call.received and not _keeps_time(call)):
            # Taking the mask and reducing the time axis (an RNN returning its last
            # output, masked pooling) consumes it; keeping the time axis drops it.
            continue
        downstream = list(iter_downstream(ctx.trace, call.id))
        # Users that would want the mask and did not get one from elsewhere.
        users = [
            c for c in downstream if c.call_accepts_mask and c.via == "__call__" and not c.received
        ]
        down_ids = {c.id for c in downstream}
        # An output that still has the call's (batch, time) axes: its loss is per step,
        # so padding counts there (a pooled output's leak is the oracle's business).
        reaches_output = any(
            (o.source == call.id or o.source in down_ids)
            and tuple(o.shape[:2]) == tuple(seq.shape[:2])
            for o in ctx.trace.outputs
        )
        if users:
            # Measured, not assumed: where every invariance held on this data (no leak of
            # padded values, of their amount or side, into real outputs or the loss), a
            # user that got no mask is a hazard, not a violation.
            severity = Severity.WARNING if _invariances_hold(ctx) else Severity.ERROR
            why = (
                f"`{users[0].path}` ({users[0].class_name}) downstream accepts a mask "
                "but will get none"
            ) + (
                "; the padding invariances held on this data"
                if severity == Severity.WARNING
                else ""
            )
        elif reaches_output and _keeps_time(call):
            # Keras weights the loss by the mask of a model output: an output that
            # still has this call's (batch, time) axes would have carried the mask,
            # so a loss the model trains with counts padding (a layer or an op alike).
            # Without a known loss, an output's padded steps are the caller's to skip.
            trains = ctx.loss is not None and _output_keeps_time(ctx, call, downstream)
            severity = Severity.ERROR if trains else Severity.WARNING
            why = "the model output it reaches loses its mask, so the loss counts padding"
        else:
            continue
        yield ctx.finding(
            "MV101",
            call,
            f"`{call.path}` ({call.class_name}) drops the mask: it received "
            f"{seq.arg} {_shape(seq.shape)} with mask {_shape(seq.mask.shape)} and returned "
            f"{_shape(call.outputs[0].shape)} with no mask; {why}. Expected a layer "
            "with `supports_masking=True` or a mask-aware replacement.",
            suggestion=_drop_suggestion(call, _keras_builtin(ctx, call)),
            severity=severity,
            fix=_drop_fix(call),
            details=(("downstream_users", tuple(c.path for c in users[:5])),),
        )


def _invariances_hold(ctx: Context) -> bool:
    """The oracle ran every invariance it could and saw no violation anywhere: no value
    leak, and nothing for the length, side, truncation or loss invariances."""
    oracle = ctx.oracle
    inv = getattr(oracle, "invariance", None) if oracle is not None else None
    if inv is None or not inv.checked:
        return False
    return not oracle.leaking_calls and not inv.violations


def _output_keeps_time(ctx: Context, call: Any, downstream: list) -> bool:
    """A model output reached from `call` has `call`'s (batch, time) axes and no
    mask: the mask dropped at `call` would have reached it (and weighted the loss)."""
    ids = {call.id} | {c.id for c in downstream}
    axes = tuple(call.outputs[0].shape[:2])
    return any(
        o.source in ids and o.mask is None and len(o.shape) >= 2 and tuple(o.shape[:2]) == axes
        for o in ctx.trace.outputs
    )


def _owns_mask(call: Any) -> bool:
    """A layer whose own code takes the mask (`call(..., mask=None)`), not a model whose
    masks flow through its graph."""
    return call.call_accepts_mask and not call.is_functional


def _owned_by_parent(call: Any, by_id: dict[str, Any]) -> bool:
    parent = by_id.get(call.parent) if call.parent else None
    return parent is not None and _owns_mask(parent)


def _dropped_inside(call: Any, kids: dict[str, list[Any]]) -> bool:
    """Some call inside `call` got a masked sequence and returned no mask."""
    for kid in kids.get(call.id, []):
        seq = _seq_input(kid)
        if kid.via == "__call__" and seq is not None and seq.mask is not None:
            if kid.outputs and not kid.output_masked:
                return True
        if _dropped_inside(kid, kids):
            return True
    return False


def _keras_builtin(ctx: Context, call: Any) -> str | None:
    """The installed Keras's version when `call`'s layer is one of Keras's own classes
    (its code is not the user's to edit), else `None`. Chooses advice, never a verdict."""
    if ctx.model is None:
        return None
    from .. import _keras_internals as ki

    layer = ctx.model
    for part in call.path.split("/"):
        layer = next((s for s in ki.direct_sublayers(layer) if s.name == part), None)
        if layer is None:
            return None
    module = type(layer).__module__ or ""
    if module == "keras" or module.startswith(("keras.", "keras_hub.")):
        return ctx.trace.keras_version
    return None


# The repair for a Keras layer that does not pass its mask on: a `maskviz.layers` twin
# where there is one (the class name only picks the advice, the verdict is observed).
_TWINS = {
    "LSTM": "MaskedLSTM.from_layer(lstm)",
    "GRU": "MaskedGRU.from_layer(gru)",
    "SimpleRNN": "MaskedRNN.from_layer(rnn)",
    "RNN": "MaskedRNN.from_layer(rnn)",
    "TimeDistributed": "MaskedTimeDistributed(inner_layer)",
    "Conv1D": "MaskedConv1D.from_layer(conv)",
    "GlobalMaxPooling1D": "MaskedGlobalMaxPooling1D()",
}


def _builtin_advice(call: Any, version: str, computed: Any) -> str:
    """Advice for one of Keras's own layers: what this Keras version does, and the repair
    (a `maskviz.layers` twin, or an explicit `mask=` downstream), never "edit the class"."""
    cls = call.class_name
    did = (
        f"On Keras {version}, `{cls}` does not pass its mask on "
        f"(`supports_masking` is {call.supports_masking}"
        + (", although its `compute_mask` returns one" if computed is not None else "")
        + ")."
    )
    twin = _TWINS.get(cls)
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


def _drop_suggestion(call: Any, builtin: str | None = None) -> str:
    cls = call.class_name
    if builtin is not None and call.call_accepts_mask:
        return _builtin_advice(call, builtin, call.computed_mask)
    if getattr(call, "kind", "layer") == "op":
        return (
            f"`{call.name}` is a `keras.ops` call: ops never carry masks on. Do this step "
            "inside a layer that supports masking, or pass the mask to the next layer "
            "explicitly (`mask=`); if it mixes steps, zero the padded steps first "
            "(`x * ops.cast(mask, x.dtype)[..., None]`)."
        )
    if cls == "Conv1D":
        return (
            "Replace it with `maskviz.layers.MaskedConv1D(...)` (same weights): it zeroes "
            "padded steps before convolving and returns a mask aligned with its output."
        )
    if cls in ("GlobalMaxPooling1D",):
        return "Use `maskviz.layers.MaskedGlobalMaxPooling1D()`: it takes the max over kept steps."
    if cls == "Flatten":
        return (
            "Flatten mixes all steps into one vector: pool over time with a mask-aware layer "
            "(`GlobalAveragePooling1D()` uses the mask) instead of Flatten."
        )
    if not call.supports_masking and _keeps_time(call):
        return (
            f"If `{cls}` works per timestep, set `self.supports_masking = True` in its "
            f"`__init__`, or wrap it: `maskviz.layers.MaskPassthrough({cls}(...))`."
        )
    if not call.supports_masking:
        return (
            f"`{cls}` changes the time axis, so the incoming mask cannot be passed on as is: "
            f"define `{cls}.compute_mask` to return the mask for its output, or pool over "
            "time with a mask-aware layer before it."
        )
    return (
        f"Pass the mask on: make `{cls}.compute_mask(inputs, mask)` return the incoming "
        "mask (or the mask of its output's steps)."
    )


def _drop_fix(call: Any) -> Fix:
    # What to repair, not how: `maskviz fix` searches candidates and measures them.
    if _keeps_time(call):
        return Fix(Applicability.SAFE, "pass the mask on past this call (verified by maskviz fix)")
    return Fix(
        Applicability.SAFE, "consume or carry the mask where the time axis changes (maskviz fix)"
    )


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
    by_id = ctx.trace.by_id()
    flagged: set[str] = set()
    for call in ctx.trace.calls:
        if call.via != "__call__" or not call.call_accepts_mask or call.received:
            continue
        if not call.observed or call.explicit_mask:
            continue
        seq = _seq_input(call)
        if seq is None or seq.mask is None:
            continue
        if call.parent in flagged and not by_id[call.parent].is_functional:
            continue  # Bidirectional's inner RNNs: the wrapper's finding says it
        flagged.add(call.id)
        others = [t.arg for t in call.inputs if t is not seq and not t.arg.startswith("mask")]
        yield ctx.finding(
            "MV102",
            call,
            f"`{call.path}` ({call.class_name}) accepts `mask` but its `call` received "
            f"`mask=None`, although its input `{seq.arg}` {_shape(seq.shape)} carried mask "
            f"{_shape(seq.mask.shape)}. Received: {len(call.inputs)} tensor arguments "
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


@rule("MV103", "mask-rank-mismatch", Severity.ERROR)
def mask_rank_mismatch(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a mask whose shape is not the leading `(batch, time)` axes that the layer
    using it expects: a mask-using layer that received a mask covering more than
    `(batch, time)` (e.g. per pixel), or a mask with more axes than its tensor.

    ## Why is this bad?
    `Masking` on a 5-D input `(batch, time, rows, cols, channels)` makes a 4-D
    per-pixel mask. `ConvLSTM2D(padding="valid")` then fails with "Dimensions must be
    equal"; with `padding="same"` it runs, masking single pixels instead of whole
    frames.

    ## Example
    ```python
    x = keras.layers.Masking()(video)            # mask (batch, time, rows, cols)
    y = keras.layers.ConvLSTM2D(8, 3)(x)
    ```

    Use instead:
    ```python
    x = maskviz.layers.TimestepMasking()(video)  # mask (batch, time)
    y = keras.layers.ConvLSTM2D(8, 3)(x)
    ```

    ## Fix safety
    Replacing `Masking` with `TimestepMasking` is *safe*: a step is masked exactly
    when all its values equal `mask_value`, so unpadded rows are unchanged.
    """
    kids = _children(ctx)
    for call in ctx.trace.calls:
        if call.via != "__call__":
            continue
        seq = _seq_input(call)
        if seq is None:
            continue
        if any(_aligned_per_step(k) for k in kids.get(call.id, [])):
            # A wrapper (TimeDistributed) that hands each step's slice of the mask to
            # its inner layer, where it fits: the extra axes are the inner sequence's.
            continue
        got = None
        if call.received_mask:
            got = call.received_mask[0]
        elif call.call_accepts_mask and seq.mask is not None and (call.error or not call.observed):
            got = seq.mask
        # Only a mask the sequence input itself carried: an explicit broadcastable
        # mask (an attention mask handed to Softmax) is not a per-step mask.
        carried = seq.mask is not None and (got is None or got.shape == seq.mask.shape)
        if (
            got is not None
            and carried
            and call.call_accepts_mask
            and len(seq.shape) > 3
            and got.rank > 2
        ):
            src = _mask_source(ctx, seq)
            yield ctx.finding(
                "MV103",
                call,
                f"`{call.path}` ({call.class_name}) got mask {_shape(got.shape)} for input "
                f"{_shape(seq.shape)}: the mask covers more than the (batch, time) axes. "
                f"Expected a mask of shape {_shape(seq.shape[:2])}."
                + (f" Received: the mask was made by `{src}`." if src else "")
                + (f" The call failed: {call.error}" if call.error else ""),
                suggestion=(
                    f"Make the mask per timestep: replace `{src or 'Masking'}` with "
                    "`maskviz.layers.TimestepMasking(mask_value=...)`, whose mask is "
                    "(batch, time) for inputs of any rank."
                ),
                fix=Fix(Applicability.SAFE, "make the mask per timestep (maskviz fix)"),
                details=(("mask_source", src), ("mask_misfit", True)),
            )
        for t in call.outputs:
            if t.mask is not None and t.mask.rank > len(t.shape):
                yield ctx.finding(
                    "MV103",
                    call,
                    f"`{call.path}` ({call.class_name}) attached mask {_shape(t.mask.shape)} to "
                    f"{t.arg} {_shape(t.shape)}: the mask has more axes than the tensor. "
                    "Expected its leading (batch, time) axes.",
                    suggestion="Reduce the mask to (batch, time) in `compute_mask`.",
                    fix=Fix(Applicability.DISPLAY_ONLY, "reduce the mask in compute_mask"),
                )


def _aligned_per_step(inner: Any) -> bool:
    """An inner call that received a mask fitting its own input's leading axes."""
    if not inner.received_mask or inner.received_mask[0] is None or not inner.inputs:
        return False
    m, x = inner.received_mask[0], inner.inputs[0]
    return m.rank < len(x.shape) and tuple(m.shape) == tuple(x.shape[: m.rank])


def _mask_source(ctx: Context, t: Any) -> str | None:
    """The generator call whose mask `t` carries (following propagators back)."""
    by_id = ctx.trace.by_id()
    cur = by_id.get(t.source) if t.source else None
    for _ in range(len(by_id)):
        if cur is None:
            return None
        if cur.role in ("generator", "modifier") or not cur.input_masked:
            return cur.path
        seq = _seq_input(cur)
        cur = by_id.get(seq.source) if seq is not None and seq.source else None
    return None


@rule("MV104", "mask-time-misaligned", Severity.ERROR)
def mask_time_misaligned(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a mask whose time length differs from its tensor's (a strided or `valid`
    convolution, pooling, cropping or reshape that passed the mask on unchanged),
    a `TimeDistributed` wrapper whose inner layer makes a mask that the wrapper
    loses or misaligns, and an RNN that returns its sequence reversed
    (`go_backwards=True, return_sequences=True`) with the input's mask unreversed.

    ## Why is this bad?
    A mask of length 10 on a tensor of length 5 masks the wrong steps, or fails
    later with a shape error. `TimeDistributed(Embedding(mask_zero=True))` gives no
    mask at all, so the padding inside each step reaches everything downstream.

    ## Example
    ```python
    x = keras.layers.TimeDistributed(keras.layers.Embedding(100, 8, mask_zero=True))(chars)
    y = keras.layers.TimeDistributed(keras.layers.LSTM(16))(x)  # inner padding unmasked
    ```

    Use instead:
    ```python
    x = maskviz.layers.MaskedTimeDistributed(keras.layers.Embedding(100, 8, mask_zero=True))(chars)
    ```

    ## Fix safety
    `MaskedTimeDistributed` is *safe*: it applies the same inner layer with the
    same weights; only how the mask is reported changes.
    """
    by_parent = _children(ctx)
    by_id = ctx.trace.by_id()
    for call in ctx.trace.calls:
        parent = by_id.get(call.parent) if call.parent else None
        own_code = parent is not None and not parent.is_functional and parent.received
        if (
            call.reverses_time
            and call.mask_unchanged
            and not own_code  # Bidirectional reverses its backward layer's output back
            and call.outputs
            and call.outputs[0].mask is not None
            and call.outputs[0].mask.kept not in (0.0, 1.0)
        ):
            yield ctx.finding(
                "MV104",
                call,
                f"`{call.path}` ({call.class_name}) returns its sequence reversed "
                "(`go_backwards=True`, `return_sequences=True`) but passes the input's mask "
                f"on unreversed: output {_shape(call.outputs[0].shape)} with mask "
                f"{_shape(call.outputs[0].mask.shape)}. Expected the mask reversed along "
                "time too; downstream layers now read padding steps and skip real ones.",
                suggestion=(
                    "Reverse the output back before the next layer (`ops.flip(y, axis=1)`), "
                    "use `Bidirectional`, or `maskviz.layers.MaskedRNN(cell, "
                    "go_backwards=True, return_sequences=True)`, which reverses its mask."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "reverse the output or its mask"),
            )
        for t in call.outputs:
            if t.mask is None or len(t.shape) < 2 or t.mask.rank < 2:
                continue
            mt, tt = t.mask.shape[1], t.shape[1]
            if _broadcastable(t.mask.shape, t.shape):
                continue
            if mt is not None and tt is not None and mt != tt:
                seq = _seq_input(call)
                yield ctx.finding(
                    "MV104",
                    call,
                    f"`{call.path}` ({call.class_name}) returned {t.arg} {_shape(t.shape)} "
                    f"with mask {_shape(t.mask.shape)}: the mask has {mt} steps, the tensor "
                    f"{tt}. Received: input {_shape(seq.shape) if seq else '?'}. Expected a "
                    "mask aligned with the output's time axis.",
                    suggestion=(
                        "Recompute the mask for the new time axis (e.g. "
                        "`maskviz.layers.MaskedConv1D` for strided or valid convolutions), "
                        "or drop it deliberately and pool before the time axis changes."
                    ),
                    fix=Fix(Applicability.DISPLAY_ONLY, "recompute the mask for the output length"),
                )
        inner = [c for c in by_parent.get(call.id, []) if c.via == "call"]
        for c in inner:
            made = c.computed_mask[0] if c.computed_mask else None
            if made is None:
                continue
            out = call.outputs[0] if call.outputs else None
            if out is None:
                continue
            if out.mask is None:
                yield ctx.finding(
                    "MV104",
                    call,
                    f"`{call.path}` ({call.class_name}) loses the mask its inner layer "
                    f"`{c.name}` ({c.class_name}) makes: per step the inner mask is "
                    f"{_shape(made.shape)}, but the output {_shape(out.shape)} carries no mask. "
                    f"Expected a mask of shape {_shape(out.shape[: 2 + made.rank - 1])}.",
                    suggestion=(
                        f"Wrap with `maskviz.layers.MaskedTimeDistributed({c.class_name}(...))`: "
                        "it reshapes the inner mask to (batch, time, ...) and reduces it to "
                        "(batch, time) where needed."
                    ),
                    fix=Fix(
                        Applicability.SAFE,
                        "replace TimeDistributed with maskviz.layers.MaskedTimeDistributed",
                    ),
                )
            else:
                expected = tuple(out.shape[:2]) + tuple(made.shape[1:])
                if tuple(out.mask.shape) not in (expected, tuple(out.shape[:2])):
                    yield ctx.finding(
                        "MV104",
                        call,
                        f"`{call.path}` ({call.class_name}) gives mask "
                        f"{_shape(out.mask.shape)} but its inner layer `{c.name}` masks per "
                        f"step as {_shape(made.shape)}. Expected {_shape(expected)} or "
                        f"{_shape(out.shape[:2])}.",
                        suggestion="Use `maskviz.layers.MaskedTimeDistributed`.",
                        fix=Fix(
                            Applicability.SAFE,
                            "replace TimeDistributed with maskviz.layers.MaskedTimeDistributed",
                        ),
                    )


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
            seq = _seq_input(call)
            got = call.received_mask[0] if call.received_mask else None
            yield ctx.finding(
                "MV105",
                call,
                f"`{call.path}` ({call.class_name}) was called with an explicit `mask=` that "
                f"differs from the mask its input `{seq.arg if seq else '?'}` carried. "
                f"Received: explicit mask "
                f"{_shape(got.shape) if got else '?'}"
                f"{f' keeping {got.kept:.0%}' if got and got.kept is not None else ''}, "
                f"input {_mask_of(seq)}"
                f"{f' keeping {seq.mask.kept:.0%}' if seq and seq.mask and seq.mask.kept is not None else ''}.",  # noqa: E501
                suggestion=(
                    "Check that the explicit mask belongs to this sequence; drop `mask=` to "
                    "use the input's own mask."
                ),
                fix=Fix(Applicability.DISPLAY_ONLY, "drop the explicit mask= argument"),
            )


@rule("MV110", "mask-unconsumed", Severity.WARNING)
def mask_unconsumed(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Flags a layer that makes a mask (`Embedding(mask_zero=True)`, `Masking`) whose
    mask never reaches a layer that uses it, nor a model output (where the loss
    would use it).

    ## Why is this bad?
    The mask was asked for and then thrown away: everything downstream computes on
    padding as if it were data (e.g. `Flatten` then `Dense`).

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = keras.layers.Flatten()(x)
    y = keras.layers.Dense(1)(x)
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)   # averages over kept steps only
    y = keras.layers.Dense(1)(x)
    ```

    ## Fix safety
    *Display-only*: the right pooling depends on the model.
    """
    trace = ctx.trace
    consumers: dict[str, list[Any]] = {}
    by_id = trace.by_id()
    for c in trace.calls:
        for t in c.inputs:
            if t.source is not None:
                consumers.setdefault(t.source, []).append(c)
    for c in trace.calls:
        # Inside a wrapper or nested model, what the inner call makes may leave
        # through the container's own output: when nothing inside takes it, or when
        # the container's output carries a mask (it passed it on itself).
        parent = by_id.get(c.parent) if c.parent else None
        if parent is not None and (parent.output_masked or not consumers.get(c.id)):
            consumers.setdefault(c.id, []).append(parent)
    masked_outputs = {o.source for o in trace.outputs if o.mask is not None}
    for call in trace.calls:
        if call.role != "generator" or call.via != "__call__" or not call.observed:
            continue
        seen = {call.id}
        stack = [call.id]
        used = False
        stopped_at = []
        while stack and not used:
            cur = stack.pop()
            if cur in masked_outputs:
                used = True
                break
            for c in consumers.get(cur, []):
                if c.id in seen:
                    continue
                seen.add(c.id)
                if c.received:
                    used = True
                    break
                if c.output_masked:
                    stack.append(c.id)
                elif c.role == "destroyer":
                    stopped_at.append(c)
        if used or _flagged_as_drop(ctx, stopped_at):
            continue
        where = (
            f" It stops at `{stopped_at[0].path}` ({stopped_at[0].class_name})."
            if stopped_at
            else ""
        )
        yield ctx.finding(
            "MV110",
            call,
            f"`{call.path}` ({call.class_name}) makes a mask "
            f"{_shape(call.outputs[0].mask.shape) if call.outputs and call.outputs[0].mask else ''}"
            f" that no layer uses and no model output carries.{where} Expected a mask-using "
            "layer (RNN, attention, masked pooling) or a masked output downstream.",
            suggestion=(
                "Keep the mask to a layer that uses it: replace the layer where it stops "
                "with a mask-aware one (e.g. `GlobalAveragePooling1D` instead of `Flatten`), "
                "or drop `mask_zero=True` if padding is meant to be data."
            ),
            fix=Fix(Applicability.DISPLAY_ONLY, "route the mask to a layer that uses it"),
            details=(("stops_at", tuple(c.path for c in stopped_at)),),
        )


def _flagged_as_drop(ctx: Context, calls: list[Any]) -> bool:
    """Whether MV101 or MV102 already reports where this mask stops (one root cause,
    one finding)."""
    ids = {c.id for c in calls}
    if not ids:
        return False
    return any(f.call_id in ids for f in mask_dropped(ctx)) or any(
        f.call_id in ids for f in mask_not_delivered(ctx)
    )


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
    by_id = ctx.trace.by_id()
    dropped = {f.call_id for f in mask_dropped(ctx)}
    for call in ctx.trace.calls:
        if call.via != "__call__" or call.computed_mask_matches is not False:
            continue
        if _owned_by_parent(call, by_id):
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
            f"{'no mask' if attached is None else 'mask ' + _shape(attached.shape)}, but its "
            f"`compute_mask` returns a mask {_shape(made.shape)}"
        )
        builtin = _keras_builtin(ctx, call)
        if builtin is not None and call.id in dropped:
            continue  # one cause, one finding: MV101 names it with the same advice
        if builtin is not None:
            # Keras's own layer, by its design in this version: nothing to edit, and
            # nothing downstream needs the mask (else MV101 fires here instead).
            yield ctx.finding(
                "MV111",
                call,
                f"{what}. No layer downstream needs it, so nothing is lost here yet.",
                suggestion=_builtin_advice(call, builtin, made),
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
            "MV111",
            call,
            f"{what}: {why}.",
            suggestion=(
                "Make them agree: set `supports_masking = True` (or drop the override), and "
                "return a new tensor from `call` rather than the input itself."
            ),
            fix=Fix(Applicability.DISPLAY_ONLY, "make compute_mask and call agree"),
        )


@rule("MV112", "call-failed", Severity.ERROR)
def call_failed(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Reports the layer call where the forward pass on the probe (or `--data`) failed,
    with the exception's message. Calls after it are shown from the model's
    symbolic graph.

    ## Why is this bad?
    The model builds but cannot run on padded data, often because of a mask: a
    per-pixel mask reaching `ConvLSTM2D`, a mask whose time length no longer
    matches its tensor.

    ## Example
    ```python
    x = keras.layers.Masking()(video)                 # 4-D mask
    y = keras.layers.ConvLSTM2D(8, 3, padding="valid")(x)   # fails on data
    ```

    Use instead:
    ```python
    x = maskviz.layers.TimestepMasking()(video)
    y = keras.layers.ConvLSTM2D(8, 3, padding="valid")(x)
    ```

    ## Fix safety
    *Display-only*: the fix is the one of the mask finding on the same layer, if any.
    """
    trace = ctx.trace
    if not trace.error:
        return
    call = None
    if trace.error_call:
        try:
            call = trace.call(trace.error_call)
        except KeyError:
            call = None
    where = f"`{call.path}` ({call.class_name})" if call else f"model `{trace.model_name}`"
    at = _crash_shapes(ctx, call) if call is not None else ""
    yield ctx.finding(
        "MV112",
        call,
        f"The forward pass failed at {where}.{at} Received: {trace.error}",
        suggestion="See the mask findings on this layer; rerun with `--data` to use real samples.",
        fix=Fix(Applicability.DISPLAY_ONLY, "fix the failing layer"),
    )


def _name(source: str) -> str:
    return f"model input {source[6:]}" if source.startswith("input:") else source


def _crash_shapes(ctx: Context, call: Any) -> str:
    """The shapes of each tensor and mask at a failed call, and who made each mask."""
    from .alignment import mask_maker, misfit_origin

    by_id = ctx.trace.by_id()
    parts = []
    for t in call.inputs:
        desc = f"`{t.arg}` {_shape(t.shape)}"
        if t.mask is not None:
            maker = mask_maker(ctx, t)
            desc += f" with mask {_shape(t.mask.shape)}" + (
                f" made by `{_name(maker)}`" if maker else ""
            )
            origin = misfit_origin(ctx, t)
            if origin and origin != maker:
                desc += f" and passed on by `{origin}`, whose output it no longer fits"
        elif t.arg.endswith("mask") or t.mask_like:
            src = by_id.get(t.source) if t.source else None
            origin = src.path if src is not None else (t.source or "")
            desc += " (a mask" + (f" from `{_name(origin)}`" if origin else "") + ")"
        parts.append(desc)
    text = " At this call: " + ", ".join(parts) + "." if parts else ""
    got = ""
    if call.received_mask:
        got = ", ".join("None" if m is None else _shape(m.shape) for m in call.received_mask)
        text += f" Its `call` received mask {got}."
    parent = by_id.get(call.parent) if call.parent else None
    if call.via == "call" and parent is not None:
        text += (
            f" It was called per step by `{parent.path}` ({parent.class_name}), which "
            f"handed it {'mask ' + got if call.received_mask else 'no mask'}"
            f" for its input {_shape(call.inputs[0].shape) if call.inputs else '?'}."
        )
    return text
