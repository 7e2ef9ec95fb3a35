"""The time loop of `MaskedRNN`: unrolled in Python, `keras.ops.fori_loop` (last output only)
or `keras.ops.scan` (sequences), with masked steps keeping the previous output and states."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from maskviz.layers._masks import expand_to_rank
from maskviz.layers._rnn_cells import _config_dropout_masks, _pack_states, _reset_dropout_masks

if TYPE_CHECKING:
    from maskviz.layers.masked_rnn import MaskedRNN


def run_steps(
    layer: MaskedRNN,
    xs: Any,
    ms: Any,
    states: list[Any],
    *,
    batch_size: Any,
    dtype: Any,
    training: Any,
    sequences_shape: Any,
) -> tuple[Any, list[Any], Any]:
    """Runs `layer`'s cell over the time-major steps `xs` (masked by `ms`, time-major too).

    Returns `(last_output, final_states, sequence)`, where `sequence` is the batch-major
    stacked outputs when `layer.return_sequences`, else `None`.
    """
    _config_dropout_masks(layer.cell, xs[0], _pack_states(layer.cell, states))
    output0 = ops.zeros((batch_size, *layer.output_shape_per_step), dtype=dtype)

    def step(carry: tuple[Any, list[Any]], x_t: Any, m_t: Any) -> tuple[Any, list[Any]]:
        prev_output, prev_states = carry
        output, new_states = layer._cell_step(x_t, prev_states, training)
        output = ops.cast(output, dtype)
        new_states = [ops.cast(s, dtype) for s in new_states]
        if m_t is not None:
            output = ops.where(expand_to_rank(m_t, len(output.shape)), output, prev_output)
            new_states = [
                ops.where(expand_to_rank(m_t, len(new.shape)), new, old)
                for new, old in zip(new_states, prev_states, strict=True)
            ]
        return output, new_states

    if layer.unroll:
        n_steps = xs.shape[0]
        if n_steps is None:
            raise ValueError(
                f"Layer '{layer.name}' cannot unroll a sequence whose number of steps is "
                "unknown. Give `keras.Input` a static time dimension or use "
                f"`unroll=False`. Received: sequences.shape={sequences_shape}"
            )
        carry = (output0, states)
        outputs = []
        for t in range(n_steps):
            carry = step(carry, xs[t], ms[t] if ms is not None else None)
            outputs.append(carry[0])
        last_output, final_states = carry
        sequence = ops.stack(outputs, axis=1) if layer.return_sequences else None
    elif not layer.return_sequences:
        # Only the last output and states are needed: a loop with no stacking.
        def body(t: Any, carry: Any) -> Any:
            m_t = ops.take(ms, t, axis=0) if ms is not None else None
            return step(carry, ops.take(xs, t, axis=0), m_t)

        last_output, final_states = ops.fori_loop(0, ops.shape(xs)[0], body, (output0, states))
        sequence = None
    else:
        # TensorFlow's scan needs each per-step output to match the carry, so
        # there the whole carry is stacked; other backends stack the output only.
        stack_carry = keras.backend.backend() == "tensorflow"

        def scan_fn(carry: Any, x: Any) -> Any:
            x_t, m_t = x if ms is not None else (x, None)
            new_carry = step(carry, x_t, m_t)
            return new_carry, (new_carry if stack_carry else new_carry[0])

        scan_xs = (xs, ms) if ms is not None else xs
        (last_output, final_states), ys = ops.scan(scan_fn, (output0, states), scan_xs)
        sequence = None
        if layer.return_sequences:
            ys = ys[0] if stack_carry else ys
            sequence = ops.transpose(ys, (1, 0, *range(2, len(ys.shape))))
    _reset_dropout_masks(layer.cell)
    return last_output, final_states, sequence
