"""Every layer of `maskviz.layers` through the `run_layer_test` checklist.

Backend-agnostic; also run on JAX by `test_layers_jax.py`. Hypothesis varies
ranks and lengths with few examples (the checklist builds and saves models).
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

sys.path.insert(0, str(Path(__file__).parent))

from layer_checklist import run_layer_test  # noqa: E402

import maskviz.layers as mlayers  # noqa: E402
from maskviz.layers import (  # noqa: E402
    FeatureMasking,
    MaskedConv1D,
    MaskedGlobalMaxPooling1D,
    MaskedGRU,
    MaskedLSTM,
    MaskedRNN,
    MaskedTimeDistributed,
    MaskPassthrough,
    TimestepMasking,
)

SMALL = settings(max_examples=8, deadline=None, derandomize=True)


def _right_padded(batch: int, time: int, lengths: list[int] | None = None) -> np.ndarray:
    lengths = lengths or [max(1, time - i) for i in range(batch)]
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


@keras.saving.register_keras_serializable(package="maskviz_tests")
class RankAccumulatorCell(keras.layers.Layer):
    """Adds each step's input to a state of the input's rank; outputs the sum doubled."""

    def build(self, input_shape):
        self.state_size = [tuple(input_shape[1:])]
        self.output_size = tuple(input_shape[1:])

    def call(self, inputs, states):
        new = states[0] + inputs
        return 2.0 * new, [new]


@keras.saving.register_keras_serializable(package="maskviz_tests")
class Scale(keras.layers.Layer):
    """A per-step custom layer that does not support masking (Keras's default)."""

    def call(self, inputs):
        return 3.0 * inputs


# MaskedRNN ------------------------------------------------------------------


@SMALL
@given(
    step_rank=st.integers(1, 3),
    time=st.integers(1, 5),
    return_sequences=st.booleans(),
    unroll=st.booleans(),
)
def test_masked_rnn_any_step_rank(step_rank, time, return_sequences, unroll):
    step_shape = (2, 3, 2)[:step_rank]
    rng = np.random.default_rng(step_rank * 10 + time)
    x = rng.normal(size=(3, time, *step_shape)).astype("float32")
    mask = _right_padded(3, time)
    cumsum = np.cumsum(np.where(mask.reshape(3, time, *[1] * step_rank), x, 0.0), axis=1)
    expected = 2.0 * (cumsum if return_sequences else cumsum[:, -1])
    run_layer_test(
        MaskedRNN,
        {
            "cell": RankAccumulatorCell(),
            "return_sequences": return_sequences,
            "return_state": True,
            "unroll": unroll,
        },
        x,
        mask,
        expected_output_shape=[expected.shape, (3, *step_shape)],
        expected_mask_shape=[(3, time) if return_sequences else None, None],
        expected_output=[expected, cumsum[:, -1]],
        expected_mask=mask if return_sequences else None,
        run_saving=step_rank == 2 and time == 3,
    )


def test_masked_rnn_checklist_with_saving():
    x = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    run_layer_test(
        MaskedRNN,
        {"cell": keras.layers.LSTMCell(3), "return_sequences": True, "return_state": True},
        x,
        _right_padded(3, 4),
        expected_output_shape=[(3, 4, 3), (3, 3), (3, 3)],
        expected_mask_shape=[(3, 4), None, None],
        expected_num_weights=3,
    )


@pytest.mark.parametrize("cls", [MaskedLSTM, MaskedGRU])
def test_masked_lstm_gru_checklist(cls):
    x = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    run_layer_test(
        cls,
        {"units": 3, "return_sequences": True, "dropout": 0.1, "go_backwards": True},
        x,
        _right_padded(3, 4),
        expected_output_shape=(3, 4, 3),
        expected_mask_shape=(3, 4),
        expected_mask=_right_padded(3, 4)[:, ::-1],
        expected_num_weights=3,
    )


# TimestepMasking / FeatureMasking ---------------------------------------------


@SMALL
@given(ndim=st.integers(3, 5), time=st.integers(1, 5), mask_value=st.sampled_from([0.0, -1.0]))
def test_timestep_masking_any_rank(ndim, time, mask_value):
    shape = (3, time, *(2, 3, 2)[: ndim - 2])
    rng = np.random.default_rng(ndim * 10 + time)
    x = rng.normal(size=shape).astype("float32")
    kept = _right_padded(3, time)
    x[~kept] = mask_value
    if time > 1:
        x[0, 0].flat[0] = mask_value  # one value at padding is not a padded step
    expected = np.where(kept.reshape(3, time, *[1] * (ndim - 2)), x, 0.0)
    run_layer_test(
        TimestepMasking,
        {"mask_value": mask_value},
        x,
        None,
        expected_output_shape=shape,
        expected_mask_shape=(3, time),
        expected_output=expected,
        expected_mask=kept,
        run_saving=ndim == 5 and time == 3,
    )


def test_timestep_masking_checklist_with_saving_and_incoming_mask():
    x = np.ones((2, 3, 2, 2, 1), "float32")
    x[0, 2] = 0.0
    incoming = np.array([[True, True, True], [True, False, True]])
    run_layer_test(
        TimestepMasking,
        {"mask_value": 0.0},
        x,
        incoming,
        expected_output_shape=x.shape,
        expected_mask_shape=(2, 3),
        expected_mask=[[True, True, False], [True, False, True]],
    )


@SMALL
@given(ndim=st.integers(3, 4), time=st.integers(1, 4), add_indicators=st.booleans())
def test_feature_masking(ndim, time, add_indicators):
    shape = (2, time, *(3, 2)[: ndim - 2])
    x = np.random.default_rng(time).normal(size=shape).astype("float32")
    x[0, 0].flat[0] = np.nan  # a partially missing step: kept, value filled
    x[1, -1] = np.nan  # a fully missing step: masked
    missing = np.isnan(x)
    filled = np.where(missing, 7.0, x)
    expected = np.concatenate([filled, missing.astype("float32")], -1) if add_indicators else filled
    kept = np.ones((2, time), bool)
    kept[1, -1] = False
    run_layer_test(
        FeatureMasking,
        {"mask_value": float("nan"), "fill_value": 7.0, "add_indicators": add_indicators},
        x,
        None,
        expected_output_shape=expected.shape,
        expected_mask_shape=(2, time),
        expected_output=expected,
        expected_mask=kept,
        run_saving=ndim == 3 and time == 3,
    )


def test_timestep_masking_feeds_keras_conv_lstm2d_valid():
    video = np.random.default_rng(0).normal(size=(2, 4, 6, 6, 2)).astype("float32")
    video[0, 3] = 0.0  # a padded step
    try:  # observed: Keras's own RNN loop on JAX cannot mask states of rank > 2
        keras.layers.ConvLSTM2D(3, 3)(video, mask=np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool))
    except Exception as e:
        # Then the (batch, time) mask TimestepMasking makes meets the same refusal:
        # the failure is Keras's, of the same type, not one TimestepMasking adds.
        inputs = keras.Input(video.shape[1:])
        with pytest.raises(type(e)):
            keras.Model(inputs, keras.layers.ConvLSTM2D(3, 3)(TimestepMasking()(inputs)))(video)
        return
    inputs = keras.Input(video.shape[1:])
    conv_lstm = keras.layers.ConvLSTM2D(3, 3, padding="valid")
    model = keras.Model(inputs, conv_lstm(TimestepMasking()(inputs)))
    out = ops.convert_to_numpy(model(video))
    assert out.shape == (2, 4, 4, 3)
    alone = ops.convert_to_numpy(conv_lstm(video[:1, :3]))
    np.testing.assert_allclose(out[:1], alone, atol=1e-5)


