"""`maskviz.testing.assert_mask_safe` for users' own test suites."""

from __future__ import annotations

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
    model = zoo["timedistributed_dense"]  # only MV109, an info
    report = assert_mask_safe(model, fail_on="warning")
    assert report.rule_ids == ["MV109"]
    with pytest.raises(AssertionError, match="MV109"):
        assert_mask_safe(model, fail_on="info")
    assert assert_mask_safe(zoo["conv1d_after_masking"], fail_on="never").findings


def test_bad_fail_on():
    with pytest.raises(ValueError, match="Received: 'errors'"):
        assert_mask_safe(None, fail_on="errors")
