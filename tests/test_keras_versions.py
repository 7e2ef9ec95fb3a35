"""Findings that stay true whichever Keras is installed: each test observes what the
installed Keras does with the mask and computes the model's truth itself (truncation),
then checks maskviz against both."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import maskviz  # noqa: E402

L = keras.layers


def _td_then_lstm():
    i = keras.Input((None, 3), name="features")
    x = L.Masking(0.0, name="masking")(i)
    x = L.TimeDistributed(L.Dense(4), name="td")(x)
    return keras.Model(i, L.LSTM(2, name="lstm")(x), name="td_lstm")


def _padding_changes_output(model, x_full: np.ndarray, kept: int) -> float:
    """Truth without maskviz: one row, padded after `kept` steps, against the same row cut
    to its kept steps. A model that masks its padding gives the same output."""
    padded = x_full.copy()
    padded[:, kept:] = 0.0
    cut = padded[:, :kept]
    a = keras.ops.convert_to_numpy(model(padded))
    b = keras.ops.convert_to_numpy(model(cut))
    return float(np.max(np.abs(a - b)))


def test_wrapper_that_drops_the_mask_is_named(passes_mask):
    """`Masking -> TimeDistributed(Dense) -> LSTM`: clean where TimeDistributed passes the
    mask on; where it does not, padding leaks into the LSTM and MV101 names
    TimeDistributed (a layer with a child record)."""
    keras.utils.set_random_seed(0)
    model = _td_then_lstm()
    x = np.random.default_rng(0).standard_normal((1, 6, 3)).astype("float32")
    leak = _padding_changes_output(model, x, kept=3)
    report = maskviz.inspect(model, oracle=False)
    mv101 = [f for f in report.findings if f.rule == "MV101"]
    if passes_mask("TimeDistributed"):
        assert leak < 1e-5
        assert mv101 == [], report.to_text()
    else:
        assert leak > 1e-4  # the truth: padding reaches the LSTM
        assert [f.layer for f in mv101] == ["td"], report.to_text()
        assert mv101[0].severity.value == "error"
        assert "MaskedTimeDistributed" in mv101[0].suggestion
        assert f"Keras {keras.__version__}" in mv101[0].suggestion


def test_one_finding_per_wrapper(passes_mask):
    """A Bidirectional tagger: no finding at all where Bidirectional passes the mask on,
    else one finding for the Bidirectional, none for the two LSTMs inside it."""
    i = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True)(i)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(x)
    model = keras.Model(i, L.Dense(2)(x), name="bi_tagger")
    report = maskviz.inspect(model, oracle=False)
    worrying = report.at_or_above("warning")
    if passes_mask("Bidirectional"):
        assert worrying == [], report.to_text()
        return
    assert [(f.rule, f.layer) for f in worrying] == [("MV101", "bi")], report.to_text()
    inside = [f for f in report.findings if f.path.startswith("bi/")]
    assert inside == [], report.to_text()
    # The advice fits a Keras built-in: the version's behaviour and a repair a user can make.
    assert "supports_masking = True" not in worrying[0].suggestion
    assert f"Keras {keras.__version__}" in worrying[0].suggestion
    assert "mask=" in worrying[0].suggestion


def test_builtin_compute_mask_disagreement_has_followable_advice(passes_mask):
    """An LSTM returning sequences into Flatten (nothing downstream uses a mask): where the
    LSTM passes no mask on though its `compute_mask` makes one, MV111 is info and names
    the repair; never "set supports_masking" on Keras's own class."""
    i = keras.Input((6,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True)(i)
    x = L.LSTM(3, return_sequences=True, name="lstm")(x)
    model = keras.Model(i, L.Dense(1)(L.Flatten()(x)), name="lstm_flatten")
    report = maskviz.inspect(model, oracle=False)
    mv111 = [f for f in report.findings if f.rule == "MV111"]
    if passes_mask("LSTM"):
        assert mv111 == [], report.to_text()
        return
    assert [f.layer for f in mv111] == ["lstm"], report.to_text()
    (f,) = mv111
    assert f.severity.value == "info"
    assert "MaskedLSTM" in f.suggestion and "mask=" in f.suggestion
    assert "supports_masking = True" not in f.suggestion


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_masked_twins_pass_the_mask_on(kind):
    """The repair the advice names works on the installed Keras: the twin's output carries
    the mask (observed), whatever Keras's own layer does."""
    tokens = np.array([[1, 2, 0], [3, 0, 0]], dtype="int32")
    x = L.Embedding(5, 3, mask_zero=True)(tokens)
    twin = getattr(maskviz.layers, f"Masked{kind}")(2, return_sequences=True)
    y = twin(x)
    mask = getattr(y, "_keras_mask", None)  # test-only peek
    assert mask is not None
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), tokens != 0)
