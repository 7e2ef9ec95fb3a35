"""The models bundled in ``maskviz/samples/`` (built by ``sample_models/make_samples.py``):
one per mask bug class, plus two clean models.

Every model is tiny (vocabulary 20, 8 units) and every layer and input has an explicit
name, so the same Keras version always writes the same configs and weights.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from maskviz.samples.custom_layers import PaddingMask, ScaleShift
from models import register, seeded

VOCAB = 20
DIM = 8
UNITS = 8


def _tokens(name: str, length: int | None = None) -> keras.KerasTensor:
    return keras.Input(shape=(length,), dtype="int32", name=name)


def seq2seq_initial_state() -> keras.Model:
    """Encoder-decoder LSTM. The decoder LSTM is called with ``initial_state=[h, c]``:
    Keras fills ``mask`` only for a call with a single tensor argument, so the decoder
    never receives its own mask although its input carries one."""
    enc_tokens = _tokens("encoder_tokens")
    dec_tokens = _tokens("decoder_tokens")
    enc = layers.Embedding(VOCAB, DIM, mask_zero=True, name="encoder_embedding")(enc_tokens)
    _, h, c = layers.LSTM(UNITS, return_state=True, name="encoder_lstm")(enc)
    dec = layers.Embedding(VOCAB, DIM, mask_zero=True, name="decoder_embedding")(dec_tokens)
    dec = layers.LSTM(UNITS, return_sequences=True, name="decoder_lstm")(dec, initial_state=[h, c])
    out = layers.Dense(VOCAB, activation="softmax", name="next_token")(dec)
    return keras.Model([enc_tokens, dec_tokens], out, name="seq2seq_initial_state")


def conv1d_after_masking() -> keras.Model:
    """``Masking`` then ``Conv1D``: the convolution does not support masking, so the mask
    is dropped and the LSTM runs over the padded steps."""
    x_in = keras.Input(shape=(None, 6), name="features")
    x = layers.Masking(mask_value=0.0, name="masking")(x_in)
    x = layers.Conv1D(8, 3, padding="same", name="conv1d")(x)
    x = layers.LSTM(UNITS, name="lstm")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(x_in, out, name="conv1d_after_masking")


def flatten_after_embedding() -> keras.Model:
    """``Embedding(mask_zero=True)`` then ``Flatten``: the mask is dropped and the padded
    positions' embeddings feed the Dense layer."""
    tokens = _tokens("tokens", 10)
    x = layers.Embedding(VOCAB, 4, mask_zero=True, name="embedding")(tokens)
    x = layers.Flatten(name="flatten")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(tokens, out, name="flatten_after_embedding")


def masking_5d_convlstm() -> keras.Model:
    """``Masking`` on a 5-D input makes a 4-D mask ``(batch, time, 8, 8)``; ``ConvLSTM2D``
    expects ``(batch, time)``. The model builds, but crashes on data."""
    frames = keras.Input(shape=(None, 8, 8, 1), name="frames")
    x = layers.Masking(mask_value=0.0, name="masking")(frames)
    x = layers.ConvLSTM2D(4, 3, padding="valid", name="conv_lstm2d")(x)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(frames, out, name="masking_5d_convlstm")


def timedistributed_embedding() -> keras.Model:
    """``TimeDistributed(Embedding(mask_zero=True))`` over (sentences, words): the word
    mask made inside is not carried out, so the word-level LSTM sees padding words."""
    doc = keras.Input(shape=(None, 6), dtype="int32", name="document_tokens")
    x = layers.TimeDistributed(
        layers.Embedding(VOCAB, DIM, mask_zero=True, name="embedding"),
        name="time_distributed_embedding",
    )(doc)
    x = layers.TimeDistributed(layers.LSTM(UNITS, name="word_lstm"), name="time_distributed_lstm")(
        x
    )
    x = layers.LSTM(UNITS, name="sentence_lstm")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(doc, out, name="timedistributed_embedding")


def custom_layer_no_masking() -> keras.Model:
    """A custom elementwise layer without ``supports_masking`` between ``Embedding`` and
    ``LSTM``: it drops the mask."""
    tokens = _tokens("tokens")
    x = layers.Embedding(VOCAB, DIM, mask_zero=True, name="embedding")(tokens)
    x = ScaleShift(name="scale_shift")(x)
    x = layers.LSTM(UNITS, name="lstm")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(tokens, out, name="custom_layer_no_masking")


def explicit_mask_override() -> keras.Model:
    """The LSTM reads the second sequence but is called with ``mask=`` the *first*
    sequence's padding mask (``tokens_a != 0``), which differs from the mask its input
    carries. The mask comes from a (registered) ``PaddingMask`` layer call, so the explicit
    ``mask=`` is a node argument in the saved config and survives save and load."""
    tokens_a = _tokens("tokens_a", 8)
    tokens_b = _tokens("tokens_b", 8)
    mask_a = PaddingMask(name="padding_mask_a")(tokens_a)
    x_b = layers.Embedding(VOCAB, DIM, mask_zero=True, name="embedding_b")(tokens_b)
    x = layers.LSTM(UNITS, name="lstm")(x_b, mask=mask_a)
    out = layers.Dense(1, name="score")(x)
    return keras.Model([tokens_a, tokens_b], out, name="explicit_mask_override")


def clean_lstm() -> keras.Model:
    """``Embedding(mask_zero=True)`` -> ``LSTM`` -> ``Dense``: the mask reaches the LSTM."""
    tokens = _tokens("tokens")
    x = layers.Embedding(VOCAB, DIM, mask_zero=True, name="embedding")(tokens)
    x = layers.LSTM(UNITS, name="lstm")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(tokens, out, name="clean_lstm")


def clean_transformer() -> keras.Model:
    """A one-block Transformer encoder. Keras 3 ``MultiHeadAttention`` builds its attention
    mask from the query and value masks by itself; the mask flows through ``Add``,
    ``LayerNormalization`` and the Dense FFN into ``GlobalAveragePooling1D``, which uses it."""
    tokens = _tokens("tokens")
    x = layers.Embedding(VOCAB, DIM, mask_zero=True, name="embedding")(tokens)
    attn = layers.MultiHeadAttention(num_heads=2, key_dim=4, name="self_attention")(x, x)
    x = layers.Add(name="attention_residual")([x, attn])
    x = layers.LayerNormalization(name="attention_norm")(x)
    ffn = layers.Dense(16, activation="relu", name="ffn_in")(x)
    ffn = layers.Dense(DIM, name="ffn_out")(ffn)
    x = layers.Add(name="ffn_residual")([x, ffn])
    x = layers.LayerNormalization(name="ffn_norm")(x)
    x = layers.GlobalAveragePooling1D(name="mean_pool")(x)
    out = layers.Dense(1, name="score")(x)
    return keras.Model(tokens, out, name="clean_transformer")


BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "seq2seq_initial_state": seq2seq_initial_state,
    "conv1d_after_masking": conv1d_after_masking,
    "flatten_after_embedding": flatten_after_embedding,
    "masking_5d_convlstm": masking_5d_convlstm,
    "timedistributed_embedding": timedistributed_embedding,
    "custom_layer_no_masking": custom_layer_no_masking,
    "explicit_mask_override": explicit_mask_override,
    "clean_lstm": clean_lstm,
    "clean_transformer": clean_transformer,
}


for _name, _build in BUILDERS.items():
    register(
        "samples",
        _name,
        seeded(_build),
        tags=("bundled",),
        bug=None if _name.startswith("clean_") else (_build.__doc__ or "").split("\n")[0],
    )
