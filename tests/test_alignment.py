"""Correct models built with `keras.ops` between layers: no error-level finding, and
the alignment rules stay quiet. Each model's correctness is measured here: the
outputs of real rows do not move when only the padding changes."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

import maskviz
from maskviz.rules.queries import leading_fit, trailing_fit

T, D, VOCAB = 8, 16, 40


def _tokens() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.integers(1, VOCAB, size=(4, T)).astype("int32")
    x[0, 5:] = 0
    x[1, 2:] = 0
    return x


def _padding_invariant(model: keras.Model, x: np.ndarray) -> bool:
    """Truth: moving the padding id's embedding row leaves the outputs alone."""
    emb = next(lyr for lyr in model.layers if isinstance(lyr, layers.Embedding))
    w = emb.get_weights()
    y1 = model.predict(x, verbose=0)
    w2 = w[0].copy()
    w2[0] += 4.0
    emb.set_weights([w2])
    try:
        y2 = model.predict(x, verbose=0)
    finally:
        emb.set_weights(w)
    return bool(np.allclose(y1, y2, atol=1e-4))


def _transformer_classifier(mask_pooling: bool = True) -> keras.Model:
    """keras.io's transformer text classifier, Functional, with the padding masked by
    hand with `keras.ops`: an attention mask and a masked mean."""
    t = keras.Input((T,), dtype="int32", name="tokens")
    keep = ops.not_equal(t, 0)
    tok = layers.Embedding(VOCAB, D, name="tok_emb")(t)
    pos = layers.Embedding(T, D, name="pos_emb")(ops.arange(T))
    x = tok + pos
    att = ops.logical_and(keep[:, :, None], keep[:, None, :])
    a = layers.MultiHeadAttention(2, D // 2, name="mha")(x, x, attention_mask=att)
    x = layers.LayerNormalization()(x + a)
    f = layers.Dense(D, activation="relu")(x)
    x = layers.LayerNormalization()(x + f)
    if mask_pooling:
        w = ops.cast(keep, "float32")[:, :, None]
        pooled = ops.sum(x * w, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)
    else:
        pooled = ops.mean(x, axis=1)
    return keras.Model(t, layers.Dense(2, name="head")(pooled))


def test_transformer_classifier_with_ops_is_correct():
    model = _transformer_classifier()
    x = _tokens()
    assert _padding_invariant(model, x)
    report = maskviz.inspect(model, data={"tokens": x})
    kinds = [c.kind for c in report.trace.calls]
    assert kinds.count("op") >= 8
    errors = [f for f in report.findings if f.severity.value == "error"]
    assert not errors, errors
    assert not {"MV120", "MV121", "MV122"} & {f.rule for f in report.findings}


def test_transformer_classifier_unmasked_pooling_leaks_at_the_op():
    model = _transformer_classifier(mask_pooling=False)
    x = _tokens()
    assert not _padding_invariant(model, x)
    report = maskviz.inspect(model, data={"tokens": x})
    mean = next(c for c in report.trace.calls if c.kind == "op" and c.class_name == "Mean")
    # Any leak the oracle reports here sits on an op call, not only on the head.
    assert report.trace.values[mean.id][0] is not None


def test_shape_helpers():
    assert leading_fit((2, 6), (2, 6, 8)) and not trailing_fit((2, 6), (2, 6, 8))
    assert trailing_fit((6, 8), (2, 6, 8)) and not leading_fit((6, 8), (2, 6, 8))
    assert leading_fit((2, 1, 6), (2, 4, 6))
    assert not leading_fit((2, 6, 8, 1), (2, 6, 8))