def test_feature_masking_checklist_with_saving():
    x = np.array([[[1.0, -1.0], [-1.0, -1.0], [2.0, 3.0]]], "float32")
    run_layer_test(
        FeatureMasking,
        {"mask_value": -1.0},
        x,
        None,
        expected_output_shape=(1, 3, 4),
        expected_mask_shape=(1, 3),
        expected_output=[[[1, 0, 0, 1], [0, 0, 1, 1], [2, 3, 0, 0]]],
        expected_mask=[[True, False, True]],
    )


# Wrappers -------------------------------------------------------------------


def test_time_distributed_embedding_keeps_inner_mask():
    tokens = np.array([[[1, 2, 0], [0, 0, 0]], [[3, 0, 0], [4, 5, 6]]], "int32")
    run_layer_test(
        MaskedTimeDistributed,
        {"layer": keras.layers.Embedding(10, 4, mask_zero=True)},
        tokens,
        None,
        expected_output_shape=(2, 2, 3, 4),
        expected_mask_shape=(2, 2, 3),
        expected_mask=tokens != 0,
    )


def test_time_distributed_inner_lstm_reduces_to_time_mask_and_ands_incoming():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 2)).astype("float32")
    inner_mask = np.ones((2, 3, 4), bool)
    inner_mask[0, 1] = False  # step (0, 1): every inner step padded
    inner_mask[1, 2, 2:] = False  # step (1, 2): partly padded, kept
    run_layer_test(
        MaskedTimeDistributed,
        {"layer": keras.layers.LSTM(5)},
        x,
        inner_mask,
        expected_output_shape=(2, 3, 5),
        expected_mask_shape=(2, 3),
        expected_mask=[[True, False, True], [True, True, True]],
    )
    # AND with an incoming (batch, time) mask.
    layer = MaskedTimeDistributed(keras.layers.Embedding(10, 2, mask_zero=True))
    tokens = np.array([[[1, 2], [3, 0]]], "int32")
    got = layer.compute_mask(tokens, np.array([[True, False]]))
    np.testing.assert_array_equal(ops.convert_to_numpy(got), [[[True, True], [False, False]]])


