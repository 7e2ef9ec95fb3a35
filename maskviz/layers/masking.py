"""Mask generators: `TimestepMasking` and `FeatureMasking`."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from maskviz.layers._masks import as_time_mask, expand_to_rank


def _is_missing(inputs: Any, mask_value: float) -> Any:
    """Boolean tensor, True where `inputs` equals `mask_value` (NaN matches NaN)."""
    if isinstance(mask_value, float) and math.isnan(mask_value):
        return ops.isnan(inputs)
    return ops.equal(inputs, ops.cast(mask_value, inputs.dtype))


def _and_masks(mask: Any, previous_mask: Any) -> Any:
    previous = as_time_mask(previous_mask)
    return mask if previous is None else ops.logical_and(mask, previous)


@keras.saving.register_keras_serializable(package="maskviz")
class TimestepMasking(keras.layers.Layer):
    """Masks whole timesteps, with a `(batch, time)` mask for inputs of any rank.

    Like `keras.layers.Masking`, a step is masked when ALL its values equal
    `mask_value`, and masked steps are zeroed. Unlike `Masking`, the mask is
    always `(batch, time)`: `Masking` compares only the last axis, so on a 5-D
    video input `(batch, time, rows, cols, channels)` it makes a 4-D per-pixel
    mask, which crashes `ConvLSTM2D(padding="valid")` and silently masks
    single pixels with `padding="same"`. Use this layer in front of any
    recurrent layer whose steps are not vectors (`ConvLSTM1D/2D/3D`,
    `MaskedRNN` with a convolutional cell). For 3-D inputs it matches
    `Masking`. A mask that is already attached to the input is kept: a step
    stays masked if it was.

    Args:
        mask_value: The padding value. Default: `0.0`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A tensor of shape `(batch, time, ...)`, rank 3 or more.
        mask: Optional incoming mask (`(batch, time, ...)`), combined with AND.

    Returns:
        `inputs` with masked steps set to zero.

    Example:

    >>> video = keras.Input((None, 8, 8, 3))
    >>> x = TimestepMasking(0.0)(video)
    >>> y = keras.layers.ConvLSTM2D(4, 3, padding="valid")(x)
    >>> y.shape
    (None, 6, 6, 4)
    """

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = mask_value
        # This layer makes the mask (compute_mask below), so it supports masking.
        self.supports_masking = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # A step is kept when any of its values differs from mask_value; the mask
        # has exactly the (batch, time) axes that RNN-like consumers expect.
        missing = _is_missing(inputs, self.mask_value)
        kept = ops.any(ops.logical_not(missing), axis=tuple(range(2, len(inputs.shape))))
        return _and_masks(kept, mask)

    def call(self, inputs: Any, mask: Any = None) -> Any:
        kept = self.compute_mask(inputs, mask)
        return ops.where(expand_to_rank(kept, len(inputs.shape)), inputs, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_value": self.mask_value}


@keras.saving.register_keras_serializable(package="maskviz")
class FeatureMasking(keras.layers.Layer):
    """Handles missing features: fills them, flags them, masks fully-missing steps.

    `keras.layers.Masking` masks a step only when every feature equals
    `mask_value`; a step where only some features are padding (a sensor that
    did not report, a field left empty) is not masked, and the padding value is
    fed to the model as if it were data. Use this layer for such data: each
    missing value is replaced by `fill_value`, optionally a 0/1 indicator per
    feature is appended (1 = was missing, so the model can tell a filled value
    from a real one), and steps whose features are ALL missing are masked with a
    `(batch, time)` mask.

    Args:
        mask_value: The value that marks a missing feature. May be
            `float("nan")`, which matches NaN. Default: `0.0`.
        fill_value: The value missing features are replaced with.
            Default: `0.0`.
        add_indicators: Whether to append one indicator feature per input
            feature on the last axis (doubling its size). Default: `True`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A float tensor `(batch, time, ..., features)`, rank 3 or more.
        mask: Optional incoming mask, combined with AND.

    Returns:
        The filled tensor; with `add_indicators`, its last axis is
        `2 * features` (values, then indicators).

    Example:

    >>> x = keras.Input((None, 4))
    >>> y = FeatureMasking(mask_value=-1.0)(x)
    >>> y.shape
    (None, None, 8)
    """

    def __init__(
        self,
        mask_value: float = 0.0,
        fill_value: float = 0.0,
        add_indicators: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.fill_value = fill_value
        self.add_indicators = add_indicators
        # This layer makes the (batch, time) mask of fully-missing steps.
        self.supports_masking = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # A step is kept when at least one of its features is present; steps
        # where only some features are missing are kept (they are filled).
        missing = _is_missing(inputs, self.mask_value)
        kept = ops.any(ops.logical_not(missing), axis=tuple(range(2, len(inputs.shape))))
        return _and_masks(kept, mask)

    def call(self, inputs: Any) -> Any:
        missing = _is_missing(inputs, self.mask_value)
        filled = ops.where(missing, ops.cast(self.fill_value, inputs.dtype), inputs)
        if not self.add_indicators:
            return filled
        return ops.concatenate([filled, ops.cast(missing, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not self.add_indicators:
            return tuple(input_shape)
        last = input_shape[-1]
        return (*input_shape[:-1], None if last is None else 2 * last)

    def get_config(self) -> dict[str, Any]:
        config = {
            "mask_value": self.mask_value,
            "fill_value": self.fill_value,
            "add_indicators": self.add_indicators,
        }
        return {**super().get_config(), **config}
