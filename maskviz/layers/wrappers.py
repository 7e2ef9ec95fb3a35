"""Wrappers that keep masks: `MaskedTimeDistributed` and `MaskPassthrough`."""

from __future__ import annotations

import inspect
from typing import Any

import keras
from keras import ops

from maskviz.layers._masks import as_time_mask, expand_to_rank


def _call_accepts(layer: Any, name: str) -> bool:
    try:
        return name in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


# Registered: in a Functional model the ops of compute_mask are graph nodes, so
# they are saved with the model and must load back.
@keras.saving.register_keras_serializable(package="maskviz")
class _FlattenTime(keras.Operation):
    """`(batch, time, *rest) -> (batch * time, *rest)` with shapes read at run time.

    An Operation rather than a plain `ops.reshape`: in a Functional model the
    ops of `compute_mask` become graph nodes, and a reshape traced on symbolic
    tensors would bake in `None` for unknown batch and time sizes.
    """

    def call(self, x: Any) -> Any:
        return ops.reshape(x, (-1, *ops.shape(x)[2:]))

    def compute_output_spec(self, x: Any) -> Any:
        batch, time = x.shape[0], x.shape[1]
        n = None if batch is None or time is None else batch * time
        return keras.KerasTensor((n, *x.shape[2:]), dtype=x.dtype)


@keras.saving.register_keras_serializable(package="maskviz")
class _UnflattenTime(keras.Operation):
    """`(batch * time, *rest) -> (batch, time, *rest)`, batch and time from `reference`."""

    def call(self, flat: Any, reference: Any) -> Any:
        shape = ops.shape(reference)
        return ops.reshape(flat, (shape[0], shape[1], *ops.shape(flat)[1:]))

    def compute_output_spec(self, flat: Any, reference: Any) -> Any:
        shape = (reference.shape[0], reference.shape[1], *flat.shape[1:])
        return keras.KerasTensor(shape, dtype=flat.dtype)


