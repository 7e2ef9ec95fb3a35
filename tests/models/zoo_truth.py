"""Models with their padding truth measured, not assumed (issue 10).

Real architectures from keras.io examples and keras-hub, tiny and with random
weights, some correctly masked and some not. Each entry builds the model and a
padded batch; `truth()` measures, without maskviz, whether the outputs at real
positions depend on the padding: each padded row against the same row truncated to
its real steps (other inputs truncated alike) and, for models with an explicit mask
input, against the same row with other token ids at its padded positions. Loss
entries also measure whether the loss changes when only the targets at padded
steps change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from models import register

L = keras.layers
ops = keras.ops
T = 10
VOCAB = 40


@dataclass
class Entry:
    model: keras.Model
    x: dict[str, np.ndarray]
    keep: np.ndarray  # (batch, time) real steps of the sequence inputs
    sequences: tuple[str, ...]  # inputs that are truncated together
    token_inputs: tuple[str, ...] = ()  # inputs whose padded ids may be changed
    mask_input: str | None = None  # an explicit padding mask input
    loss: Any = None
    targets: np.ndarray | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _keep(lengths=(T, 3, 6, 8), left=()) -> np.ndarray:
    keep = np.zeros((len(lengths), T), bool)
    for r, n in enumerate(lengths):
        if r in left:
            keep[r, T - n :] = True
        else:
            keep[r, :n] = True
    return keep


def _tokens(keep: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(keep, rng.integers(1, VOCAB, keep.shape), 0).astype("int32")


def _floats(keep: np.ndarray, dim: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(keep.shape + (dim,)).astype("float32")
    return np.where(keep[..., None], x, 0.0).astype("float32")


def _token_entry(build: Callable[[Any], Any], source: str, left=(2,)) -> Entry:
    keras.utils.set_random_seed(1)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    model = keras.Model(tokens, build(tokens))
    keep = _keep(left=left)
    return Entry(model, {"tokens": _tokens(keep)}, keep, ("tokens",), ("tokens",), source=source)


# --------------------------------------------------------------------------- models


def no_mask_average() -> Entry:
    """keras.io "text classification from scratch" style bag of embeddings, with no
    mask at all: the average includes the padding."""

    def build(t):
        x = L.Embedding(VOCAB, 8)(t)
        return L.Dense(2)(L.GlobalAveragePooling1D()(x))

    return _token_entry(build, "keras.io text_classification_from_scratch (no mask)")


def masked_average() -> Entry:
    def build(t):
        x = L.Embedding(VOCAB, 8, mask_zero=True)(t)
        return L.Dense(2)(L.GlobalAveragePooling1D()(x))

    return _token_entry(build, "keras.io bag of embeddings, mask_zero=True")


def rnn_sequences_then_mask_drop() -> Entry:
    """An RNN fills padded steps with its carried state; a Conv1D drops the mask and
    the average reads those steps (the leak depends on how much padding there is)."""

    def build(t):
        x = L.Embedding(VOCAB, 8, mask_zero=True)(t)
        x = L.LSTM(8, return_sequences=True)(x)
        x = L.Conv1D(8, 1)(x)
        return L.Dense(2)(L.GlobalAveragePooling1D()(x))

    return _token_entry(build, "LSTM(return_sequences=True) -> Conv1D -> average")


def bidirectional_imdb() -> Entry:
    def build(t):
        x = L.Embedding(VOCAB, 8, mask_zero=True)(t)
        x = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
        x = L.Bidirectional(L.LSTM(6))(x)
        return L.Dense(1, activation="sigmoid")(x)

    return _token_entry(build, "keras.io bidirectional_lstm_imdb")


def conv_text_classifier() -> Entry:
    """keras.io text_classification_from_scratch: strided Conv1D + global max."""

    def build(t):
        x = L.Embedding(VOCAB, 8)(t)
        x = L.Conv1D(8, 3, padding="valid", strides=2, activation="relu")(x)
        return L.Dense(1)(L.GlobalMaxPooling1D()(x))

    return _token_entry(build, "keras.io text_classification_from_scratch (conv)")


def _transformer_block(x, mask=None):
    att = L.MultiHeadAttention(num_heads=2, key_dim=4)
    a = att(x, x, attention_mask=mask)
    x = L.LayerNormalization(epsilon=1e-6)(x + a)
    f = L.Dense(8)(L.Dense(16, activation="relu")(x))
    return L.LayerNormalization(epsilon=1e-6)(x + f)


class TokenAndPosition(L.Layer):
    """keras.io text_classification_with_transformer's embedding layer."""

    def __init__(self, mask_zero: bool = False, **kw):
        super().__init__(**kw)
        self.tok = L.Embedding(VOCAB, 8, mask_zero=mask_zero)
        self.pos = L.Embedding(T, 8)
        self.supports_masking = mask_zero

    def call(self, x):
        positions = ops.arange(0, ops.shape(x)[-1])
        return self.tok(x) + self.pos(positions)

    def compute_mask(self, x, mask=None):
        return self.tok.compute_mask(x)


