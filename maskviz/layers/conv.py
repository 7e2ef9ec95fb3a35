"""Mask-aware replacements for layers that drop masks: Conv1D, GlobalMaxPooling1D."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from maskviz.layers._masks import as_time_mask


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedConv1D(keras.layers.Conv1D):
    """`Conv1D` that ignores padded steps and returns a mask for its output.

    `keras.layers.Conv1D` does not support masking: the mask is destroyed, the
    padding values are convolved into their neighbours, and with `strides` or
    `padding="valid"` the output length differs from the input's, so the old
    mask would not even line up. Use this layer on padded sequences instead. It
    takes exactly the arguments of `Conv1D` and has the same variables
    (`MaskedConv1D.from_layer(conv)` converts a built layer), zeroes masked
    steps before convolving, and returns an output mask aligned with the output
    length. An output step is kept when:

    - `padding="same"`: the input step under the kernel's centre tap
      (`(kernel_size - 1) // 2`) is kept (with `strides=1`, the mask is the
      input mask);
    - `padding="causal"`: the input step under the kernel's last tap (the
      current step) is kept;
    - `padding="valid"`: every input step in its receptive field is kept.

    Because padded steps are zeroed, and "same"/"causal" pad with zeros too,
    the kept outputs of a right- or left-padded sequence with `strides=1`
    equal the outputs of the unpadded sequence.

    Args:
        filters, kernel_size, ...: As `keras.layers.Conv1D`.

    Call arguments:
        inputs: A 3-D tensor `(batch, steps, channels)` (or channels first).
        mask: Optional boolean mask `(batch, steps)`.

    Example:

    >>> x = keras.layers.Masking()(keras.Input((20, 8)))
    >>> y = MaskedConv1D(16, 3, strides=2, padding="same")(x)  # mask (batch, 10)
    >>> y.shape
    (None, 10, 16)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The output mask is computed for the output's own length (compute_mask).
        self.supports_masking = True

    def _time_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def call(self, inputs: Any, mask: Any = None) -> Any:
        mask = as_time_mask(mask)
        if mask is not None:
            keep = ops.expand_dims(mask, -1 if self._time_axis() == 1 else 1)
            inputs = ops.where(keep, inputs, ops.zeros_like(inputs))
        return super().call(inputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # Conv1D changes the time axis (strides, "valid"), so the input mask is
        # mapped through the same convolution geometry (rule in the docstring).
        mask = as_time_mask(mask)
        if mask is None:
            return None
        k = self.kernel_size[0]
        m = ops.expand_dims(ops.cast(mask, "float32"), -1)  # (batch, steps, 1)
        padding = self.padding
        if padding == "causal":
            m = ops.pad(m, [[0, 0], [self.dilation_rate[0] * (k - 1), 0], [0, 0]])
            padding = "valid"
        if self.padding == "valid":
            kernel = ops.ones((k, 1, 1), "float32")
            threshold = k - 0.5
        else:
            tap = (k - 1) // 2 if self.padding == "same" else k - 1
            kernel = ops.reshape(ops.one_hot(tap, k, dtype="float32"), (k, 1, 1))
            threshold = 0.5
        counts = ops.conv(
            m,
            kernel,
            strides=list(self.strides),
            padding=padding,
            dilation_rate=self.dilation_rate,
            data_format="channels_last",
        )
        return ops.squeeze(counts, -1) > threshold

    @classmethod
    def from_layer(cls, layer: keras.layers.Conv1D) -> MaskedConv1D:
        """Builds a `MaskedConv1D` with `layer`'s config (and weights, if built)."""
        if not isinstance(layer, keras.layers.Conv1D):
            raise ValueError(
                "`MaskedConv1D.from_layer` expects a `keras.layers.Conv1D`. "
                f"Received: {type(layer).__name__}"
            )
        new = cls.from_config(layer.get_config())
        if layer.built:
            new.build_from_config(layer.get_build_config())
            new.set_weights(layer.get_weights())
        return new


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedGlobalMaxPooling1D(keras.layers.GlobalMaxPooling1D):
    """`GlobalMaxPooling1D` that takes the max over kept steps only.

    `keras.layers.GlobalMaxPooling1D` ignores the mask, so padding takes part in
    the max (a zero pad beats every negative activation). Use this layer to
    pool padded sequences. A sample whose steps are all masked gives zeros,
    not `-inf`. Same arguments and config as `GlobalMaxPooling1D`.

    Args:
        data_format: `"channels_last"` (default) or `"channels_first"`.
        keepdims: Whether to keep the time axis with length 1. Default: `False`.

    Call arguments:
        inputs: A 3-D tensor `(batch, steps, features)` (or channels first).
        mask: Optional boolean mask `(batch, steps)`.

    Example:

    >>> x = keras.layers.Masking()(keras.Input((None, 4)))
    >>> MaskedGlobalMaxPooling1D()(x).shape
    (None, 4)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The layer consumes the mask; compute_mask returns None because the
        # time axis is pooled away.
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        mask = as_time_mask(mask)
        if mask is None:
            return super().call(inputs)
        axis = 1 if self.data_format == "channels_last" else 2
        keep = ops.expand_dims(mask, -1 if axis == 1 else 1)
        neg_inf = ops.cast(float("-inf"), inputs.dtype)
        pooled = ops.max(ops.where(keep, inputs, neg_inf), axis=axis, keepdims=self.keepdims)
        any_kept = ops.reshape(ops.any(mask, axis=1), (-1, 1, 1) if self.keepdims else (-1, 1))
        return ops.where(any_kept, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # No time axis is left, so there is nothing to mask downstream.
        return None
