"""Bug models for `maskviz fix`: one model per bug class, each a small version of a
masking bug users report (Keras GitHub issues are cited where the class comes from one).

Every builder returns `(model, data)`: `data` is a dict of padded sample arrays (rows
right-padded and left-padded, plus one row with no padding), and `pad` says how the
padding is recognised in them (token id 0, or an all-`0.0` step). The tests compute
each model's truth from `data` themselves (value perturbation of padded steps), never
from maskviz.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from models import register

L = keras.layers
T = 8  # time steps of every sample
B = 4  # rows: right-padded, left-padded, right-padded (long), unpadded


def _lengths() -> list[tuple[int, str]]:
    return [(5, "right"), (4, "left"), (7, "right"), (T, "right")]


def tokens(vocab: int = 20, time: int = T, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(B, time)).astype("int32")
    for i, (n, side) in enumerate(_lengths()):
        n = min(n, time)
        if side == "right":
            x[i, n:] = 0
        else:
            x[i, : time - n] = 0
    return x


def frames(feat: tuple[int, ...] = (3,), time: int = T, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, time, *feat)).astype("float32") + 2.0
    for i, (n, side) in enumerate(_lengths()):
        if side == "right":
            x[i, n:] = 0.0
        else:
            x[i, : time - n] = 0.0
    return x


@keras.saving.register_keras_serializable(package="maskviz_zoo_bugs")
class ScaleShift(keras.layers.Layer):
    """A per-step custom layer that forgot `supports_masking = True`."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale + 0.5


@keras.saving.register_keras_serializable(package="maskviz_zoo_bugs")
class MyConv1D(keras.layers.Conv1D):
    """A user's subclass of Conv1D (e.g. with a different default)."""


@keras.saving.register_keras_serializable(package="maskviz_zoo_bugs")
class TemporalMix(keras.layers.Layer):
    """A custom layer that mixes neighbouring steps and keeps the time axis."""

    def call(self, x):
        prev = ops.concatenate([ops.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        return x + 0.5 * prev


class SubclassedTagger(keras.Model):
    """A subclassed model whose second RNN is called with initial_state."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emb = L.Embedding(20, 6, mask_zero=True)
        self.encoder = L.GRU(5, return_state=True)
        self.decoder = L.GRU(5)
        self.head = L.Dense(1)

    def call(self, tokens):
        x = self.emb(tokens)
        _, h = self.encoder(x)
        y = self.decoder(x, initial_state=[h])
        return self.head(y)


# ----------------------------------------------------------------- bug models


def conv1d_after_masking():
    i = keras.Input((None, 3), name="frames")
    x = L.Masking(0.0, name="masking")(i)
    x = L.Conv1D(4, 3, padding="same", name="conv")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"frames": frames()}


def conv1d_subclass_after_masking():
    i = keras.Input((None, 3), name="frames")
    x = L.Masking(0.0, name="masking")(i)
    x = MyConv1D(4, 3, padding="same", name="myconv")(x)
    x = L.GRU(4, name="gru")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"frames": frames()}


def conv1d_then_global_average():
    """keras-team/keras#16280-style: GlobalAveragePooling1D averages padding in when a
    Conv1D before it drops the Embedding's mask."""
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 6, mask_zero=True, name="emb")(i)
    x = L.Conv1D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def flatten_dense_after_embedding():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def lstm_initial_state():
    enc = keras.Input((T,), dtype="int32", name="enc")
    dec = keras.Input((T,), dtype="int32", name="dec")
    x = L.Embedding(20, 6, mask_zero=True, name="enc_emb")(enc)
    _, h, c = L.LSTM(5, return_state=True, name="encoder")(x)
    y = L.Embedding(20, 6, mask_zero=True, name="dec_emb")(dec)
    y = L.LSTM(5, name="decoder")(y, initial_state=[h, c])
    model = keras.Model([enc, dec], L.Dense(1, name="head")(y))
    return model, {"enc": tokens(seed=1), "dec": tokens(seed=2)}


def bidirectional_initial_state():
    t = keras.Input((T,), dtype="int32", name="tokens")
    h = keras.Input((3,), name="state")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(t)
    y = L.Bidirectional(L.GRU(3), name="bi")(x, initial_state=[h, h])
    model = keras.Model([t, h], L.Dense(1, name="head")(y))
    rng = np.random.default_rng(3)
    return model, {"tokens": tokens(), "state": rng.standard_normal((B, 3)).astype("float32")}


def timedistributed_embedding():
    i = keras.Input((T, 5), dtype="int32", name="words")
    x = L.TimeDistributed(L.Embedding(20, 4, mask_zero=True), name="td_emb")(i)
    x = L.TimeDistributed(L.GlobalAveragePooling1D(), name="td_pool")(x)
    x = L.LSTM(4, name="lstm")(x)
    words = np.stack([tokens(time=5, seed=s) for s in range(T)], axis=1)
    words[:, :, :2] = np.maximum(words[:, :, :2], 1)  # every word has characters
    for r, (n, side) in enumerate(_lengths()):  # whole padded words
        if side == "right":
            words[r, n:] = 0
        else:
            words[r, : T - n] = 0
    return keras.Model(i, L.Dense(1, name="head")(x)), {"words": words}


def ops_mean_over_time():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 6, mask_zero=True, name="emb")(i)
    x = ops.mean(x, axis=1)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def ops_max_over_time():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 6, mask_zero=True, name="emb")(i)
    x = L.Dense(6, name="proj")(x)
    x = ops.max(x, axis=1)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def concatenate_masked_unmasked():
    t = keras.Input((T,), dtype="int32", name="tokens")
    f = keras.Input((T, 2), name="feats")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(t)
    x = L.Concatenate(axis=-1, name="concat")([x, f])
    x = L.LSTM(4, name="lstm")(x)
    rng = np.random.default_rng(4)
    model = keras.Model([t, f], L.Dense(1, name="head")(x))
    return model, {"tokens": tokens(), "feats": rng.standard_normal((B, T, 2)).astype("float32")}


