"""Layers for the `pack-real` repair: move a row's real steps to the front (as right
padding has them) before a call whose output depends on where the padding sits, and
put them back where they were after it.

A row without padding, or padded on the right, is returned unchanged, so outputs on
those rows stay as they were; a left-padded row (or one with gaps) is seen by the
call exactly as its right-padded version. The mask given to `PackSteps` decides which
steps are real; its output has no mask (the steps moved); `UnpackSteps` puts the
steps back where the mask has them and carries that mask again.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _steps(mask: Any) -> Any:
    """A `(batch, time)` bool mask from a step mask or a per-element mask."""
    m = ops.cast(mask, "bool")
    while len(m.shape) > 2:
        m = ops.any(m, axis=-1)
    return m


def _order(mask: Any) -> Any:
    """Per row: the base step each packed step holds (real steps first, in order)."""
    m = _steps(mask)
    t = ops.shape(m)[1]
    pos = ops.expand_dims(ops.arange(t, dtype="int32"), 0)
    key = ops.where(m, pos, pos + t)  # distinct keys: no reliance on a stable sort
    return ops.cast(ops.argsort(key, axis=1), "int32")


def _gather(x: Any, order: Any) -> Any:
    idx = order
    for _ in range(len(x.shape) - 2):
        idx = ops.expand_dims(idx, -1)
    if len(x.shape) > 2:
        idx = ops.broadcast_to(idx, ops.shape(x))
    return ops.take_along_axis(x, idx, axis=1)


@keras.saving.register_keras_serializable(package="maskviz")
class PackSteps(keras.layers.Layer):
    """Moves each row's real steps (by the mask) to the front, padding after them.

    Call arguments:
        inputs: a tensor of shape `(batch, time, ...)`.
        mask: the mask saying which steps are real; `None` returns the input as is.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.copy(inputs)
        return _gather(inputs, _order(mask))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # The packed steps no longer sit where the mask says: the output has no
        # mask (`UnpackSteps` puts the steps and the mask back).
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@keras.saving.register_keras_serializable(package="maskviz")
class UnpackSteps(keras.layers.Layer):
    """Puts packed steps back where the mask's real steps are (the inverse of
    `PackSteps` with the same mask); the output carries that mask.

    Call arguments:
        inputs: a tensor of shape `(batch, time, ...)` made from packed steps.
        mask: the mask `PackSteps` packed by.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.copy(inputs)
        back = ops.cast(ops.argsort(_order(mask), axis=1), "int32")
        return _gather(inputs, back)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None if mask is None else _steps(mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape
