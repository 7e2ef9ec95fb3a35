"""The models drawn into tests/goldens (test_render, test_graph, test_notebook).

Each builder seeds Keras itself, so a model is the same whoever builds it first.
"""

from __future__ import annotations

import keras

from models import register


def build_seq2seq(*, pass_mask: bool = False) -> keras.Model:
    """Encoder/decoder; the decoder LSTM is called with `initial_state=` (MV102)."""
    keras.utils.set_random_seed(0)
    enc_tokens = keras.Input((None,), dtype="int32", name="enc_tokens")
    dec_tokens = keras.Input((None,), dtype="int32", name="dec_tokens")
    enc_emb = keras.layers.Embedding(50, 8, mask_zero=True, name="enc_emb")(enc_tokens)
    _, h, c = keras.layers.LSTM(8, return_state=True, name="encoder")(enc_emb)
    dec_emb_layer = keras.layers.Embedding(50, 8, mask_zero=True, name="dec_emb")
    dec_emb = dec_emb_layer(dec_tokens)
    decoder = keras.layers.LSTM(8, return_sequences=True, name="decoder")
    if pass_mask:
        mask = dec_emb_layer.compute_mask(dec_tokens)
        dec = decoder(dec_emb, mask=mask, initial_state=[h, c])
    else:
        dec = decoder(dec_emb, initial_state=[h, c])
    out = keras.layers.Dense(50, name="logits")(dec)
    return keras.Model([enc_tokens, dec_tokens], out, name="seq2seq")


def build_nested() -> keras.Model:
    """A functional block (Dense + LayerNormalization) inside a model."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((None, 8), name="block_in")
    x = keras.layers.Dense(8, name="proj")(inner_in)
    x = keras.layers.LayerNormalization(name="norm")(x)
    block = keras.Model(inner_in, x, name="block")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(20, 8, mask_zero=True, name="emb")(tokens)
    y = keras.layers.GlobalAveragePooling1D(name="pool")(block(e))
    return keras.Model(tokens, y, name="nested")


def build_shared() -> keras.Model:
    """One Embedding and one GRU, each called on two inputs."""
    keras.utils.set_random_seed(0)
    a = keras.Input((None,), dtype="int32", name="a")
    b = keras.Input((None,), dtype="int32", name="b")
    emb = keras.layers.Embedding(20, 8, mask_zero=True, name="shared_emb")
    gru = keras.layers.GRU(8, name="shared_gru")
    h = keras.layers.Concatenate(name="concat")([gru(emb(a)), gru(emb(b))])
    return keras.Model([a, b], keras.layers.Dense(1, name="score")(h), name="shared")


def build_time_distributed() -> keras.Model:
    """TimeDistributed(Embedding(mask_zero=True)): the inner mask is lost."""
    keras.utils.set_random_seed(0)
    docs = keras.Input((3, None), dtype="int32", name="docs")
    emb = keras.layers.Embedding(20, 8, mask_zero=True, name="emb")
    x = keras.layers.TimeDistributed(emb, name="td_emb")(docs)
    pool = keras.layers.GlobalAveragePooling1D(name="gap")
    x = keras.layers.TimeDistributed(pool, name="td_pool")(x)
    x = keras.layers.LSTM(4, name="lstm")(x)
    return keras.Model(docs, x, name="time_distributed")


def build_conv_drop() -> keras.Model:
    """A Conv1D between an Embedding and an LSTM drops the mask (MV101)."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 8, mask_zero=True, name="emb")(tokens)
    x = keras.layers.Conv1D(8, 3, padding="same", name="conv")(x)
    x = keras.layers.LSTM(4, name="lstm")(x)
    return keras.Model(tokens, x, name="conv_drop")


def build_video() -> keras.Model:
    """Masking on 5-D frames makes a 4-D mask that ConvLSTM2D cannot use (MV103)."""
    keras.utils.set_random_seed(0)
    frames = keras.Input((None, 6, 6, 2), name="frames")
    x = keras.layers.Masking(name="masking")(frames)
    y = keras.layers.ConvLSTM2D(3, 3, name="conv_lstm")(x)
    return keras.Model(frames, y, name="video")


BUILDERS = {
    "seq2seq": build_seq2seq,
    "nested": build_nested,
    "shared": build_shared,
    "time_distributed": build_time_distributed,
    "conv_drop": build_conv_drop,
    "video": build_video,
}


def build_seq2seq_fixed() -> keras.Model:
    """`build_seq2seq` with the decoder given its mask: the true twin."""
    return build_seq2seq(pass_mask=True)


for _name, _build in BUILDERS.items():
    register(
        "render",
        _name,
        _build,
        tags=("golden",),
        bug=None if _name in ("nested", "shared") else (_build.__doc__ or "").split("\n")[0],
        twin="seq2seq_fixed" if _name == "seq2seq" else None,
    )
register("render", "seq2seq_fixed", build_seq2seq_fixed)