def transformer_classifier_no_mask() -> Entry:
    """keras.io text_classification_with_transformer as published: no mask anywhere."""

    def build(t):
        x = TokenAndPosition()(t)
        x = _transformer_block(x)
        return L.Dense(2)(L.GlobalAveragePooling1D()(x))

    return _token_entry(build, "keras.io text_classification_with_transformer", left=())


def transformer_classifier_hand_made_mask() -> Entry:
    """The same with a mask built by hand from the data and passed explicitly."""

    def build(t):
        pad = ops.not_equal(t, 0)
        x = TokenAndPosition()(t)
        att_mask = ops.logical_and(pad[:, :, None], pad[:, None, :])
        x = _transformer_block(x, att_mask)
        return L.Dense(2)(L.GlobalAveragePooling1D()(x, mask=pad))

    return _token_entry(build, "transformer classifier, hand-made mask", left=())


def hand_made_mask_wrong_id() -> Entry:
    """A hand-made mask from the wrong padding id (1 instead of 0)."""

    def build(t):
        x = L.Embedding(VOCAB, 8)(t)
        return L.Dense(2)(L.LSTM(6)(x, mask=ops.not_equal(t, 1)))

    return _token_entry(build, "hand-made mask from the wrong padding id")


def hand_made_mask_lstm() -> Entry:
    def build(t):
        x = L.Embedding(VOCAB, 8)(t)
        return L.Dense(2)(L.LSTM(6)(x, mask=ops.not_equal(t, 0)))

    return _token_entry(build, "LSTM with a hand-made mask=")


def keras_hub_encoder() -> Entry:
    import keras_hub

    def build(t):
        x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, T, 8, mask_zero=True)(t)
        x = keras_hub.layers.TransformerEncoder(16, 2)(x)
        return L.Dense(2)(L.GlobalAveragePooling1D()(x))

    return _token_entry(build, "keras-hub TokenAndPositionEmbedding + TransformerEncoder", left=())


def keras_hub_bert() -> Entry:
    import keras_hub

    keras.utils.set_random_seed(1)
    model = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=T,
    )
    keep = _keep()
    x = {
        "token_ids": _tokens(keep),
        "segment_ids": np.zeros((4, T), "int32"),
        "padding_mask": keep.astype("int32"),
    }
    return Entry(
        model,
        x,
        keep,
        ("token_ids", "segment_ids", "padding_mask"),
        ("token_ids",),
        mask_input="padding_mask",
        source="keras-hub BertBackbone (padding_mask)",
    )


def seq2seq(pass_mask: bool) -> Entry:
    """keras.io lstm_seq2seq: the decoder LSTM gets `initial_state=`."""
    keras.utils.set_random_seed(1)
    enc = keras.Input((None,), dtype="int32", name="enc")
    dec = keras.Input((None,), dtype="int32", name="dec")
    e = L.Embedding(VOCAB, 8, mask_zero=True)(enc)
    _, h, c = L.LSTM(8, return_state=True)(e)
    emb = L.Embedding(VOCAB, 8, mask_zero=True)
    d = emb(dec)
    kw = {"mask": emb.compute_mask(dec)} if pass_mask else {}
    y = L.LSTM(8, return_sequences=True)(d, initial_state=[h, c], **kw)
    model = keras.Model([enc, dec], L.Dense(VOCAB)(y))
    keep = _keep(left=(2,))
    x = {"enc": _tokens(keep, 1), "dec": _tokens(keep, 2)}
    return Entry(model, x, keep, ("enc", "dec"), ("enc", "dec"), source="keras.io lstm_seq2seq")


def masking_gru_regressor() -> Entry:
    keras.utils.set_random_seed(1)
    i = keras.Input((None, 3), name="series")
    y = L.Dense(1)(L.GRU(6)(L.Masking(0.0)(i)))
    keep = _keep(left=(2,))
    model = keras.Model(i, y)
    return Entry(model, {"series": _floats(keep)}, keep, ("series",), source="Masking + GRU")


def masking_conv_average() -> Entry:
    """Masking, then a Conv1D that drops the mask, then an unmasked average."""
    keras.utils.set_random_seed(1)
    i = keras.Input((None, 3), name="series")
    x = L.Conv1D(6, 3, padding="same")(L.Masking(0.0)(i))
    model = keras.Model(i, L.Dense(1)(L.GlobalAveragePooling1D()(x)))
    keep = _keep(left=(2,))
    return Entry(model, {"series": _floats(keep)}, keep, ("series",), source="Masking + Conv1D")


def _tagger(mask_drop: bool) -> Entry:
    from maskviz.layers import MaskedConv1D

    keras.utils.set_random_seed(1)
    t = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, 8, mask_zero=True)(t)
    # Dense passes the mask on in every Keras 3 (an RNN does not from 3.16 on).
    x = L.Dense(8, activation="tanh")(x)
    # Conv1D drops the mask: the loss counts padded steps. The twin's MaskedConv1D has
    # the same variables and passes the mask on.
    x = (L.Conv1D if mask_drop else MaskedConv1D)(8, 1)(x)
    # Large logits, so that the loss itself (not only its gradients) tells targets apart.
    head = L.Dense(5, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))
    model = keras.Model(t, head(x))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=loss)
    keep = _keep(left=())
    y = np.random.default_rng(5).integers(0, 5, keep.shape).astype("int32")
    return Entry(
        model,
        {"tokens": _tokens(keep)},
        keep,
        ("tokens",),
        ("tokens",),
        loss=loss,
        targets=y,
        source="sequence tagger with compiled loss",
    )


