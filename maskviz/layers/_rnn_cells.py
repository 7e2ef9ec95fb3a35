"""The cell side of `MaskedRNN`: state and output shapes of any rank, the state structure a
cell's `call` expects, and dropout masks made once per call."""

from __future__ import annotations

import inspect
from typing import Any

import keras


def _as_shape(size: Any) -> tuple[int, ...]:
    """Normalises one state or output size (int, tuple/list or TensorShape) to a tuple."""
    if isinstance(size, int):
        return (size,)
    if hasattr(size, "as_list"):  # tf.TensorShape, without importing TensorFlow
        size = size.as_list()
    try:
        return tuple(int(d) for d in size)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Each RNN cell state or output size must be an int, a tuple of ints or a "
            f"TensorShape. Received: {size!r}"
        ) from e


def _state_shapes(state_size: Any) -> list[tuple[int, ...]]:
    """Per-state shapes (without batch) from a cell's `state_size`.

    An int or a TensorShape is one state. A list or tuple holds one entry per
    state, as in Keras (`LSTMCell.state_size == [units, units]`); each entry is
    an int, a tuple of ints or a TensorShape. So a single state of shape (6, 6)
    is written `state_size = [(6, 6)]`.
    """
    if state_size is None:
        raise ValueError(
            "The RNN cell has no `state_size`. Set `state_size` on the cell (in "
            "`__init__` or `build`). Received: state_size=None"
        )
    if isinstance(state_size, int) or hasattr(state_size, "as_list"):
        return [_as_shape(state_size)]
    if isinstance(state_size, (list, tuple)):
        return [_as_shape(s) for s in state_size]
    raise ValueError(
        "`state_size` must be an int, a TensorShape, or a list/tuple with one int, "
        f"tuple or TensorShape per state. Received: state_size={state_size!r}"
    )


def _cell_state_shapes(cell: Any) -> list[tuple[int, ...]]:
    """Flat per-state shapes; for `StackedRNNCells`, every cell's states in order."""
    if isinstance(cell, keras.layers.StackedRNNCells):
        return [shape for sub in cell.cells for shape in _cell_state_shapes(sub)]
    return _state_shapes(getattr(cell, "state_size", None))


def _cell_output_shape(cell: Any) -> tuple[int, ...]:
    """The cell's output shape (without batch); the first state's by default."""
    if isinstance(cell, keras.layers.StackedRNNCells):
        return _cell_output_shape(cell.cells[-1])
    output_size = getattr(cell, "output_size", None)
    if output_size is None:
        return _cell_state_shapes(cell)[0]
    return _as_shape(output_size)


def _pack_states(cell: Any, flat: list[Any]) -> list[Any]:
    """The flat state list in the structure the cell's `call` expects.

    A plain cell gets the flat list; `StackedRNNCells` gets one list per cell.
    """
    if not isinstance(cell, keras.layers.StackedRNNCells):
        return list(flat)
    packed, start = [], 0
    for sub in cell.cells:
        n = len(_cell_state_shapes(sub))
        packed.append(_pack_states(sub, flat[start : start + n]))
        start += n
    return packed


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _config_dropout_masks(cell: Any, step_input: Any, states: list[Any]) -> None:
    """Creates a dropout cell's masks before the loop, as `keras.layers.RNN` does.

    Masks created inside the loop would be traced values (JAX) or be re-drawn
    every step, so they are created once here and reset after the call.
    """
    if isinstance(cell, keras.layers.StackedRNNCells):
        for sub_cell, sub_states in zip(cell.cells, states, strict=False):
            sub_states = list(sub_states) if isinstance(sub_states, (list, tuple)) else [sub_states]
            _config_dropout_masks(sub_cell, step_input, sub_states)
            step_input, _ = sub_cell(step_input, sub_states)
        return
    if hasattr(cell, "get_dropout_mask") and hasattr(cell, "get_recurrent_dropout_mask"):
        cell.get_dropout_mask(step_input)
        cell.get_recurrent_dropout_mask(states[0])


def _reset_dropout_masks(cell: Any) -> None:
    if isinstance(cell, keras.layers.StackedRNNCells):
        for sub_cell in cell.cells:
            _reset_dropout_masks(sub_cell)
        return
    if hasattr(cell, "reset_dropout_mask"):
        cell.reset_dropout_mask()
    if hasattr(cell, "reset_recurrent_dropout_mask"):
        cell.reset_recurrent_dropout_mask()
