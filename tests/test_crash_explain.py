"""Every crash is explained (issue 10, item 4) and every mask is checked against its
tensor (item 5). Each test first observes, with Keras alone, whether the model
crashes on padded data; maskviz must then explain what it observed."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

import maskviz


def _crashes(model, feed) -> bool:
    try:
        model(feed, training=False)
    except Exception:
        return True
    return False


def _by_rule(report):
    out = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_masking_on_5d_input_into_convlstm2d():
    v = keras.Input((4, 6, 6, 2), name="video")
    y = layers.ConvLSTM2D(3, 3, name="convlstm")(layers.Masking(name="masking")(v))
    model = keras.Model(v, y)
    x = np.random.default_rng(0).random((2, 4, 6, 6, 2)).astype("float32")
    x[0, 2:] = 0.0
    crashed = _crashes(model, x)
    report = maskviz.inspect(model, data={"video": x})
    rules = _by_rule(report)
    if crashed:
        f = rules["MV112"][0]
        assert f.call_id == "convlstm"
        # The shapes of the tensor and its mask, and who made the mask.
        assert "(2, 4, 6, 6, 2)" in f.message and "mask (2, 4, 6, 6)" in f.message
        assert "made by `masking`" in f.message
    assert rules["MV103"][0].call_id == "convlstm"


def test_attention_mask_of_the_wrong_shape():
    q = keras.Input((6, 8), name="q")
    am = keras.Input((6, 5), name="am")
    y = layers.MultiHeadAttention(2, 4, name="mha")(q, q, attention_mask=am)
    model = keras.Model([q, am], y)
    feed = {"q": np.ones((2, 6, 8), "float32"), "am": np.ones((2, 6, 5), "float32")}
    assert _crashes(model, [feed["q"], feed["am"]])
    report = maskviz.inspect(model, data=feed)
    rules = _by_rule(report)
    crash = rules["MV112"][0]
    assert crash.call_id == "mha" and "`attention_mask` (2, 6, 5)" in crash.message
    assert "model input am" in crash.message
    mis = rules["MV121"][0]
    assert mis.call_id == "mha" and mis.severity.value == "error"
    assert "(2, 6, 6)" in mis.message  # the shape it had to broadcast to


def test_attention_mask_right_shape_is_not_flagged():
    q = keras.Input((6, 8), name="q")
    am = keras.Input((6, 6), name="am")
    y = layers.MultiHeadAttention(2, 4, name="mha")(q, q, attention_mask=am)
    model = keras.Model([q, am], y)
    feed = {"q": np.ones((2, 6, 8), "float32"), "am": np.ones((2, 6, 6), "float32")}
    assert not _crashes(model, [feed["q"], feed["am"]])
    report = maskviz.inspect(model, data=feed)
    assert not {"MV112", "MV121"} & set(_by_rule(report))


def test_explicit_mask_with_the_wrong_time_length():
    """tensorflow/tensorflow#45035: an LSTM given `mask=` of 5 steps for 6 steps."""
    x = keras.Input((6, 4), name="x")
    m = keras.Input((5,), dtype="bool", name="m")
    y = layers.LSTM(3, return_sequences=True, name="lstm")(x, mask=m)
    model = keras.Model([x, m], y)
    feed = {"x": np.ones((2, 6, 4), "float32"), "m": np.ones((2, 5), bool)}
    crashed = _crashes(model, [feed["x"], feed["m"]])
    report = maskviz.inspect(model, data=feed)
    rules = _by_rule(report)
    mis = rules["MV121"][0]
    assert mis.call_id == "lstm" and "5 steps, the tensor 6" in mis.message
    assert mis.severity.value == ("error" if crashed else mis.severity.value)
    if crashed:
        assert "received mask (2, 5)" in rules["MV112"][0].message


