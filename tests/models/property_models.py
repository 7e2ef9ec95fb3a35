"""Random small sequence models and their truncation truth (for the property test
of the padding oracle). Nothing here imports maskviz: the truth is independent."""

from __future__ import annotations

import keras
import numpy as np

from models import register

L = keras.layers
UNITS = 5
VOCAB = 30

FRONTS = ("embedding-mask", "embedding-no-mask", "masking")
BLOCKS = (
    "lstm-seq",
    "gru-seq",
    "bidirectional-lstm-seq",
    "conv-same",
    "conv-causal",
    "conv-valid",
    "max-pool",
    "dense",
    "conv-1x1",
    "attention",
    "residual",
    "layer-norm",
)
SHRINKING = ("conv-valid", "max-pool")
HEADS = ("average-pool", "max-pool", "lstm-last", "gru-last", "per-step-dense")


def build(front: str, blocks: list[str], head: str, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    if front == "masking":
        inp = keras.Input((None, 3), name="x")
        x = L.Masking(mask_value=0.0)(inp)
    else:
        inp = keras.Input((None,), dtype="int32", name="x")
        x = L.Embedding(VOCAB, UNITS, mask_zero=front == "embedding-mask")(inp)
    for b in blocks:
        x = _block(b, x)
    if head == "average-pool":
        y = L.GlobalAveragePooling1D()(x)
    elif head == "max-pool":
        y = L.GlobalMaxPooling1D()(x)
    elif head == "lstm-last":
        y = L.LSTM(UNITS)(x)
    elif head == "gru-last":
        y = L.GRU(UNITS)(x)
    else:
        y = x
    return keras.Model(inp, L.Dense(2)(y))


def _block(b: str, x):
    if b == "lstm-seq":
        return L.LSTM(UNITS, return_sequences=True)(x)
    if b == "gru-seq":
        return L.GRU(UNITS, return_sequences=True)(x)
    if b == "bidirectional-lstm-seq":
        return L.Bidirectional(L.LSTM(3, return_sequences=True))(x)
    if b == "conv-same":
        return L.Conv1D(UNITS, 3, padding="same")(x)
    if b == "conv-causal":
        return L.Conv1D(UNITS, 2, padding="causal")(x)
    if b == "conv-valid":
        return L.Conv1D(UNITS, 2, padding="valid")(x)
    if b == "max-pool":
        return L.MaxPooling1D(2)(x)
    if b == "dense":
        return L.Dense(UNITS, activation="tanh")(x)
    if b == "conv-1x1":
        return L.Conv1D(UNITS, 1)(x)
    if b == "attention":
        return L.MultiHeadAttention(num_heads=2, key_dim=3)(x, x)
    if b == "residual":
        return L.Add()([x, L.Dense(x.shape[-1])(x)])
    if b == "layer-norm":
        return L.LayerNormalization()(x)
    raise ValueError(b)


def data(front: str, time: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four rows: full, short (right), half (left-padded), three quarters (right)."""
    rng = np.random.default_rng(seed)
    lengths = [time, max(3, time // 4), time // 2, (3 * time) // 4]
    keep = np.zeros((4, time), bool)
    for r, n in enumerate(lengths):
        if r == 2:
            keep[r, time - n :] = True
        else:
            keep[r, :n] = True
    if front == "masking":
        x = rng.standard_normal((4, time, 3)).astype("float32")
        x = np.where(keep[..., None], x, 0.0).astype("float32")
    else:
        x = np.where(keep, rng.integers(1, VOCAB, (4, time)), 0).astype("int32")
    return x, keep


def truncation_truth(model: keras.Model, x: np.ndarray, keep: np.ndarray) -> bool:
    """Does any padded row's output differ from the same row truncated to its real
    steps? Outputs with the input's time axis are compared at the real steps; outputs
    without a time axis whole; resampled time axes on the steps the truncated row
    produced, for rows padded on the right."""
    full = keras.ops.convert_to_numpy(model(x, training=False))
    t = x.shape[1]
    for r in range(len(x)):
        idx = np.nonzero(keep[r])[0]
        if len(idx) in (0, t):
            continue
        try:
            short = keras.ops.convert_to_numpy(model(x[r : r + 1, idx], training=False))[0]
        except Exception:
            continue  # too short for this model
        a = full[r]
        if a.shape == short.shape:
            b, c = a, short
        elif a.ndim >= 1 and a.shape[0] == t and short.shape[0] == len(idx):
            b, c = a[idx], short
        elif a.ndim >= 1 and idx[0] == 0 and short.shape[0] <= a.shape[0]:
            b, c = a[: short.shape[0]], short
        else:
            continue
        diff = np.abs(b.astype(np.float64) - c)
        scale = np.abs(b).max(initial=0.0)
        if diff.max(initial=0.0) > 1e-6 + 1e-3 * scale:
            return True
    return False


register(
    "property_models",
    "family",
    build,  # build(front, blocks, head, seed): the family the property test draws from
    tags=("generated",),
    truth=truncation_truth,
)