ZOO: dict[str, Callable[[], Entry]] = {
    "no_mask_average": no_mask_average,
    "masked_average": masked_average,
    "rnn_sequences_then_mask_drop": rnn_sequences_then_mask_drop,
    "bidirectional_imdb": bidirectional_imdb,
    "conv_text_classifier": conv_text_classifier,
    "transformer_classifier_no_mask": transformer_classifier_no_mask,
    "transformer_classifier_hand_made_mask": transformer_classifier_hand_made_mask,
    "hand_made_mask_wrong_id": hand_made_mask_wrong_id,
    "hand_made_mask_lstm": hand_made_mask_lstm,
    "keras_hub_encoder": keras_hub_encoder,
    "keras_hub_bert": keras_hub_bert,
    "seq2seq": lambda: seq2seq(False),
    "seq2seq_mask_passed": lambda: seq2seq(True),
    "masking_gru_regressor": masking_gru_regressor,
    "masking_conv_average": masking_conv_average,
    "tagger_loss_counts_padding": lambda: _tagger(True),
    "tagger_masked_loss": lambda: _tagger(False),
}


# --------------------------------------------------------------------------- truth


def _flat(out: Any) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(out)]


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    a = a.astype(np.float64)
    diff = np.abs(a - b)
    return bool(diff.max(initial=0.0) > 1e-6 + 1e-3 * np.abs(a).max(initial=0.0))


def truth(e: Entry) -> dict[str, bool]:
    """{"truncation": ..., "values": ...}: whether the outputs at real positions
    depend on the padding, measured by truncation and by changing padded token ids
    (explicit-mask models only)."""
    full = _flat(e.model(e.x, training=False))
    out = {"truncation": False, "values": False}
    for r in range(len(e.keep)):
        idx = np.nonzero(e.keep[r])[0]
        if len(idx) == e.keep.shape[1]:
            continue
        row = {k: (v[r : r + 1, idx] if k in e.sequences else v[r : r + 1]) for k, v in e.x.items()}
        short = _flat(e.model(row, training=False))
        for a, b in zip(full, short):
            a = a[r]
            b = b[0]
            if a.shape != b.shape:
                if a.ndim and a.shape[0] == e.keep.shape[1] and b.shape[0] == len(idx):
                    a = a[idx]
                elif a.ndim and idx[0] == 0 and b.shape[0] <= a.shape[0]:
                    a = a[: b.shape[0]]
                else:
                    continue
            out["truncation"] |= _differs(a, b)
    if e.mask_input:
        rng = np.random.default_rng(9)
        other = dict(e.x)
        for k in e.token_inputs:
            v = e.x[k]
            other[k] = np.where(e.keep, v, rng.integers(1, VOCAB, v.shape)).astype(v.dtype)
        changed = _flat(e.model(other, training=False))
        for a, b in zip(full, changed):
            if a.ndim >= 2 and a.shape[1] == e.keep.shape[1]:
                k = e.keep.reshape(e.keep.shape + (1,) * (a.ndim - 2))
                a, b = np.where(k, a, 0), np.where(k, b, 0)
            out["values"] |= _differs(a, b)
    return out


def loss_truth(e: Entry) -> bool:
    """Whether the loss changes when only the targets at padded steps change."""
    y_pred = e.model(e.x, training=False)
    rng = np.random.default_rng(11)
    other = np.where(e.keep, e.targets, rng.integers(0, 5, e.targets.shape)).astype("int32")
    a = float(keras.ops.convert_to_numpy(e.loss(e.targets, y_pred)))
    b = float(keras.ops.convert_to_numpy(e.loss(other, y_pred)))
    return abs(a - b) > 1e-6 + 1e-3 * abs(a)


_TWINS = {"seq2seq": "seq2seq_mask_passed", "tagger_loss_counts_padding": "tagger_masked_loss"}
# The bug class each model is there to show (whether it leaks is measured, not stored).
_SHOWS = {
    "no_mask_average": "no mask",
    "rnn_sequences_then_mask_drop": "Conv1D drops the mask",
    "transformer_classifier_no_mask": "no mask",
    "hand_made_mask_wrong_id": "mask from the wrong padding id",
    "seq2seq": "initial_state drops the mask",
    "masking_conv_average": "Conv1D drops the mask",
    "tagger_loss_counts_padding": "Conv1D drops the mask before the loss",
}
for _name, _build in ZOO.items():
    register(
        "zoo_truth",
        _name,
        _build,
        tags=("measured",),
        bug=_SHOWS.get(_name),
        truth=loss_truth if _name.startswith("tagger_") else truth,
        twin=_TWINS.get(_name),
    )