def add_positional_op():
    t = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(t)
    pos = L.Embedding(T, 4, name="pos_emb")(ops.arange(T))
    x = x + pos
    x = L.GRU(4, name="gru")(x)
    return keras.Model(t, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def add_masked_unmasked():
    t = keras.Input((T,), dtype="int32", name="tokens")
    f = keras.Input((T, 4), name="feats")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(t)
    x = L.Add(name="add")([x, f])
    x = L.GRU(4, name="gru")(x)
    rng = np.random.default_rng(5)
    model = keras.Model([t, f], L.Dense(1, name="head")(x))
    return model, {"tokens": tokens(), "feats": rng.standard_normal((B, T, 4)).astype("float32")}


def custom_layer_no_masking():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = ScaleShift(name="scale_shift")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def custom_mixing_layer():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = TemporalMix(name="temporal_mix")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def reshape_drops_time_mask():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 8, mask_zero=True, name="emb")(i)
    x = L.Reshape((T, 2, 4), name="split_heads")(x)
    x = L.Reshape((T, 8), name="merge_heads")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def global_max_pooling():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 6, mask_zero=True, name="emb")(i)
    x = L.GlobalMaxPooling1D(name="gmp")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def max_pooling_then_lstm():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 3, mask_zero=True, name="emb")(i)
    x = L.MaxPooling1D(2, strides=1, padding="same", name="pool")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def attention_without_mask():
    i = keras.Input((T,), dtype="int32", name="tokens")
    emb = L.Embedding(20, 4, mask_zero=True, name="emb")
    x = emb(i)
    q = L.Dense(4, name="q")(x)
    x = L.Attention(name="attention")([q, x], mask=[None, None])
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def mha_without_attention_mask():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = L.Conv1D(4, 1, name="proj")(x)  # per-step, but drops the mask
    x = L.MultiHeadAttention(2, 2, name="mha")(x, x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def dense_sum_over_padded_steps():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = L.Dense(1, name="score")(x)
    x = ops.sum(x, axis=1)
    return keras.Model(i, x), {"tokens": tokens()}


def cropping_then_lstm():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 3, mask_zero=True, name="emb")(i)
    x = L.Cropping1D((1, 1), name="crop")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def dot_similarity():
    a = keras.Input((T,), dtype="int32", name="a")
    b = keras.Input((T,), dtype="int32", name="b")
    emb = L.Embedding(20, 4, mask_zero=True, name="emb")
    x, y = emb(a), emb(b)
    x = L.GlobalMaxPooling1D(name="pool_a")(x)
    y = L.GlobalMaxPooling1D(name="pool_b")(y)
    s = L.Dot(axes=1, name="dot")([x, y])
    return keras.Model([a, b], s), {"a": tokens(seed=6), "b": tokens(seed=7)}


def average_pooling_then_gru():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = L.AveragePooling1D(3, strides=1, padding="same", name="pool")(x)
    x = L.GRU(4, name="gru")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def subclassed_rnn_initial_state():
    model = SubclassedTagger(name="subclassed_tagger")
    x = tokens(seed=8)
    model(x)
    return model, {"tokens": x}


@keras.saving.register_keras_serializable(package="maskviz_zoo_bugs")
class Reverse(keras.layers.Layer):
    """Reverses the time axis (and, like any custom layer, drops the mask)."""

    def call(self, x):
        return ops.flip(x, axis=1)


@keras.saving.register_keras_serializable(package="maskviz_zoo_bugs")
class ReverseScale(keras.layers.Layer):
    """Reverses the time axis and scales the features (a layer with weights)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return ops.flip(x, axis=1) * self.scale


def reversed_time_weighted_layer():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = ReverseScale(name="reverse_scale")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


def reversed_time_custom_layer():
    i = keras.Input((T,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True, name="emb")(i)
    x = Reverse(name="reverse")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x)), {"tokens": tokens()}


# Every bug class, in the order the tests run them.
BUGS = (
    "conv1d_after_masking",
    "conv1d_subclass_after_masking",
    "conv1d_then_global_average",
    "flatten_dense_after_embedding",
    "lstm_initial_state",
    "bidirectional_initial_state",
    "timedistributed_embedding",
    "ops_mean_over_time",
    "ops_max_over_time",
    "concatenate_masked_unmasked",
    "add_positional_op",
    "add_masked_unmasked",
    "custom_layer_no_masking",
    "custom_mixing_layer",
    "reshape_drops_time_mask",
    "global_max_pooling",
    "max_pooling_then_lstm",
    "attention_without_mask",
    "mha_without_attention_mask",
    "dense_sum_over_padded_steps",
    "cropping_then_lstm",
    "dot_similarity",
    "average_pooling_then_gru",
    "reversed_time_custom_layer",
    "reversed_time_weighted_layer",
    "subclassed_rnn_initial_state",
)


def build(name: str):
    keras.utils.set_random_seed(0)
    return globals()[name]()


for _name in BUGS:
    register(
        "zoo_bugs",
        _name,
        lambda n=_name: build(n),
        tags=("with-data",),
        bug=_name,
        source=(globals()[_name].__doc__ or "").split("\n")[0] or None,
    )