def _wrapper_from_config(cls: type, config: dict[str, Any], custom_objects: Any) -> Any:
    """`Wrapper.from_config` without mutating `config` (Keras pops "layer")."""
    config = dict(config)
    layer = keras.saving.deserialize_keras_object(
        config.pop("layer"), custom_objects=custom_objects
    )
    return cls(layer, **config)


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedTimeDistributed(keras.layers.Wrapper):
    """Applies a layer to every timestep and keeps the mask it makes.

    `keras.layers.TimeDistributed` throws away the mask its inner layer makes:
    `TimeDistributed(Embedding(mask_zero=True))` over `(batch, time, tokens)`
    yields no mask at all, and an inner LSTM over sub-sequences loses the
    information that a whole step was padding. Use this wrapper instead. The
    output mask is the inner layer's own mask (from its `compute_mask` on the
    per-step input) reshaped to `(batch, time, ...)`; when the inner layer
    drops the inner mask because it reduces rank (an LSTM without
    `return_sequences`, a pooling layer), the inner input mask is reduced to
    `(batch, time)`: a step is kept if any of its inner steps was kept. The
    result is combined (AND) with the incoming `(batch, time)` mask. A mask
    that would not line up with the output's leading axes is reduced to
    `(batch, time)` the same way.

    Args:
        layer: The layer applied to each step, on inputs of shape
            `(batch, *step_shape)`.
        **kwargs: Base layer keyword arguments, such as `name`.

    Call arguments:
        inputs: A tensor of shape `(batch, time, *step_shape)`.
        training: Python boolean, passed to the inner layer.
        mask: Optional incoming mask: `(batch, time)`, or `(batch, time, ...)`
            whose trailing axes are passed to the inner layer as its mask.

    Example:

    >>> tokens = keras.Input((None, 6), dtype="int32")  # (batch, sentences, words)
    >>> emb = MaskedTimeDistributed(keras.layers.Embedding(100, 8, mask_zero=True))
    >>> words = emb(tokens)  # mask (batch, sentences, words)
    >>> sent = MaskedTimeDistributed(keras.layers.LSTM(16))(words)  # mask (batch, sentences)
    >>> sent.shape
    (None, None, 16)
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: Any) -> None:
        super().__init__(layer, **kwargs)
        # The wrapper computes a (batch, time, ...) output mask from the inner
        # layer's own mask and the incoming one (compute_mask below).
        self.supports_masking = True

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
        return _wrapper_from_config(cls, config, custom_objects)

    @staticmethod
    def _step_shape(input_shape: Any) -> tuple[Any, ...]:
        if len(input_shape) < 3:
            raise ValueError(
                "`MaskedTimeDistributed` needs an input of shape (batch, time, ...), at "
                f"least 3-D. Received: input_shape={tuple(input_shape)}"
            )
        return (None, *input_shape[2:])

    def build(self, input_shape: Any) -> None:
        if not self.layer.built:
            self.layer.build(self._step_shape(input_shape))

    def compute_output_shape(self, input_shape: Any) -> Any:
        inner = self.layer.compute_output_shape(self._step_shape(input_shape))
        return (input_shape[0], input_shape[1], *inner[1:])

    @staticmethod
    def _inner_input_mask(mask: Any) -> Any:
        if mask is None or len(mask.shape) <= 2:
            return None
        return _FlattenTime()(ops.cast(mask, "bool"))

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        flat = _FlattenTime()(inputs)
        kwargs: dict[str, Any] = {}
        if _call_accepts(self.layer, "training"):
            kwargs["training"] = training
        inner_mask = self._inner_input_mask(mask)
        if inner_mask is not None and _call_accepts(self.layer, "mask"):
            kwargs["mask"] = inner_mask
        outputs = self.layer(flat, **kwargs)
        return _UnflattenTime()(outputs, inputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # Keras's TimeDistributed drops the inner layer's mask; here it is the
        # output mask (reshaped to (batch, time, ...)), reduced to (batch, time)
        # where the inner layer reduced rank, AND the incoming time mask.
        flat = _FlattenTime()(inputs)
        inner_in = self._inner_input_mask(mask)
        inner_out = None
        if getattr(self.layer, "supports_masking", False):
            inner_out = self.layer.compute_mask(flat, inner_in)
        if isinstance(inner_out, (list, tuple)):
            inner_out = inner_out[0] if inner_out else None

        step_mask = None
        if inner_out is not None:
            inner_out = ops.cast(inner_out, "bool")
            out_step_shape = self._inner_output_step_shape(inputs)
            rest = tuple(inner_out.shape[1:])
            aligned = out_step_shape is not None and (
                len(rest) <= len(out_step_shape)
                and all(
                    a is None or b is None or a == b
                    for a, b in zip(rest, out_step_shape[: len(rest)], strict=True)
                )
            )
            step_mask = _UnflattenTime()(inner_out, inputs)
            if not aligned:
                step_mask = as_time_mask(step_mask)
        elif inner_in is not None:
            step_mask = as_time_mask(_UnflattenTime()(inner_in, inputs))

        time_mask = as_time_mask(mask)
        if step_mask is None:
            return time_mask
        if time_mask is None:
            return step_mask
        return ops.logical_and(step_mask, expand_to_rank(time_mask, len(step_mask.shape)))

    def _inner_output_step_shape(self, inputs: Any) -> tuple[Any, ...] | None:
        try:
            inner = self.layer.compute_output_shape(self._step_shape(inputs.shape))
        except Exception:  # a layer without compute_output_shape: reduce to (batch, time)
            return None
        if isinstance(inner, list) or (inner and isinstance(inner[0], (list, tuple))):
            inner = inner[0]
        return tuple(inner[1:])


@keras.saving.register_keras_serializable(package="maskviz")
class MaskPassthrough(keras.layers.Wrapper):
    """Wraps a per-step layer so the mask it receives flows on unchanged.

    Custom layers default to `supports_masking = False` in Keras 3, so a mask
    that reaches an elementwise activation or a Dense-like custom layer is
    destroyed (with at most a `UserWarning`) and downstream consumers see
    padding as data. Use this wrapper when the inner layer maps each step to
    one output step independently (elementwise ops, per-step projections,
    normalisation over the feature axis); do NOT use it for layers that mix
    steps or change the time axis (pooling, strided convolutions, attention,
    reshapes), where passing the mask on unchanged would be wrong.

    Args:
        layer: The per-step layer to wrap.
        **kwargs: Base layer keyword arguments, such as `name`.

    Call arguments:
        inputs: The inner layer's input.
        training: Python boolean, passed to the inner layer if it accepts it.
        mask: The incoming mask, passed to the inner layer if its `call`
            accepts `mask`, and returned as the output mask.

    Example:

    >>> class Scale(keras.layers.Layer):
    ...     def call(self, x):
    ...         return 2.0 * x
    >>> x = keras.layers.Masking()(keras.Input((None, 3)))
    >>> y = MaskPassthrough(Scale())(x)
    >>> y.shape
    (None, None, 3)
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: Any) -> None:
        super().__init__(layer, **kwargs)
        # The wrapped layer is per-step, so its output is aligned with its input
        # and the input's mask is the right output mask.
        self.supports_masking = True

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
        return _wrapper_from_config(cls, config, custom_objects)

    def build(self, input_shape: Any) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        kwargs: dict[str, Any] = {}
        if _call_accepts(self.layer, "training"):
            kwargs["training"] = training
        if mask is not None and _call_accepts(self.layer, "mask"):
            kwargs["mask"] = mask
        # A copy carries no attached mask, so Keras does not warn that the
        # (non-masking) inner layer destroys it: this wrapper hands it on.
        return self.layer(ops.copy(inputs), **kwargs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # Per-step layer: the output steps are the input steps, so is the mask.
        return mask
