"""`maskviz.testing.assert_mask_safe` for users' own test suites."""

from __future__ import annotations

import keras
import pytest

from maskviz.testing import assert_mask_safe


def test_passes_on_clean_model(zoo):
    report = assert_mask_safe(zoo["clean_lstm"])
    assert not report.at_or_above("error")


def test_fails_listing_rule_and_path(zoo):
    with pytest.raises(AssertionError) as info:
        assert_mask_safe(zoo["conv1d_after_masking"])
    text = str(info.value)
    conv = zoo["conv1d_after_masking"].layers[2].name
    assert f"MV101 [error] {conv}:" in text
    assert "suggestion:" in text


def test_fail_on_threshold(zoo):
    # Embedding -> Dense: only MV109, an info, on any Keras (no RNN or wrapper whose mask
    # passing changed between versions).
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    model = keras.Model(tokens, keras.layers.Dense(2)(x), name="tagger")
    report = assert_mask_safe(model, fail_on="warning")
    assert report.rule_ids == ["MV109"]
    with pytest.raises(AssertionError, match="MV109"):
        assert_mask_safe(model, fail_on="info")
    assert assert_mask_safe(zoo["conv1d_after_masking"], fail_on="never").findings


def test_bad_fail_on():
    with pytest.raises(ValueError, match="Received: 'errors'"):
        assert_mask_safe(None, fail_on="errors")
