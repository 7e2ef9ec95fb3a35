"""`maskviz.callbacks.PaddingCheck`: the invariances on the first batch of `fit()`,
without changing the training run."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maskviz.callbacks import PaddingCheck

L = keras.layers
T = 10
LENGTHS = (10, 3, 6, 8, 2, 10, 5, 7)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    keep = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
    x = np.where(keep, rng.integers(1, 20, (len(LENGTHS), T)), 0).astype("int32")
    y = rng.integers(0, 3, (len(LENGTHS), T)).astype("int32")
    return x, y, keep


def tagger(mask_zero: bool = True, rnn: bool = True) -> keras.Model:
    keras.utils.set_random_seed(3)
    t = keras.Input((None,), dtype="int32")
    x = L.Embedding(20, 4, mask_zero=mask_zero)(t)
    # Keras 3.16 no longer passes an RNN's mask on: the correct tagger below uses
    # Dense layers, which pass it on in every Keras 3.
    x = L.LSTM(4, return_sequences=True)(x) if rnn else L.Dense(4, activation="tanh")(x)
    model = keras.Model(t, L.Dense(3)(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _fit(model, x, y, callbacks, epochs=2):
    return model.fit(
        x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks
    )


@pytest.mark.slow
def test_same_weights_and_losses_as_without_the_callback():
    x, y, _ = _data()
    plain = tagger()
    h_plain = _fit(plain, x, y, [])
    checked = tagger()
    cb = PaddingCheck(verbose=0)
    h_checked = _fit(checked, x, y, [cb])
    assert cb.report is not None  # it ran, on the user's batch (4 rows)
    assert cb.report.probe.values[cb.report.probe.inputs[0].name].shape[0] == 4
    assert h_plain.history["loss"] == h_checked.history["loss"]
    for a, b in zip(plain.get_weights(), checked.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Nothing of the callback is left on the model.
    assert "train_step" not in checked.__dict__


def test_correctly_masked_tagger_has_no_error():
    x, y, keep = _data()
    model = tagger(rnn=False)
    # Truth, measured here: other labels at padded steps leave the loss unchanged.
    other = np.where(keep, y, (y + 1) % 3).astype("int32")
    l1 = model.evaluate(x, y, batch_size=8, verbose=0)
    l2 = model.evaluate(x, other, batch_size=8, verbose=0)
    assert abs(l1 - l2) <= 1e-6 + 1e-4 * abs(l1)
    cb = PaddingCheck(verbose=0, strict=True)
    history = _fit(model, x, y, [cb])
    assert cb.errors == [], [f.message for f in cb.errors]
    assert "loss" in cb.report.oracle.invariance.checked
    assert len(history.history["loss"]) == 2


def test_strict_stops_a_model_that_learns_from_padding():
    x, y, keep = _data()
    model = tagger(mask_zero=False)
    # Truth, measured here: the same labels, more padding -> another loss.
    more = np.concatenate([x, np.zeros((len(x), 5), "int32")], axis=1)
    y_more = np.concatenate([y, np.zeros((len(y), 5), "int32")], axis=1)
    w = keep.astype("float32")
    w_more = np.concatenate([w, np.zeros((len(w), 5), "float32")], axis=1)
    l1 = model.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0)
    l2 = model.evaluate(more, y_more, sample_weight=w_more, batch_size=8, verbose=0)
    assert abs(l1 - l2) > 1e-4
    cb = PaddingCheck(verbose=0, strict=True)
    history = _fit(model, x, y, [cb], epochs=3)
    rules = {f.rule for f in cb.errors}
    assert "MV114" in rules, [f.message for f in cb.report.findings]
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
