"""Padding comes from the data: per-input `mask_value`, constant runs in `--data`,
models with no Keras mask, and masks that miss the padding (MV115)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import maskviz
from maskviz.probe import detect_padding

L = keras.layers


def two_maskings() -> keras.Model:
    a = keras.Input((None, 3), name="a")
    b = keras.Input((None, 3), name="b")
    xa = L.LSTM(4)(L.Masking(mask_value=-1.0)(a))
    xb = L.LSTM(4)(L.Masking(mask_value=5.0)(b))
    return keras.Model([a, b], L.Dense(2)(L.Concatenate()([xa, xb])))


def test_each_input_has_its_own_mask_value():
    """Issue 9's defect: `_mask_value` answered -1.0 for both inputs, so input b's
    padding (5.0) was taken as data."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 6, 3)).astype("float32")
    b = rng.standard_normal((4, 6, 3)).astype("float32")
    a[1, 3:] = -1.0
    b[2, 2:] = 5.0
    model = two_maskings()
    report = maskviz.inspect(model, data={"a": a, "b": b})
    keep_b = report.probe.keep["b"]
    assert keep_b[2].tolist() == [True, True, False, False, False, False]
    assert report.probe.keep["a"][1].tolist() == [True] * 3 + [False] * 3
    # Both maskings are correct: the invariances hold and nothing is an error.
    assert not report.at_or_above("error"), report
    assert report.oracle.invariance.checked
    assert not report.oracle.invariance.violations


def test_detects_a_constant_run_at_the_end_of_rows():
    x = np.random.default_rng(1).standard_normal((3, 8, 2)).astype("float32")
    x[0, 5:] = 0.0
    x[2, 2:] = 0.0
    keep, desc = detect_padding(x)
    assert keep is not None and desc is not None
    assert keep[0].tolist() == [True] * 5 + [False] * 3
    assert keep[1].all() and keep[2].sum() == 2
    assert "right padding" in desc and "0" in desc
    # Left padding too; and nothing in data without a run.
    keep, desc = detect_padding(x[:, ::-1])
    assert "left padding" in desc and keep[0].tolist() == [False] * 3 + [True] * 5
    assert detect_padding(np.random.default_rng(2).standard_normal((3, 8, 2)))[0] is None


def conv_no_mask() -> keras.Model:
    x = keras.Input((None, 2), name="signal")
    h = L.Conv1D(4, 3, padding="same")(x)
    return keras.Model(x, L.Dense(1)(L.GlobalAveragePooling1D()(h)))


def test_float_data_without_mask_is_checked_from_detected_padding():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 2)).astype("float32")
    x[1, 3:] = 0.0
    x[3, 6:] = 0.0
    model = conv_no_mask()
    # Truth, measured here: row 1 alone (truncated) gives another output.
    full = keras.ops.convert_to_numpy(model(x[1:2]))
    short = keras.ops.convert_to_numpy(model(x[1:2, :3]))
    assert np.abs(full - short).max() > 1e-3
    report = maskviz.inspect(model, data={"signal": x})
    assert any("right padding" in d for d in report.probe.detected)
    assert "MV113" in report.rule_ids
    text = report.to_text()
    assert "detected in the data" in text


def test_a_mask_that_keeps_every_padded_step():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 8, 2)).astype("float32")
    x[1, 4:] = 0.0
    x[2, 2:] = 0.0
    inp = keras.Input((None, 2), name="signal")
    h = L.Masking(mask_value=-1.0)(inp)  # the data is padded with 0.0
    model = keras.Model(inp, L.Dense(1)(L.LSTM(4)(h)))
    report = maskviz.inspect(model, data={"signal": x})
    assert "MV115" in report.rule_ids, report
    # A Masking with the data's own padding value is not a finding.
    inp = keras.Input((None, 2), name="signal")
    good = keras.Model(inp, L.Dense(1)(L.LSTM(4)(L.Masking(mask_value=0.0)(inp))))
    assert "MV115" not in maskviz.inspect(good, data={"signal": x}).rule_ids


def _key_mask_attention(keys_masked: bool) -> keras.Model:
    """Self-attention with a hand-built [B, T, S] mask: on keys (correct) or queries."""
    ops = keras.ops
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(20, 8)(i)
    keep = ops.not_equal(i, 0)
    rows, cols = ops.expand_dims(keep, 2), ops.expand_dims(keep, 1)
    att = ops.logical_and(ops.ones_like(rows), cols) if keys_masked else rows
    if not keys_masked:
        att = ops.logical_and(att, ops.ones_like(cols))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, attention_mask=att)
    return keras.Model(i, keras.layers.Dense(3)(x))