def test_time_distributed_inner_lstm_uses_inner_mask():
    x = np.random.default_rng(0).normal(size=(1, 2, 4, 2)).astype("float32")
    inner_mask = np.array([[[True, True, False, False], [True, True, True, True]]])
    lstm = keras.layers.LSTM(3)
    out = ops.convert_to_numpy(MaskedTimeDistributed(lstm)(x, mask=inner_mask))
    alone = ops.convert_to_numpy(lstm(x[:, 0, :2]))
    np.testing.assert_allclose(out[:, 0], alone, atol=1e-6)


def test_mask_passthrough():
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    mask = _right_padded(2, 4)
    run_layer_test(
        MaskPassthrough,
        {"layer": Scale()},
        x,
        mask,
        expected_output_shape=(2, 4, 3),
        expected_mask_shape=(2, 4),
        expected_output=3.0 * x,
        expected_mask=mask,
    )


# MaskedConv1D / MaskedGlobalMaxPooling1D --------------------------------------


def _expected_conv_mask(mask, kernel_size, strides, padding):
    """Reference for the documented rule, written with plain index arithmetic."""
    batch, n = mask.shape
    if padding == "valid":
        n_out = (n - kernel_size) // strides + 1
        return np.array(
            [
                [mask[b, t * strides : t * strides + kernel_size].all() for t in range(n_out)]
                for b in range(batch)
            ]
        ).reshape(batch, max(n_out, 0))
    if padding == "causal":
        n_out = (n - 1) // strides + 1
        return mask[:, ::strides][:, :n_out]
    n_out = -(-n // strides)
    pad_total = max((n_out - 1) * strides + kernel_size - n, 0)
    centre = np.arange(n_out) * strides - pad_total // 2 + (kernel_size - 1) // 2
    return mask[:, centre]


@SMALL
@given(
    time=st.integers(4, 9),
    kernel_size=st.integers(1, 3),
    strides=st.integers(1, 2),
    padding=st.sampled_from(["same", "valid", "causal"]),
)
def test_masked_conv1d_mask_rule(time, kernel_size, strides, padding):
    rng = np.random.default_rng(time * 100 + kernel_size * 10 + strides)
    x = rng.normal(size=(3, time, 2)).astype("float32")
    mask = _right_padded(3, time, [time, time - 2, 3])
    mask[2] = mask[2][::-1]  # one left-padded row
    expected_mask = _expected_conv_mask(mask, kernel_size, strides, padding)
    run_layer_test(
        MaskedConv1D,
        {"filters": 2, "kernel_size": kernel_size, "strides": strides, "padding": padding},
        x,
        mask,
        expected_output_shape=(3, expected_mask.shape[1], 2),
        expected_mask_shape=expected_mask.shape,
        expected_mask=expected_mask,
        run_saving=time == 6 and padding == "same",
    )


@pytest.mark.parametrize("padding", ["same", "valid", "causal"])
def test_masked_conv1d_kept_outputs_equal_unpadded_and_from_layer(padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    conv = keras.layers.Conv1D(4, 3, padding=padding)
    conv.build((None, None, 3))
    masked = MaskedConv1D.from_layer(conv)
    assert [w.shape for w in masked.weights] == [w.shape for w in conv.weights]
    mask = np.array([[True] * 5 + [False] * 2, [False] * 3 + [True] * 4])
    noisy = np.where(mask[..., None], x, 1e3)
    out = ops.convert_to_numpy(masked(noisy, mask=mask))
    out_mask = ops.convert_to_numpy(masked.compute_mask(noisy, mask))
    for b, (start, stop) in enumerate([(0, 5), (3, 7)]):
        alone = ops.convert_to_numpy(conv(x[b : b + 1, start:stop]))[0]
        np.testing.assert_allclose(out[b][out_mask[b]], alone, atol=1e-5)


def test_masked_global_max_pooling():
    x = -np.ones((3, 4, 2), "float32")
    x[0, 1] = [-0.5, -2.0]
    x[0, 3] = [5.0, 5.0]  # padding: must not win
    mask = np.array([[True, True, True, False], [True, False, False, False], [False] * 4])
    run_layer_test(
        MaskedGlobalMaxPooling1D,
        {},
        x,
        mask,
        expected_output_shape=(3, 2),
        expected_mask_shape=None,
        expected_output=[[-0.5, -1.0], [-1.0, -1.0], [0.0, 0.0]],
    )
    keep = MaskedGlobalMaxPooling1D(keepdims=True)(x, mask=mask)
    assert tuple(keep.shape) == (3, 1, 2)


def test_docstring_examples():
    modules = [mlayers.masked_rnn, mlayers.masking, mlayers.wrappers, mlayers.conv]
    globs = {"keras": keras, **{name: getattr(mlayers, name) for name in mlayers.__all__}}
    for module in modules:
        result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
