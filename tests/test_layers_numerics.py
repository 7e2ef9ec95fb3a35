"""MaskedLSTM / MaskedGRU agree with keras.layers.LSTM / GRU given the same weights.

What is compared: on unmasked data, every output and the final states; on
right- and left-padded data (where the built-in layer is correct), the
sequence output at kept positions and the final output and states. Keras's
layer gets the mask explicitly (`mask=`), which it honours in an eager call.
Backend-agnostic; also run on JAX by `test_layers_jax.py`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

sys.path.insert(0, str(Path(__file__).parent))

from layer_checklist import MaskAsTensor  # noqa: E402

from maskviz.layers import MaskedGRU, MaskedLSTM, MaskedRNN  # noqa: E402

ATOL = 1e-5
PAIRS = [(keras.layers.LSTM, MaskedLSTM, 2), (keras.layers.GRU, MaskedGRU, 1)]


def _data(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = np.random.default_rng(seed).normal(size=(4, 7, 3)).astype("float32")
    lengths = np.array([7, 5, 2, 1])
    right = np.arange(7)[None, :] < lengths[:, None]
    return x, {"none": np.ones((4, 7), bool), "right": right, "left": right[:, ::-1]}


def _np(ts):
    return [ops.convert_to_numpy(t) for t in ts]


@pytest.mark.parametrize(("keras_cls", "masked_cls", "n_states"), PAIRS)
@pytest.mark.parametrize("padding", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_agrees_with_builtin(keras_cls, masked_cls, n_states, padding, go_backwards):
    x, masks = _data()
    mask = masks[padding]
    kw = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    ref_layer = keras_cls(5, **kw)
    ref = _np(ref_layer(x, mask=mask))
    masked = masked_cls.from_layer(ref_layer)
    assert [w.path.split("/")[-1] for w in masked.weights] == [
        w.path.split("/")[-1] for w in ref_layer.weights
    ]
    got = _np(masked(x, mask=mask))
    assert len(got) == len(ref) == 1 + n_states
    seq_mask = mask[:, ::-1] if go_backwards else mask
    np.testing.assert_allclose(got[0][seq_mask], ref[0][seq_mask], atol=ATOL)
    for g, r in zip(got[1:], ref[1:], strict=True):  # final states
        np.testing.assert_allclose(g, r, atol=ATOL)
    last = masked_cls.from_layer(keras_cls(5, go_backwards=go_backwards))
    last.build((None, 7, 3))
    last.set_weights(ref_layer.get_weights())
    # The last output is the output of the last kept step = the final h.
    np.testing.assert_allclose(_np([last(x, mask=mask)])[0], ref[1], atol=ATOL)


@pytest.mark.parametrize(("keras_cls", "masked_cls", "n_states"), PAIRS)
def test_initial_state_in_functional_model_keeps_the_mask(keras_cls, masked_cls, n_states):
    x, masks = _data(1)
    mask = masks["right"]
    states = [np.full((4, 5), 0.3, "float32") for _ in range(n_states)]
    ref_layer = keras_cls(5, return_sequences=True)
    # Eager call with explicit mask=: Keras's layer is correct here.
    ref = ops.convert_to_numpy(ref_layer(x, initial_state=states, mask=mask))

    masked = masked_cls.from_layer(ref_layer)
    seq = keras.Input((7, 3))
    state_inputs = [keras.Input((5,)) for _ in range(n_states)]
    out = masked(keras.layers.Masking()(seq), initial_state=state_inputs)
    model = keras.Model([seq, *state_inputs], out)
    padded = np.where(mask[..., None], x, 0.0)
    got = ops.convert_to_numpy(model([padded, *states]))
    np.testing.assert_allclose(got[mask], ref[mask], atol=ATOL)
    # Masked steps repeat the last kept output (the mask reached the layer).
    np.testing.assert_allclose(got[2, 2:], np.repeat(got[2, 1:2], 5, axis=0), atol=ATOL)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded([padded, *states])), got, atol=ATOL)
    # The sequence output hands the time mask on, despite initial_state=.
    mask_model = keras.Model([seq, *state_inputs], MaskAsTensor()(out))
    np.testing.assert_array_equal(ops.convert_to_numpy(mask_model([padded, *states])), mask)


@pytest.mark.parametrize(("keras_cls", "masked_cls", "n_states"), PAIRS)
def test_bidirectional_wrapper_agrees(keras_cls, masked_cls, n_states):
    x, masks = _data(3)
    mask = masks["right"]
    ref = keras.layers.Bidirectional(keras_cls(4, return_sequences=True))
    expected = ops.convert_to_numpy(ref(x, mask=mask))
    bidir = keras.layers.Bidirectional(masked_cls(4, return_sequences=True))
    bidir.build((None, 7, 3))
    bidir.set_weights(ref.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(bidir(x, mask=mask))[mask], expected[mask], atol=ATOL
    )


def test_masked_rnn_from_simple_rnn_and_stacked_cells():
    x, masks = _data(2)
    mask = masks["left"]
    simple = keras.layers.SimpleRNN(4, return_sequences=True)
    ref = ops.convert_to_numpy(simple(x, mask=mask))
    converted = MaskedRNN.from_layer(simple)
    assert type(converted) is MaskedRNN
    np.testing.assert_allclose(
        ops.convert_to_numpy(converted(x, mask=mask))[mask], ref[mask], atol=ATOL
    )
    assert type(MaskedRNN.from_layer(keras.layers.LSTM(2))) is MaskedLSTM

    cells = [keras.layers.GRUCell(3), keras.layers.LSTMCell(2)]
    stacked_ref = keras.layers.RNN(cells, return_sequences=True)
    ref = ops.convert_to_numpy(stacked_ref(x, mask=mask))
    stacked = MaskedRNN.from_layer(stacked_ref)
    np.testing.assert_allclose(
        ops.convert_to_numpy(stacked(x, mask=mask))[mask], ref[mask], atol=ATOL
    )


def test_from_layer_rejects_stateful_and_wrong_types():
    with pytest.raises(ValueError, match="stateful"):
        MaskedLSTM.from_layer(keras.layers.LSTM(2, stateful=True))
    with pytest.raises(ValueError, match="expects a `keras.layers.LSTM`"):
        MaskedLSTM.from_layer(keras.layers.GRU(2))
    with pytest.raises(ValueError, match="keras.layers.RNN"):
        MaskedRNN.from_layer(keras.layers.Dense(2))


def test_dynamic_time_functional_model_saves_and_loads():
    from maskviz.layers import MaskedTimeDistributed, TimestepMasking

    tokens = keras.Input((None, None), dtype="int32")  # (batch, sentences, words)
    words = MaskedTimeDistributed(keras.layers.Embedding(20, 4, mask_zero=True))(tokens)
    sentences = MaskedTimeDistributed(MaskedLSTM(3))(words)
    doc = MaskedLSTM(2)(sentences)
    model_a = keras.Model(tokens, doc)
    seq = keras.Input((None, 3))
    model_b = keras.Model(seq, MaskedRNN(keras.layers.GRUCell(2))(TimestepMasking()(seq)))

    t = np.array([[[1, 2, 0], [3, 0, 0], [0, 0, 0]], [[4, 5, 6], [0, 0, 0], [0, 0, 0]]], "int32")
    s = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    s[1, 3:] = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for model, data in ((model_a, t), (model_b, s)):
            path = os.path.join(tmp, f"{model.name}.keras")
            before = ops.convert_to_numpy(model(data))
            model.save(path)
            after = ops.convert_to_numpy(keras.saving.load_model(path)(data))
            np.testing.assert_allclose(after, before, atol=ATOL)
    # Sample 1 has one real sentence: its document vector equals that of a
    # one-sentence document (the padded sentences were skipped).
    np.testing.assert_allclose(
        ops.convert_to_numpy(model_a(t[1:, :1]))[0],
        ops.convert_to_numpy(model_a(t[1:]))[0],
        atol=ATOL,
    )