def _padded_tokens() -> dict[str, np.ndarray]:
    x = np.zeros((3, 7), "int32")
    for r, n in enumerate((6, 3, 4)):
        x[r, :n] = np.arange(1, n + 1) + r
    return {"token_ids": x}


def test_tensors_with_two_time_axes_are_compared_step_by_step():
    # The [B, T, S] attention mask follows the time on two axes: localising a length
    # violation must re-index both (it used to raise a broadcast error).
    keras.utils.set_random_seed(0)
    bad = maskviz.inspect(_key_mask_attention(keys_masked=False), data=_padded_tokens())
    assert "MV113" in {f.rule for f in bad.at_or_above("error")}
    keras.utils.set_random_seed(0)
    good = maskviz.inspect(_key_mask_attention(keys_masked=True), data=_padded_tokens())
    assert not good.at_or_above("error")


class _MeanOfAll(keras.Model):
    """A subclassed model that averages every step, padding included."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emb = keras.layers.Embedding(20, 4)
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(keras.ops.mean(self.emb(x), axis=1))


def test_a_subclassed_models_build_length_is_not_a_fixed_length():
    # Built on (1, 7), the model still runs on any length: the length invariance is
    # measured, not skipped on the strength of the build shape.
    keras.utils.set_random_seed(0)
    model = _MeanOfAll()
    model(np.zeros((1, 7), "int32"))
    data = {"arr_0": _padded_tokens()["token_ids"]}
    report = maskviz.inspect(model, data=data)
    inv = report.to_dict()["oracle"]["invariances"]
    assert "length" in inv["checked"], inv
    assert not any(s["what"] == "length" for s in inv["skipped"]), inv["skipped"]
    assert any(v["invariance"] == "length" for v in inv["violations"])


def _nan_padded() -> dict[str, np.ndarray]:
    x = np.full((3, 6, 2), np.nan, "float32")
    rng = np.random.default_rng(0)
    for r, n in enumerate((6, 3, 4)):
        x[r, :n] = rng.uniform(0.5, 1.5, (n, 2))
    return {"x": x}


def test_nan_padding_is_padding_and_masking_nan_is_explained():
    # NaN never equals NaN: `Masking(mask_value=nan)` masks nothing, and the NaN steps
    # reach the outputs of the padded rows. The truth, measured here: real rows stay
    # finite, padded rows become NaN.
    keras.utils.set_random_seed(0)
    i = keras.Input((None, 2), name="x")
    y = keras.layers.Dense(1)(keras.layers.LSTM(3)(keras.layers.Masking(mask_value=np.nan)(i)))
    model = keras.Model(i, y)
    data = _nan_padded()
    out = keras.ops.convert_to_numpy(model(data["x"]))
    assert np.isfinite(out[0]).all() and not np.isfinite(out[1:]).any()

    report = maskviz.inspect(model, data=data)
    by_rule = {f.rule: f for f in report.findings}
    assert "MV113" in {f.rule for f in report.at_or_above("error")}
    assert "NaN or infinity" in by_rule["MV113"].message
    assert "NaN never equals NaN" in by_rule["MV115"].suggestion


def test_nan_inside_real_steps_is_refused():
    data = _nan_padded()
    data["x"][0, 1, 0] = np.nan  # inside a real step: broken data, not padding
    i = keras.Input((None, 2), name="x")
    model = keras.Model(i, keras.layers.Dense(1)(i))
    with pytest.raises(maskviz.MaskvizError, match="NaN or infinite values in real steps"):
        maskviz.inspect(model, data=data)


def test_an_explicit_mask_input_gets_the_same_extra_padding_as_its_data():
    # Token ids and their padding mask share one time axis: the longer-padding run must
    # lengthen both alike, or a model that checks them together refuses the run and the
    # length invariance goes unmeasured.
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    pm = keras.Input((None,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(20, 8)(ids)
    keep = keras.ops.cast(keras.ops.expand_dims(pm, 1), "bool")  # [B, 1, S] over keys
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, attention_mask=keep)
    model = keras.Model([ids, pm], keras.layers.Dense(2)(x))
    tokens = _padded_tokens()["token_ids"]
    data = {"token_ids": tokens, "padding_mask": (tokens != 0).astype("int32")}
    inv = maskviz.inspect(model, data=data).to_dict()["oracle"]["invariances"]
    assert "length" in inv["checked"], inv
    assert not any(s["what"] == "length" for s in inv["skipped"]), inv["skipped"]
    assert not inv["violations"], inv["violations"]
