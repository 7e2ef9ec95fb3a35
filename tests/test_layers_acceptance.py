"""The seed reports, as acceptance tests for `MaskedRNN` (backend-agnostic).

Each test is a masking bug reported against Keras's RNN loop (keras-team/keras
#11472, #11498, tensorflow/tensorflow#23632, ConvLSTM with `Masking`), with the
numbers the reports expect. The same module runs on JAX in a subprocess
(`test_layers_jax.py`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from maskviz.layers import MaskedRNN, TimestepMasking

N_SAMPLES, N_TIMESTEPS = 3, 4


def _last_step_masked(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ones of `shape` with the last step zeroed, and a mask hiding that step."""
    x = np.ones(shape, "float32")
    x[:, -1] = 0.0
    mask = np.ones(shape[:2], bool)
    mask[:, -1] = False
    return x, mask


class TileCell(keras.layers.Layer):
    """Output (batch, 5, 2): the (batch, 5) input tiled on a new axis (#11498)."""

    state_size = [6]
    output_size = (5, 2)

    def call(self, inputs, states):
        return ops.tile(ops.expand_dims(inputs, -1), (1, 1, 2)), states


class MatrixCounterCell(keras.layers.Layer):
    """One (6, 6) state incremented each step; the output is the input (#11498)."""

    state_size = [(6, 6)]
    output_size = 5

    def call(self, inputs, states):
        return inputs, [s + 1.0 for s in states]


class IdentityPlusOneCell(keras.layers.Layer):
    """Output = input, state + 1; sizes set in build (#11472)."""

    def build(self, input_shape):
        self.state_size = input_shape[-1]
        self.output_size = input_shape[-1]

    def call(self, inputs, states):
        return inputs, [s + 1.0 for s in states]


class DoubleOutputCell(keras.layers.Layer):
    """Output twice the state size (tensorflow/tensorflow#23632)."""

    state_size = 5
    output_size = 10

    def call(self, inputs, states):
        return ops.concatenate([inputs, states[0]], axis=-1), [states[0] + inputs]