def test_mask_times_tensor_broadcasts_on_the_wrong_axis():
    """`x * mask` with x (B, T, D) and mask (B, T): right-aligned broadcasting."""
    t = keras.Input((6,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 6)(t)  # D == T, so the graph builds
    m = ops.cast(ops.not_equal(t, 0), "float32")
    y = layers.GlobalAveragePooling1D()(x * m)
    model = keras.Model(t, y)
    tokens = np.array([[3, 4, 0, 0, 0, 0], [5, 6, 7, 1, 0, 0], [1, 2, 3, 4, 5, 6]], "int32")
    crashed = _crashes(model, tokens)
    report = maskviz.inspect(model, data={"tokens": tokens})
    rules = _by_rule(report)
    f = rules["MV122"][0]
    assert f.call_id.startswith("multiply")
    assert "[:, :, None]" in f.suggestion
    assert f.severity.value == "error" if crashed else f.severity.value in ("warning", "error")
    if crashed:
        assert rules["MV112"][0].call_id == f.call_id
        assert "(a mask from `cast" in rules["MV112"][0].message


def test_mask_times_tensor_runs_when_sizes_coincide():
    """A batch of 6 rows with T == D == 6: `x * mask` runs, masking features."""
    t = keras.Input((6,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 6)(t)
    m = ops.cast(ops.not_equal(t, 0), "float32")
    y = layers.GlobalAveragePooling1D()(x * m)
    model = keras.Model(t, y)
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 20, (6, 6)).astype("int32")
    tokens[0, 3:] = 0
    assert not _crashes(model, tokens)
    # Truth: the padded step's embedding still reaches row 0's output.
    emb = model.layers[1]
    w = emb.get_weights()
    w2 = w[0].copy()
    w2[0] += 3.0
    y1 = model.predict(tokens, verbose=0)
    emb.set_weights([w2])
    y2 = model.predict(tokens, verbose=0)
    emb.set_weights(w)
    assert not np.allclose(y1[0], y2[0])
    report = maskviz.inspect(model, data={"tokens": tokens})
    f = _by_rule(report)["MV122"][0]
    assert "sizes coincide" in f.message


def test_mask_expanded_right_is_not_flagged():
    t = keras.Input((6,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 8)(t)
    m = ops.cast(ops.not_equal(t, 0), "float32")
    y = ops.sum(x * m[:, :, None], axis=1)
    model = keras.Model(t, y)
    tokens = np.array([[3, 4, 0, 0, 0, 0], [5, 6, 7, 1, 0, 0]], "int32")
    assert not _crashes(model, tokens)
    report = maskviz.inspect(model, data={"tokens": tokens})
    assert not {"MV112", "MV121", "MV122"} & set(_by_rule(report))


def test_concatenate_on_time_of_masked_and_unmasked():
    """keras-team/keras#20440 and its cousin: Concatenate(axis=1) of masked and
    unmasked sequences into an LSTM. Whatever the installed Keras does is explained."""
    t = keras.Input((6,), dtype="int32", name="tokens")
    f = keras.Input((4, 8), name="feats")
    x = layers.Embedding(20, 8, mask_zero=True)(t)
    c = layers.Concatenate(axis=1, name="concat")([x, f])
    y = layers.LSTM(3, name="lstm")(c)
    model = keras.Model([t, f], y)
    feed = {
        "tokens": np.array([[3, 4, 0, 0, 0, 0], [5, 6, 7, 1, 0, 0]], "int32"),
        "feats": np.ones((2, 4, 8), "float32"),
    }
    crashed = _crashes(model, [feed["tokens"], feed["feats"]])
    report = maskviz.inspect(model, data=feed)
    rules = _by_rule(report)
    if crashed:
        assert "MV112" in rules and "At this call:" in rules["MV112"][0].message
    else:
        conc = report.trace.call("concat")
        assert conc.outputs[0].mask.shape == (2, 10)
        assert not [f for f in report.findings if f.severity.value == "error"], report.findings


def test_keras_20440_two_masked_embeddings_concatenated():
    a = keras.Input((5,), dtype="int32", name="a")
    b = keras.Input((10,), dtype="int32", name="b")
    ea = layers.Embedding(8, 5, mask_zero=True)(a)
    eb = layers.Embedding(20, 5, mask_zero=True)(b)
    cat = layers.Concatenate(axis=1)([ea, eb])
    out = layers.Dense(1)(layers.LSTM(16)(cat))
    model = keras.Model([a, b], out)
    feed = {
        "a": np.array([[1, 2, 0, 0, 0]], "int32"),
        "b": np.array([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0]], "int32"),
    }
    crashed = _crashes(model, [feed["a"], feed["b"]])
    report = maskviz.inspect(model, data=feed)
    errors = [f for f in report.findings if f.severity.value == "error"]
    if crashed:
        assert any(f.rule == "MV112" and "At this call:" in f.message for f in errors)
    else:
        assert not errors, errors


def test_time_distributed_per_step_masks_are_shown():
    """TimeDistributed hands its inner LSTM per-step masks; with a mask of the wrong
    rank (Masking over 4-D input gives (B, T, S)), the explanation shows them."""
    v = keras.Input((3, 5, 2), name="v")
    x = layers.Masking(name="masking")(v)
    y = layers.TimeDistributed(layers.LSTM(4, name="inner"), name="td")(x)
    model = keras.Model(v, y)
    data = np.random.default_rng(0).random((2, 3, 5, 2)).astype("float32")
    data[0, 1, 3:] = 0.0
    crashed = _crashes(model, data)
    report = maskviz.inspect(model, data={"v": data})
    rules = _by_rule(report)
    inner = [c for c in report.trace.calls if c.parent == "td"]
    if crashed:
        f = rules["MV112"][0]
        assert "At this call:" in f.message
        if f.call_id != "td":
            assert "per step" in f.message
    else:
        assert inner and inner[0].received_mask is not None
        assert inner[0].received_mask[0].shape == (inner[0].inputs[0].shape[0], 5)
        assert not {"MV112", "MV121"} & set(rules)


def test_keras_22037_time_distributed_mask_with_other_timesteps():
    """keras-team/keras#22037: TimeDistributed given a mask with one step too many
    (silently accepted in some Keras 3 releases, an error in others)."""
    x = keras.Input((5, 3), name="x")
    m = keras.Input((6,), dtype="bool", name="m")
    y = layers.TimeDistributed(layers.Dense(5), name="td")(x, mask=m)
    model = keras.Model([x, m], y)
    feed = {"x": np.zeros((4, 5, 3), "float32"), "m": np.ones((4, 6), bool)}
    crashed = _crashes(model, [feed["x"], feed["m"]])
    report = maskviz.inspect(model, data=feed)
    f = _by_rule(report)["MV121"][0]
    assert f.call_id == "td" and "6 steps, the tensor 5" in f.message
    assert "model input m" in f.message
    assert f.severity.value == ("error" if crashed else "warning")


def test_time_distributed_rnn_given_a_per_sample_mask():
    """TimeDistributed(LSTM) with a (batch, time) mask: the wrapper hands its inner
    LSTM a mask without a time axis. Explained at the inner call, per step."""
    x = keras.Input((8, 4, 3), name="x")
    m = keras.Input((8,), dtype="bool", name="m")
    y = layers.TimeDistributed(layers.LSTM(2, name="lstm"), name="td")(x, mask=m)
    model = keras.Model([x, m], y)
    feed = {"x": np.random.default_rng(0).random((2, 8, 4, 3)).astype("float32")}
    feed["m"] = np.ones((2, 8), bool)
    feed["m"][0, 5:] = False
    crashed = _crashes(model, [feed["x"], feed["m"]])
    report = maskviz.inspect(model, data=feed)
    rules = _by_rule(report)
    inner = [c for c in report.trace.calls if c.parent == "td"]
    got = inner[0].received_mask[0] if inner and inner[0].received_mask else None
    if got is not None and got.rank < 2:
        f = next(f for f in rules["MV121"] if f.call_id == "td/lstm")
        assert "no time axis" in f.message and "`td` handed it" in f.message
        assert f.severity.value == ("error" if crashed else "warning")
    if crashed:
        crash = rules["MV112"][0]
        assert "per step by `td`" in crash.message or crash.call_id == "td"


def test_tensorflow_82316_masking_lstm_time_distributed_is_correct():
    """tensorflow/tensorflow#82316: Masking -> LSTM(return_sequences) ->
    TimeDistributed(Dense). When the installed Keras runs it, maskviz finds no error."""
    model = keras.Sequential(
        [
            keras.Input((8, 1), name="seq"),
            layers.Masking(-1.0),
            layers.LSTM(8, return_sequences=True),
            layers.TimeDistributed(layers.Dense(1)),
        ]
    )
    x = np.full((2, 8, 1), -1.0, "float32")
    x[0, :, 0] = np.arange(8) / 8
    x[1, :4, 0] = np.arange(4) / 4
    crashed = _crashes(model, x)
    report = maskviz.inspect(model)
    errors = [f for f in report.findings if f.severity.value == "error"]
    if crashed:
        assert any(f.rule == "MV112" for f in errors)
    else:
        assert not [f for f in errors if f.rule in ("MV112", "MV121", "MV122")], errors


class _Halve(layers.Layer):
    """Keeps every other step and (wrongly) passes the mask on unchanged."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        return x[:, ::2]


def test_mask_passed_on_across_a_time_change_names_where_it_stopped_fitting():
    t = keras.Input((8,), dtype="int32", name="tokens")
    e = layers.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    h = _Halve(name="halve")(e)
    y = layers.LSTM(3, name="lstm")(h)
    model = keras.Model(t, y)
    tokens = np.array([[1, 2, 3, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 0, 0]], "int32")
    crashed = _crashes(model, tokens)
    report = maskviz.inspect(model, data={"tokens": tokens})
    rules = _by_rule(report)
    assert rules["MV104"][0].call_id == "halve"
    # One root cause, one alignment finding: at the producer, not again at the LSTM.
    assert "MV121" not in rules
    if crashed:
        crash = rules["MV112"][0]
        assert crash.call_id == "lstm"
        assert "mask (2, 8) made by `embedding`" in crash.message
        assert "passed on by `halve`" in crash.message


def test_strided_conv1d_after_embedding_into_lstm():
    t = keras.Input((10,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    x = layers.Conv1D(4, 3, strides=2, name="conv")(x)
    y = layers.LSTM(3, name="lstm")(x)
    model = keras.Model(t, y)
    tokens = np.array([[1, 2, 3, 0, 0, 0, 0, 0, 0, 0], [4, 5, 6, 7, 8, 9, 1, 0, 0, 0]], "int32")
    crashed = _crashes(model, tokens)
    report = maskviz.inspect(model, data={"tokens": tokens})
    rules = _by_rule(report)
    conv = report.trace.call("conv")
    if crashed:
        assert "At this call:" in rules["MV112"][0].message
    elif conv.outputs[0].mask is None:
        # The conv dropped the mask: the LSTM reads padding (MV101 at the conv).
        assert rules["MV101"][0].call_id == "conv"
    else:
        assert rules["MV104"][0].call_id == "conv"
