"""A rank-generic masked RNN, and LSTM/GRU drop-ins built on it."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from maskviz.layers._masks import as_time_mask, expand_to_rank, first_mask
from maskviz.layers._rnn_cells import (
    _accepts,
    _cell_output_shape,
    _cell_state_shapes,
    _pack_states,
)
from maskviz.layers._rnn_loop import run_steps


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedRNN(keras.layers.Layer):
    """Recurrent layer whose masking is right for states and outputs of any rank.

    Use it instead of `keras.layers.RNN` when a cell's states or output are not
    2-D (convolutional cells over `(batch, time, rows, cols, channels)`, cells
    with matrix states), when the output is not `states[0]` or has another
    size, or when the layer is called with `initial_state=` and the sequence
    carries a mask. Keras's RNN only accepts integer sizes, tiles the mask along
    one axis only, and gets no mask at all when called with `initial_state=`.

    At a masked step the cell's results are discarded: every state keeps its
    previous value and the output repeats the last kept output (or is zero in
    the returned sequence when `zero_output_for_mask=True`). Masked input steps
    are zeroed before the cell sees them, so not even gradients depend on them.

    The mask is read from, in order: the `mask` argument (Keras fills it when
    the layer is called with one tensor argument), or the mask Keras attaches
    to `sequences` when the call has several tensor arguments (Keras then
    fills the `sequences_mask` argument instead of `mask`). A mask with more
    axes than `(batch, time)` is reduced: a step is kept when any of its
    positions is kept.

    Args:
        cell: An RNN cell: a layer (or callable) whose `call(inputs, states)`
            returns `(output, new_states)`, with a `state_size` attribute (an
            int or TensorShape for one state, or a list with one int, tuple or
            TensorShape per state) and optionally `output_size` (int, tuple or
            TensorShape; defaults to the first state's shape). `states` is
            always passed as a list.
        return_sequences: Boolean. Whether to return the output of every step
            (`(batch, time, *output_size)`) or only the last one. Default:
            `False`.
        return_state: Boolean. Whether to also return the final states.
            Default: `False`.
        go_backwards: Boolean. If `True`, process the sequence backwards and
            return the reversed sequence (as `keras.layers.RNN` does); the
            returned mask is reversed too, so it stays aligned. Default: `False`.
        unroll: Boolean. If `True`, unroll the loop in Python (needs a static
            number of steps); if `False`, loop with `keras.ops.fori_loop` (last
            output only) or `keras.ops.scan` (sequences). Default: `False`.
        zero_output_for_mask: Boolean. If `True`, the returned sequence is zero
            at masked steps instead of repeating the last kept output. The last
            output (when `return_sequences=False`) is always the output of the
            last kept step. Default: `False`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        sequences: A tensor of shape `(batch, time, ...)`, or a list whose first
            element is that tensor and whose other elements are initial states.
        initial_state: Optional list of initial state tensors, one per state,
            each of shape `(batch, *state_shape)`. Defaults to the cell's
            `get_initial_state`, else zeros.
        mask: Optional boolean tensor of shape `(batch, time)` (more axes are
            reduced as described above). `True` marks kept steps.
        training: Python boolean, passed to the cell (dropout).
        sequences_mask: Filled by Keras with the mask of `sequences` when the
            call has several tensor arguments; used when `mask` is `None`.
            Never pass it yourself.

    Returns:
        The output (`(batch, time, *output_size)` if `return_sequences`, else
        `(batch, *output_size)`), followed by the final states when
        `return_state`.

    Example:

    >>> cell = keras.layers.LSTMCell(4)
    >>> x = keras.Input((None, 3))
    >>> h0, c0 = keras.Input((4,)), keras.Input((4,))
    >>> masked = keras.layers.Masking()(x)
    >>> y = MaskedRNN(cell, return_sequences=True)(masked, initial_state=[h0, c0])
    >>> y.shape
    (None, None, 4)
    """

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        if isinstance(cell, (list, tuple)):
            cell = keras.layers.StackedRNNCells(cell)
        if not hasattr(cell, "call") and not callable(cell):
            raise ValueError(
                "`cell` should be a layer or callable with a `call(inputs, states)` method "
                f"and a `state_size` attribute. Received: cell={cell!r}"
            )
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        self.stateful = False  # read by keras.layers.Bidirectional; not supported
        # The layer consumes a (batch, time) mask and hands the same time mask on
        # with its sequence output, so masking is supported (see compute_mask).
        self.supports_masking = True
        self._cell_has_training = _accepts(getattr(cell, "call", cell), "training")

    # Shapes -----------------------------------------------------------------

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        """The per-state shapes (without batch) of the cell, read after build."""
        return _cell_state_shapes(self.cell)

    @property
    def output_shape_per_step(self) -> tuple[int, ...]:
        """The cell's output shape (without batch), `state_shapes[0]` by default."""
        return _cell_output_shape(self.cell)

    def build(self, sequences_shape: Any, initial_state_shape: Any = None) -> None:
        if isinstance(sequences_shape, list) and isinstance(sequences_shape[0], (list, tuple)):
            sequences_shape = sequences_shape[0]  # [sequences, *states] passed as one list
        step_shape = (sequences_shape[0], *sequences_shape[2:])
        if isinstance(self.cell, keras.layers.Layer) and not self.cell.built:
            self.cell.build(step_shape)

    def compute_output_shape(self, sequences_shape: Any, initial_state_shape: Any = None) -> Any:
        if isinstance(sequences_shape, list) and isinstance(sequences_shape[0], (list, tuple)):
            sequences_shape = sequences_shape[0]
        batch, length = sequences_shape[0], sequences_shape[1]
        out = self.output_shape_per_step
        output_shape = (batch, length, *out) if self.return_sequences else (batch, *out)
        if self.return_state:
            return (output_shape, *[(batch, *s) for s in self.state_shapes])
        return output_shape

    def compute_mask(self, sequences: Any, previous_mask: Any = None) -> Any:
        # The sequence output is aligned with the input steps, so it carries the
        # input's time mask (reversed with the output when go_backwards); the last
        # output and the states have no time axis, so they carry no mask.
        mask = as_time_mask(first_mask(previous_mask))
        output_mask = None
        if self.return_sequences and mask is not None:
            output_mask = ops.flip(mask, axis=1) if self.go_backwards else mask
        if self.return_state:
            return [output_mask] + [None] * len(self.state_shapes)
        return output_mask

    # Loop -------------------------------------------------------------------

    def get_initial_state(self, batch_size: Any) -> list[Any]:
        """The cell's `get_initial_state(batch_size)` if it has one, else zeros."""
        get_initial_state_fn = getattr(self.cell, "get_initial_state", None)
        if get_initial_state_fn is not None:
            return keras.tree.flatten(get_initial_state_fn(batch_size=batch_size))
        dtype = getattr(self.cell, "compute_dtype", self.compute_dtype)
        return [ops.zeros((batch_size, *shape), dtype=dtype) for shape in self.state_shapes]

    def _cell_step(self, x_t: Any, states: list[Any], training: Any) -> tuple[Any, list[Any]]:
        kwargs = {"training": training} if self._cell_has_training else {}
        output, new_states = self.cell(x_t, _pack_states(self.cell, states), **kwargs)
        return output, keras.tree.flatten(new_states)

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: Any = None,
        sequences_mask: Any = None,
    ) -> Any:
        if isinstance(sequences, (list, tuple)):
            if initial_state is None and len(sequences) > 1:
                initial_state = list(sequences[1:])
            sequences = sequences[0]
        mask = first_mask(mask)
        if mask is None:
            mask = first_mask(sequences_mask)
        mask = as_time_mask(mask)

        batch_size = ops.shape(sequences)[0]
        if initial_state is None:
            states = self.get_initial_state(batch_size)
        else:
            states = keras.tree.flatten(initial_state)
        n_states = len(self.state_shapes)
        if len(states) != n_states:
            raise ValueError(
                f"Layer '{self.name}' expects {n_states} initial state(s), one per entry of "
                f"the cell's `state_size` ({self.cell.state_size!r}). "
                f"Received: {len(states)} initial state(s)."
            )
        dtype = getattr(self.cell, "compute_dtype", self.compute_dtype)
        states = [ops.cast(s, dtype) for s in states]

        if mask is not None:
            # Zero masked steps so that nothing at a masked step, not even a NaN or
            # its gradient, reaches the kept results.
            sequences = ops.where(
                expand_to_rank(mask, len(sequences.shape)),
                sequences,
                ops.zeros_like(sequences),
            )
        # Time-major: (time, batch, ...).
        perm = (1, 0, *range(2, len(sequences.shape)))
        xs = ops.transpose(sequences, perm)
        ms = ops.transpose(mask, (1, 0)) if mask is not None else None
        if self.go_backwards:
            xs = ops.flip(xs, axis=0)
            ms = ops.flip(ms, axis=0) if ms is not None else None

        last_output, final_states, sequence = run_steps(
            self,
            xs,
            ms,
            states,
            batch_size=batch_size,
            dtype=dtype,
            training=training,
            sequences_shape=sequences.shape,
        )

        if self.return_sequences:
            output = sequence
            if self.zero_output_for_mask and mask is not None:
                out_mask = ops.flip(mask, axis=1) if self.go_backwards else mask
                output = ops.where(
                    expand_to_rank(out_mask, len(output.shape)), output, ops.zeros_like(output)
                )
        else:
            output = last_output
        if self.return_state:
            return (output, *final_states)
        return output

    # Saving -----------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = {
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> MaskedRNN:
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(
            config["cell"], custom_objects=custom_objects
        )
        return cls(**config)

    @classmethod
    def from_layer(cls, layer: keras.layers.Layer) -> MaskedRNN:
        """Builds this layer from a `keras.layers.RNN` (or subclass), copying weights.

        `MaskedRNN.from_layer(keras.layers.LSTM(...))` returns a `MaskedLSTM`
        (likewise for `GRU`); any other RNN becomes a `MaskedRNN` around a copy
        of its cell. The config is copied; when `layer` is built, the new layer is
        built the same way and gets `layer.get_weights()`.

        Raises:
            ValueError: `layer` is not a `keras.layers.RNN`, or is stateful.
        """
        if not isinstance(layer, keras.layers.RNN):
            raise ValueError(
                f"`{cls.__name__}.from_layer` expects a `keras.layers.RNN` (LSTM, GRU, "
                f"SimpleRNN, RNN). Received: {type(layer).__name__}"
            )
        if layer.stateful:
            raise ValueError(
                f"`{cls.__name__}.from_layer` cannot convert the stateful layer "
                f"'{layer.name}': masked layers do not keep state across batches. "
                "Received: stateful=True"
            )
        if cls is MaskedRNN and isinstance(layer, keras.layers.LSTM):
            return MaskedLSTM.from_layer(layer)
        if cls is MaskedRNN and isinstance(layer, keras.layers.GRU):
            return MaskedGRU.from_layer(layer)
        config = layer.get_config()
        for key in ("stateful", "use_cudnn", "time_major", "implementation"):
            config.pop(key, None)
        if cls is MaskedRNN:
            # Subclasses such as SimpleRNN flatten their cell's arguments into
            # their config: keep the RNN arguments and copy the cell itself.
            keep = {
                "name",
                "trainable",
                "dtype",
                "return_sequences",
                "return_state",
                "go_backwards",
                "unroll",
                "zero_output_for_mask",
                "activity_regularizer",
            }
            config = {k: v for k, v in config.items() if k in keep}
            cell = layer.cell
            config["cell"] = type(cell).from_config(cell.get_config())
        new = cls(**config)
        if layer.built:
            new.build_from_config(layer.get_build_config())
            new.set_weights(layer.get_weights())
        return new


