"""The side invariance on models with an unpadded input beside a padded one, and the
layers of the `pack-real` repair. Truth is computed here by truncation."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import maskviz  # noqa: E402
from maskviz.fixes.packing import PackSteps, UnpackSteps  # noqa: E402

L = keras.layers
T = 8


def _tokens() -> np.ndarray:
    rng = np.random.default_rng(3)
    t = rng.integers(1, 20, size=(4, T)).astype("int32")
    t[1, 5:] = 0  # right-padded
    t[2, :3] = 0  # left-padded
    return t


def test_features_beside_tokens_move_with_them():
    """Per-step features without padding of their own belong to the same steps as the
    tokens: a correct model (both inputs of the merge carry the tokens' mask, the
    LSTM skips padded steps) is padding-invariant by truncation, and maskviz reports no MV113."""
    keras.utils.set_random_seed(0)
    t_in = keras.Input((None,), dtype="int32", name="tokens")
    f_in = keras.Input((None, 2), name="feats")
    emb = L.Embedding(20, 4, mask_zero=True)(t_in)
    feats = maskviz.layers.ApplyMask()(f_in, mask=keras.ops.not_equal(t_in, 0))
    x = L.Concatenate()([emb, feats])
    model = keras.Model([t_in, f_in], L.Dense(1)(L.LSTM(3)(x)))
    tokens = _tokens()
    feats = np.random.default_rng(4).standard_normal((4, T, 2)).astype("float32")
    base = keras.ops.convert_to_numpy(model([tokens, feats]))
    for r in range(4):  # truth: each padded row cut to its real steps (both inputs)
        keep = tokens[r] != 0
        if keep.all():
            continue
        cut = model([tokens[r : r + 1, keep], feats[r : r + 1, keep]])
        np.testing.assert_allclose(
            base[r], keras.ops.convert_to_numpy(cut)[0], rtol=1e-4, atol=1e-5
        )
    report = maskviz.inspect(model, data={"tokens": tokens, "feats": feats})
    assert report.oracle.invariance.checked
    assert not [f for f in report.findings if f.rule == "MV113"], report.to_text()


def test_pack_then_unpack_restores_the_real_steps():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    mask = np.ones((4, 6), bool)
    mask[1, 4:] = False  # right-padded
    mask[2, :2] = False  # left-padded
    mask[3, [1, 4]] = False  # gaps
    packed = keras.ops.convert_to_numpy(PackSteps()(x, mask=mask))
    for r in range(4):
        n = int(mask[r].sum())
        np.testing.assert_array_equal(packed[r, :n], x[r, mask[r]])
    np.testing.assert_array_equal(packed[0], x[0])  # unpadded: unchanged
    np.testing.assert_array_equal(packed[1], x[1])  # right-padded: unchanged
    back = keras.ops.convert_to_numpy(UnpackSteps()(packed, mask=mask))
    np.testing.assert_array_equal(back, x)
