"""Saves small tf.keras 2 models, one per masked layer type, for `maskviz.legacy`'s tests
and for `scripts/`: run under `tf_keras` (`python tests/keras2_models.py OUT_DIR`).

It imports `tf_keras` only, never Keras 3: it runs in a subprocess."""

from __future__ import annotations

import json
import os
import sys


def build(tfk):  # noqa: C901 - one small model per layer type
    L = tfk.layers
    models = {}

    t = tfk.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    x = L.LSTM(3, return_sequences=True, name="lstm")(x)
    models["embedding_lstm"] = tfk.Model(t, L.Dense(2, name="dense")(x))

    f = tfk.Input((None, 3), name="features")
    x = L.Masking(0.0, name="masking")(f)
    x = L.GRU(3, name="gru")(x)
    models["masking_gru"] = tfk.Model(f, L.Dense(1, name="dense")(x))

    t = tfk.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    x = L.SimpleRNN(3, name="simple_rnn")(x)
    models["simple_rnn"] = tfk.Model(t, L.Dense(1, name="dense")(x))

    t = tfk.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bidirectional")(x)
    models["bidirectional"] = tfk.Model(t, L.Dense(2, name="dense")(x))

    f = tfk.Input((None, 3), name="features")
    x = L.Masking(0.0, name="masking")(f)
    x = L.TimeDistributed(L.Dense(4), name="time_distributed")(x)
    x = L.LSTM(2, name="lstm")(x)
    models["time_distributed"] = tfk.Model(f, x)

    v = tfk.Input((4, 6, 6, 1), name="frames")
    x = L.ConvLSTM2D(2, 3, padding="same", name="conv_lstm2d")(v)
    models["conv_lstm2d"] = tfk.Model(v, L.Flatten(name="flatten")(x))

    t = tfk.Input((10,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    x = L.Conv1D(4, 3, padding="same", name="conv1d")(x)
    x = L.MaxPooling1D(2, name="max_pooling1d")(x)
    x = L.GlobalAveragePooling1D(name="global_average_pooling1d")(x)
    models["conv1d_pooling"] = tfk.Model(t, L.Dense(1, name="dense")(x))

    t = tfk.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="embedding")(t)
    a = L.Attention(name="attention")([x, x])
    m = L.MultiHeadAttention(2, 2, name="multi_head_attention")(x, x)
    x = L.Concatenate(name="concatenate")([a, m])
    x = L.GlobalMaxPooling1D(name="global_max_pooling1d")(x)
    models["attention"] = tfk.Model(t, L.Dense(1, name="dense")(x))

    models["sequential_gru"] = tfk.Sequential(
        [
            tfk.Input((None,), dtype="int32", name="tokens"),
            L.Embedding(20, 4, mask_zero=True, name="embedding"),
            L.GRU(3, return_sequences=True, name="gru"),
            L.GRU(3, name="gru_2"),
            L.Dense(1, name="dense"),
        ],
        name="sequential_gru",
    )

    # Encoder-decoder: the decoder gets `initial_state=` (tf.keras 2 still passes it the
    # sequence's mask; Keras 3 does not).
    enc = tfk.Input((None,), dtype="int32", name="encoder_tokens")
    dec = tfk.Input((None,), dtype="int32", name="decoder_tokens")
    e = L.Embedding(20, 4, mask_zero=True, name="encoder_embedding")(enc)
    _, h, c = L.LSTM(4, return_state=True, name="encoder_lstm")(e)
    d = L.Embedding(20, 4, mask_zero=True, name="decoder_embedding")(dec)
    d = L.LSTM(4, return_sequences=True, name="decoder_lstm")(d, initial_state=[h, c])
    models["seq2seq_initial_state"] = tfk.Model([enc, dec], L.Dense(20, name="next_token")(d))
    return models


def _inputs(model, np):
    """Seeded inputs with padding: tokens with trailing zeros, float steps of zeros."""
    rng = np.random.default_rng(0)
    out = []
    for t in model.inputs:
        shape = [
            2 if d is None and i == 0 else (5 if d is None else d) for i, d in enumerate(t.shape)
        ]
        if "int" in t.dtype.name:
            x = rng.integers(1, 20, size=shape).astype("int32")
            x[1, shape[1] // 2 :] = 0
        else:
            x = rng.standard_normal(shape).astype("float32")
            x[1, shape[1] // 2 :] = 0.0
        out.append(x)
    return out


def main(out_dir: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tf_keras as tfk

    tfk.utils.set_random_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for name, model in build(tfk).items():
        paths = {}
        for ext in ("h5", "keras"):
            path = os.path.join(out_dir, f"{name}.{ext}")
            model.save(path)
            paths[ext] = path
        xs = _inputs(model, np)
        y = model(xs if len(xs) > 1 else xs[0], training=False)
        paths["io"] = os.path.join(out_dir, f"{name}.npz")
        np.savez(paths["io"], y=np.asarray(y), **{f"x{i}": x for i, x in enumerate(xs)})
        written[name] = paths
    print(json.dumps({"tf_keras": tfk.__version__, "models": written}))


if __name__ == "__main__":
    main(sys.argv[1])
