"""The models of the leak-oracle tests (tests/test_oracle.py).

Also the models of the behaviour-rule tests (tests/test_rules_behaviour.py). The tests
build them after one `keras.utils.set_random_seed(...)`, in the order they ask for
them; the registry's builders seed each one themselves.
"""

from __future__ import annotations

import keras

from models import register, seeded, zoo

L = keras.layers


def _conv_chain(front: str):
    """A mask source, then Conv1D (drops the mask) and two Dense layers."""
    if front == "masking":
        i = keras.Input((8, 3), name="features")
        x = L.Masking(0.0, name="masking")(i)
    else:
        i = keras.Input((8,), dtype="int32", name="tokens")
        x = L.Embedding(30, 3, mask_zero=True, name="embedding")(i)
    x = L.Conv1D(4, 3, padding="same", name="conv1d")(x)
    x = L.Dense(4, name="dense_a")(x)
    return keras.Model(i, L.Dense(2, name="dense_b")(x), name=f"conv_after_{front}")


def conv_after_masking():
    return _conv_chain("masking")


def conv_after_embedding():
    return _conv_chain("embedding")


def flatten_after_embedding():
    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True, name="embedding")(i)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(i, L.Dense(2, name="head")(x), name="flatten_after_embedding")


def seq2seq(fixed: bool):
    """The zoo's encoder-decoder, with logits (no softmax)."""
    return zoo.seq2seq(fixed, activation=None)


def max_pooling_after_embedding():
    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True, name="embedding")(i)
    x = L.GlobalMaxPooling1D(name="gmp")(x)
    return keras.Model(i, L.Dense(2, name="head")(x), name="max_pooling_after_embedding")


# The oracle's clean recurrent models are the zoo's, under the names its tests use.
embedding_lstm_dense = zoo.clean_lstm
masking_gru_time_distributed = zoo.timedistributed_dense
bilstm_tagger = zoo.bidirectional_tagger


def transformer_block():
    """Self-attention with an explicit padding mask, masked average pooling."""
    tok = keras.Input((None,), dtype="int32", name="token_ids")
    pm = keras.Input((None,), dtype="bool", name="padding_mask")
    x = L.Embedding(30, 16)(tok)
    a = L.MultiHeadAttention(2, 8)(x, x, attention_mask=keras.ops.expand_dims(pm, 1))
    x = L.LayerNormalization()(L.Add()([x, a]))
    f = L.Dense(16)(L.Dense(32, activation="relu")(x))
    x = L.LayerNormalization()(L.Add()([x, f]))
    x = L.GlobalAveragePooling1D()(x, mask=pm)
    return keras.Model([tok, pm], L.Dense(2)(x), name="transformer_block")


def bert(num_layers: int = 2, hidden_dim: int = 16):
    """A tiny keras-hub BertBackbone (random weights)."""
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        max_sequence_length=16,
    )


def gap_after_embedding():
    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True, name="embedding")(i)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(i, L.Dense(2, name="head")(x), name="gap_after_embedding")


class AttentionPooling(keras.layers.Layer):
    """Softmax-weighted pooling over kept steps: fine for any sample with a kept
    step; for an empty one the weights are uniform over the padding."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = True

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], 1), initializer="glorot_uniform")

    def call(self, x, mask=None):
        scores = keras.ops.matmul(x, self.w)[..., 0]
        if mask is not None:
            scores = keras.ops.where(mask, scores, -1e9)
        weights = keras.ops.softmax(scores, axis=1)
        return keras.ops.sum(x * weights[..., None], axis=1)

    def compute_mask(self, x, mask=None):
        return None


def attention_pooling_after_embedding():
    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True, name="embedding")(i)
    x = AttentionPooling(name="attention_pooling")(x)
    return keras.Model(i, L.Dense(2, name="head")(x), name="attention_pooling")


# ------------------------------------------------------- behaviour rules (MV106-MV109)


def max_pooling_after_embedding_fixed():
    """`max_pooling_after_embedding` with maskviz's mask-aware max pooling."""
    from maskviz.layers import MaskedGlobalMaxPooling1D

    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True, name="embedding")(i)
    x = MaskedGlobalMaxPooling1D(name="gmp")(x)
    return keras.Model(i, L.Dense(2, name="head")(x), name="max_pooling_after_embedding_fixed")


def lstm_after_embedding():
    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    return keras.Model(i, L.Dense(2, name="head")(L.LSTM(4)(x)), name="lstm_after_embedding")


def bilstm_tags():
    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    return keras.Model(i, L.Dense(3, name="tags")(x), name="bilstm_tags")


def halved_tags():
    """Keeps every second step but passes the mask on unchanged: the tags' mask cannot
    match them."""
    from models.zoo import Downsample

    i = keras.Input((8,), dtype="int32", name="tokens")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    return keras.Model(i, L.Dense(3, name="tags")(Downsample(name="halve")(x)), name="halved")


def masking_lstm():
    i = keras.Input((8, 3), name="features")
    x = L.Masking(0.0, name="masking")(i)
    return keras.Model(i, L.Dense(1)(L.LSTM(4)(x)), name="masking_lstm")


_BUGS = {
    "conv_after_masking": "Conv1D drops the mask",
    "flatten_after_embedding": "Flatten reads padding",
    "max_pooling_after_embedding": "GlobalMaxPooling1D reads padding",
    "conv_after_embedding": "Conv1D drops the mask",
    "halved_tags": "mask not resampled with its tensor",
}
for _name in (
    "conv_after_masking",
    "flatten_after_embedding",
    "max_pooling_after_embedding",
    "transformer_block",
    "bert",
    "conv_after_embedding",
    "gap_after_embedding",
    "attention_pooling_after_embedding",
    "max_pooling_after_embedding_fixed",
    "lstm_after_embedding",
    "bilstm_tags",
    "halved_tags",
    "masking_lstm",
):
    register(
        "oracle",
        _name,
        seeded(globals()[_name], 1234),
        bug=_BUGS.get(_name),
        twin="max_pooling_after_embedding_fixed"
        if _name == "max_pooling_after_embedding"
        else None,
    )
register(
    "oracle",
    "seq2seq",
    seeded(lambda: seq2seq(False), 1234),
    bug="initial_state drops the mask",
    twin="seq2seq_fixed",
)
register("oracle", "seq2seq_fixed", seeded(lambda: seq2seq(True), 1234))
