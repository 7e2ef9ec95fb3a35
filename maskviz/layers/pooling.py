"""Mask plumbing layers that `maskviz fix` inserts: `ApplyMask`, `ZeroPadded`,
`MaskedReduce`. Each is a plain Keras layer, registered for saving."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from maskviz.layers._masks import as_time_mask, expand_to_rank, first_mask

REDUCTIONS = ("mean", "sum", "max", "min")


def _combined(mask: Any) -> Any:
    """One `(batch, time)` mask from a mask or a list of them (`None`s skipped):
    a step is kept when every input that has a mask keeps it."""
    masks = mask if isinstance(mask, (list, tuple)) else [mask]
    out = None
    for m in masks:
        m = as_time_mask(first_mask(m))
        if m is None:
            continue
        out = m if out is None else ops.logical_and(out, m)
    return out


@keras.saving.register_keras_serializable(package="maskviz")
class ApplyMask(keras.layers.Layer):
    """Returns its input unchanged, carrying the `(batch, time)` mask it is given.

    Put the mask back on a tensor whose producer dropped it (a custom per-step
    layer, a merge of masked and unmasked inputs, an op between layers). Call it
    with the mask explicitly: `ApplyMask()(y, mask=mask)`.

    Args:
        **kwargs: Base layer keyword arguments, such as `name`.

    Call arguments:
        inputs: A tensor of shape `(batch, time, ...)`.
        mask: A mask of shape `(batch, time)` (or a list of masks, combined with
            logical and), or `None`.

    Example:

    >>> x = keras.Input((None, 3))
    >>> m = keras.Input((None,), dtype="bool")
    >>> y = ApplyMask()(x, mask=m)
    >>> y.shape
    (None, None, 3)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The output is the input, so its steps are the input's steps.
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        # A copy carries no attached mask; compute_mask attaches the given one.
        return ops.copy(inputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return _combined(mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@keras.saving.register_keras_serializable(package="maskviz")
class ZeroPadded(keras.layers.Layer):
    """Sets the padded steps of its input to zero and keeps the mask on it.

    Put it before a layer that mixes time steps (a convolution, a pooling, a
    custom layer) so that padded values cannot reach kept steps. Rows without
    padding are returned unchanged.

    Args:
        **kwargs: Base layer keyword arguments, such as `name`.

    Call arguments:
        inputs: A tensor of shape `(batch, time, ...)`.
        mask: The `(batch, time)` mask (or a per-element mask, reduced to
            steps), or `None` (then the input is returned as is).

    Example:

    >>> x = keras.layers.Masking()(keras.Input((None, 3)))
    >>> ZeroPadded()(x).shape
    (None, None, 3)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Same steps in and out: the incoming mask is the output's mask.
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        m = _combined(mask)
        if m is None:
            return ops.copy(inputs)
        keep = ops.cast(expand_to_rank(m, len(inputs.shape)), inputs.dtype)
        return inputs * keep

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return _combined(mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedReduce(keras.layers.Layer):
    """A mean, sum, max or min over the time axis that counts kept steps only.

    `keras.ops.mean(x, axis=1)` averages the padding in; this layer averages the
    kept steps. A row whose steps are all masked gives zeros.

    Args:
        reduction: One of `"mean"`, `"sum"`, `"max"`, `"min"`.
        keepdims: Keep the time axis with length 1. Default: `False`.
        **kwargs: Base layer keyword arguments, such as `name`.

    Call arguments:
        inputs: A tensor of shape `(batch, time, ...)`.
        mask: A `(batch, time)` mask, or `None` (every step kept).

    Example:

    >>> x = keras.layers.Embedding(10, 4, mask_zero=True)(keras.Input((None,), dtype="int32"))
    >>> MaskedReduce("mean")(x).shape
    (None, 4)
    """

    def __init__(self, reduction: str = "mean", keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {REDUCTIONS}. Received: reduction={reduction!r}"
            )
        self.reduction = reduction
        self.keepdims = bool(keepdims)
        # The time axis is reduced away: the mask is consumed here.
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        m = _combined(mask)
        if m is None:
            m = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        keep = expand_to_rank(m, len(inputs.shape))
        fkeep = ops.cast(keep, inputs.dtype)
        any_kept = ops.any(keep, axis=1, keepdims=self.keepdims)
        if self.reduction in ("mean", "sum"):
            total = ops.sum(inputs * fkeep, axis=1, keepdims=self.keepdims)
            if self.reduction == "sum":
                return total
            count = ops.sum(fkeep, axis=1, keepdims=self.keepdims)
            return total / ops.maximum(count, ops.ones_like(count))
        big = ops.cast(3.0e38 if inputs.dtype == "float32" else 6.0e4, inputs.dtype)
        if self.reduction == "max":
            out = ops.max(ops.where(keep, inputs, -big), axis=1, keepdims=self.keepdims)
        else:
            out = ops.min(ops.where(keep, inputs, big), axis=1, keepdims=self.keepdims)
        return ops.where(any_kept, out, ops.zeros_like(out))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(input_shape)
        if self.keepdims:
            shape[1] = 1
        else:
            del shape[1]
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reduction": self.reduction, "keepdims": self.keepdims}