class ConvLSTMStyleCell(keras.layers.Layer):
    """A ConvLSTM-style cell: 2-D convolutions over (rows, cols, channels) states."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = keras.layers.Conv2D(4 * filters, 3, padding="same")

    def build(self, input_shape):
        rows, cols = input_shape[1], input_shape[2]
        self.state_size = [(rows, cols, self.filters)] * 2
        self.output_size = (rows, cols, self.filters)
        self.conv.build((*input_shape[:-1], input_shape[-1] + self.filters))

    def call(self, inputs, states):
        h, c = states
        z = self.conv(ops.concatenate([inputs, h], axis=-1))
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]


@pytest.mark.parametrize("unroll", [True, False])
def test_output_of_rank_3_keeps_previous_output_at_masked_step(unroll):
    x, mask = _last_step_masked((N_SAMPLES, N_TIMESTEPS, 5))
    layer = MaskedRNN(TileCell(), return_sequences=True, unroll=unroll)
    outputs = ops.convert_to_numpy(layer(x, mask=mask))
    assert outputs.shape == (N_SAMPLES, N_TIMESTEPS, 5, 2)
    np.testing.assert_array_equal(outputs, np.ones_like(outputs))


@pytest.mark.parametrize("unroll", [True, False])
def test_state_of_rank_3_not_updated_at_masked_step(unroll):
    x, mask = _last_step_masked((N_SAMPLES, N_TIMESTEPS, 5))
    layer = MaskedRNN(MatrixCounterCell(), return_state=True, unroll=unroll)
    _, state = layer(x, mask=mask)
    state = ops.convert_to_numpy(state)
    assert state.shape == (N_SAMPLES, 6, 6)
    np.testing.assert_array_equal(state, np.full((N_SAMPLES, 6, 6), N_TIMESTEPS - 1.0))


@pytest.mark.parametrize("unroll", [True, False])
def test_output_independent_of_states_with_initial_state_in_functional_model(unroll):
    # Keras gets no mask here (initial_state= makes two tensor arguments) and
    # reports 12 and 13; with the mask, the masked third step changes nothing.
    x = keras.Input((3, 1))
    s0 = keras.Input((1,))
    y, s = MaskedRNN(IdentityPlusOneCell(), return_state=True, unroll=unroll)(
        keras.layers.Masking()(x), initial_state=[s0]
    )
    model = keras.Model([x, s0], [y, s])
    y_val, s_val = model([np.array([[[1.0], [2.0], [0.0]]]), np.array([[10.0]])])
    np.testing.assert_allclose(ops.convert_to_numpy(y_val), [[2.0]])
    np.testing.assert_allclose(ops.convert_to_numpy(s_val), [[12.0]])


@pytest.mark.parametrize("unroll", [True, False])
def test_output_larger_than_state(unroll):
    x, mask = _last_step_masked((N_SAMPLES, N_TIMESTEPS, 5))
    layer = MaskedRNN(DoubleOutputCell(), return_sequences=True, return_state=True, unroll=unroll)
    outputs, state = layer(x, mask=mask)
    outputs, state = ops.convert_to_numpy(outputs), ops.convert_to_numpy(state)
    assert outputs.shape == (N_SAMPLES, N_TIMESTEPS, 10)
    # Step t (0-based) outputs [1, t] (input, state before the step); the masked
    # last step repeats step 2, and the state stops at 3.
    np.testing.assert_array_equal(outputs[:, -1], outputs[:, -2])
    np.testing.assert_array_equal(outputs[:, 2, 5:], np.full((N_SAMPLES, 5), 2.0))
    np.testing.assert_array_equal(state, np.full((N_SAMPLES, 5), 3.0))


@pytest.mark.parametrize("unroll", [True, False])
def test_conv_lstm_style_cell_over_video_with_time_mask(unroll):
    rng = np.random.default_rng(0)
    video = rng.normal(size=(2, N_TIMESTEPS, 5, 5, 2)).astype("float32")
    video[:, -1] = 0.0  # padding step: TimestepMasking masks it as (batch, time)
    inputs = keras.Input(video.shape[1:])
    masked = TimestepMasking(0.0)(inputs)
    rnn = MaskedRNN(ConvLSTMStyleCell(3), return_sequences=True, return_state=True, unroll=unroll)
    seq, h, c = rnn(masked)
    model = keras.Model(inputs, [seq, h, c])
    seq, h, c = (ops.convert_to_numpy(t) for t in model(video))
    assert seq.shape == (2, N_TIMESTEPS, 5, 5, 3)
    assert np.abs(seq[:, -2]).max() > 0
    np.testing.assert_array_equal(seq[:, -1], seq[:, -2])
    np.testing.assert_array_equal(h, seq[:, -2])
    # Same numbers as running the three kept steps alone.
    short = MaskedRNN(rnn.cell, return_state=True, unroll=unroll)(video[:, :-1])
    np.testing.assert_allclose(c, ops.convert_to_numpy(short[2]), atol=1e-6)


@pytest.mark.parametrize("unroll", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_kept_results_do_not_depend_on_masked_values(unroll, go_backwards):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    mask = np.ones((4, 6), bool)
    mask[0, 4:] = False  # right padding
    mask[1, :2] = False  # left padding
    mask[2, 2] = False  # a hole
    mask[3, :] = False  # nothing kept
    noisy = x.copy()
    noisy[~mask] = 1e6 * rng.normal(size=((~mask).sum(), 3))
    noisy[3, 0, 0] = np.nan
    layer = MaskedRNN(
        keras.layers.LSTMCell(5),
        return_sequences=True,
        return_state=True,
        unroll=unroll,
        go_backwards=go_backwards,
    )
    clean_out = [ops.convert_to_numpy(t) for t in layer(x, mask=mask)]
    noisy_out = [ops.convert_to_numpy(t) for t in layer(noisy, mask=mask)]
    for clean, dirty in zip(clean_out, noisy_out, strict=True):
        np.testing.assert_array_equal(clean, dirty)
    # The fully masked sample keeps its zero initial state and output.
    np.testing.assert_array_equal(clean_out[0][3], np.zeros((6, 5)))
    np.testing.assert_array_equal(clean_out[1][3], np.zeros(5))


def test_zero_output_for_mask_and_backwards_mask_alignment():
    x = np.arange(1, 6, dtype="float32").reshape(1, 5, 1)
    mask = np.array([[True, True, True, False, False]])
    cell = IdentityPlusOneCell()
    forward = MaskedRNN(cell, return_sequences=True, zero_output_for_mask=True)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(forward(x, mask=mask))[0, :, 0], [1, 2, 3, 0, 0]
    )
    backward = MaskedRNN(cell, return_sequences=True, go_backwards=True)
    out = ops.convert_to_numpy(backward(x, mask=mask))[0, :, 0]
    # Reversed processing order [5, 4, 3, 2, 1] with 5 and 4 masked.
    np.testing.assert_array_equal(out, [0, 0, 3, 2, 1])
    out_mask = ops.convert_to_numpy(backward.compute_mask(x, mask))
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])


def test_dropout_cell_in_training_runs_and_respects_mask():
    x, mask = _last_step_masked((2, N_TIMESTEPS, 3))
    layer = MaskedRNN(
        keras.layers.LSTMCell(4, dropout=0.5, recurrent_dropout=0.5, seed=1),
        return_sequences=True,
    )
    out = ops.convert_to_numpy(layer(x, mask=mask, training=True))
    np.testing.assert_array_equal(out[:, -1], out[:, -2])


def test_wrong_number_of_initial_states_is_a_clear_error():
    layer = MaskedRNN(keras.layers.LSTMCell(4))
    with pytest.raises(ValueError, match="expects 2 initial state"):
        layer(np.ones((1, 3, 2), "float32"), initial_state=[np.zeros((1, 4), "float32")])