_LSTM_ARGS = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "unit_forget_bias",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)
_GRU_ARGS = tuple(a for a in _LSTM_ARGS if a != "unit_forget_bias") + ("reset_after",)


class _CellWrappingRNN(MaskedRNN):
    """A MaskedRNN that builds its own Keras cell and exposes a flat config."""

    _cell_class: type = keras.layers.Layer
    _source_class: type = keras.layers.RNN  # the Keras layer `from_layer` converts
    _cell_args: tuple[str, ...] = ()
    _cell_name = "cell"

    @classmethod
    def from_layer(cls, layer: keras.layers.Layer) -> MaskedRNN:
        if not isinstance(layer, cls._source_class):
            raise ValueError(
                f"`{cls.__name__}.from_layer` expects a "
                f"`keras.layers.{cls._source_class.__name__}`. Received: "
                f"{type(layer).__name__}"
            )
        return super().from_layer(layer)

    def __init__(self, units: int, **kwargs: Any) -> None:
        kwargs.pop("stateful", None)  # only False reaches here (see from_layer)
        kwargs.pop("use_cudnn", None)
        cell_kwargs = {k: kwargs.pop(k) for k in self._cell_args if k in kwargs}
        cell = self._cell_class(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=self._cell_name,
            **cell_kwargs,
        )
        super().__init__(cell, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        cell_config = self.cell.get_config()
        del config["cell"]
        config.update({k: cell_config[k] for k in self._cell_args if k in cell_config})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> MaskedRNN:
        return cls(**config)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # units, activation, ... read through to the cell, as on keras.layers.LSTM.
        # Properties, not `__getattr__`: on the torch backend a layer is a
        # `torch.nn.Module`, whose own `__getattr__` finds `self.cell` (kept in
        # `_modules`, not `__dict__`) and must not be shadowed.
        for name in cls._cell_args:
            if name not in cls.__dict__:
                setattr(cls, name, property(_cell_reader(name)))


def _cell_reader(name: str) -> Any:
    def read(self: MaskedRNN) -> Any:
        return getattr(self.cell, name)

    read.__name__ = name
    read.__doc__ = f"The cell's `{name}`."
    return read


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedLSTM(_CellWrappingRNN):
    """Drop-in for `keras.layers.LSTM`, with the masking of `MaskedRNN`.

    Same arguments, same config keys and the same variables in the same order
    as `keras.layers.LSTM` (`kernel`, `recurrent_kernel`, `bias` of an
    `LSTMCell`), so `masked.set_weights(lstm.get_weights())` works and
    `MaskedLSTM.from_layer(lstm)` converts a (built) layer. Use it when an LSTM
    is called with `initial_state=` on a masked sequence (Keras would drop the
    mask), or wherever a patched model needs the states masked too.
    `stateful=True` and cuDNN are not supported.

    Args:
        units: Positive integer, dimensionality of the output space.
        **kwargs: Every other argument of `keras.layers.LSTM` (`activation`,
            `recurrent_activation`, `use_bias`, initializers, regularizers,
            constraints, `dropout`, `recurrent_dropout`, `seed`), plus
            `return_sequences`, `return_state`, `go_backwards`, `unroll`,
            `zero_output_for_mask` and base layer arguments.

    Call arguments:
        sequences: A 3-D tensor `(batch, time, features)`.
        initial_state: Optional list `[h, c]` of `(batch, units)` tensors.
        mask: Optional `(batch, time)` boolean tensor.
        training: Python boolean (dropout).

    Example:

    >>> lstm = keras.layers.LSTM(8)
    >>> _ = lstm(keras.ops.ones((2, 5, 3)))
    >>> masked = MaskedLSTM.from_layer(lstm)
    >>> len(masked.get_weights())
    3
    """

    _cell_class = keras.layers.LSTMCell
    _source_class = keras.layers.LSTM
    _cell_args = _LSTM_ARGS
    _cell_name = "lstm_cell"


@keras.saving.register_keras_serializable(package="maskviz")
class MaskedGRU(_CellWrappingRNN):
    """Drop-in for `keras.layers.GRU`, with the masking of `MaskedRNN`.

    Same arguments, config keys and variables (`kernel`, `recurrent_kernel`,
    `bias` of a `GRUCell`, in that order) as `keras.layers.GRU`, so
    `set_weights(gru.get_weights())` and `MaskedGRU.from_layer(gru)` work. Use
    it when a GRU is called with `initial_state=` on a masked sequence.
    `stateful=True` and cuDNN are not supported.

    Args:
        units: Positive integer, dimensionality of the output space.
        **kwargs: Every other argument of `keras.layers.GRU` (including
            `reset_after`), plus `return_sequences`, `return_state`,
            `go_backwards`, `unroll`, `zero_output_for_mask` and base layer
            arguments.

    Call arguments:
        sequences: A 3-D tensor `(batch, time, features)`.
        initial_state: Optional list `[h]` of one `(batch, units)` tensor.
        mask: Optional `(batch, time)` boolean tensor.
        training: Python boolean (dropout).

    Example:

    >>> gru = MaskedGRU(8, return_sequences=True)
    >>> tuple(gru(keras.ops.ones((2, 5, 3))).shape)
    (2, 5, 8)
    """

    _cell_class = keras.layers.GRUCell
    _source_class = keras.layers.GRU
    _cell_args = _GRU_ARGS
    _cell_name = "gru_cell"
