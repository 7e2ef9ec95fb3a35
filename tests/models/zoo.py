"""Fixture models, each named for the mask bug it shows; `*_fixed` twins are the
same model with only the bug repaired (same layers and names, same shapes and, built
from the same seed, the same weights). Built lazily, once per test session."""

from __future__ import annotations

import keras
import numpy as np

from models import REGISTRY, register, seeded

L = keras.layers


def seq2seq(fixed: bool, activation: str | None = "softmax"):
    """Encoder-decoder; the decoder LSTM is called with `initial_state=`, and (`fixed`)
    given its own mask explicitly."""
    enc = keras.Input((None,), dtype="int32", name="encoder_tokens")
    dec = keras.Input((None,), dtype="int32", name="decoder_tokens")
    x = L.Embedding(40, 8, mask_zero=True, name="enc_embedding")(enc)
    _, h, c = L.LSTM(8, return_state=True, name="encoder")(x)
    emb = L.Embedding(40, 8, mask_zero=True, name="dec_embedding")
    y = emb(dec)
    kw = {"mask": emb.compute_mask(dec)} if fixed else {}
    y = L.LSTM(8, return_sequences=True, name="decoder")(y, initial_state=[h, c], **kw)
    out = L.Dense(40, activation=activation, name="logits")(y)
    return keras.Model([enc, dec], out, name="seq2seq_fixed" if fixed else "seq2seq")


def seq2seq_initial_state():
    return seq2seq(False)


def seq2seq_initial_state_fixed():
    return seq2seq(True)


def conv1d_after_masking():
    i = keras.Input((None, 4), name="features")
    x = L.Masking(0.0)(i)
    x = L.Conv1D(4, 3, padding="same", name="conv1d")(x)  # named: other tests build Conv1Ds
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(1)(x), name="conv1d_after_masking")


def conv1d_after_masking_fixed():
    from maskviz.layers import MaskedConv1D

    i = keras.Input((None, 4), name="features")
    x = L.Masking(0.0)(i)
    x = MaskedConv1D(4, 3, padding="same", name="conv1d")(x)  # Conv1D's variables + mask
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(1)(x), name="conv1d_after_masking_fixed")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class UnmaskAll(keras.layers.Layer):
    """Per-step identity-like layer whose compute_mask keeps every step."""

    def call(self, x):
        return x * 1.0

    def compute_mask(self, x, mask=None):
        return keras.ops.ones_like(x[..., 0], dtype="bool")


def weakened_mask():
    i = keras.Input((None,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = UnmaskAll(name="unmask_all")(x)
    x = L.GRU(4)(x)
    return keras.Model(i, x, name="weakened_mask")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class UnmaskAllFixed(UnmaskAll):
    """`UnmaskAll` whose compute_mask passes the incoming mask on."""

    def compute_mask(self, x, mask=None):
        return mask


def weakened_mask_fixed():
    i = keras.Input((None,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = UnmaskAllFixed(name="unmask_all")(x)
    x = L.GRU(4)(x)
    return keras.Model(i, x, name="weakened_mask_fixed")


def _masking_5d_convlstm(padding: str, fixed: bool, name: str):
    """Masking on 5-D frames makes a 4-D mask ConvLSTM2D cannot use; the repair is
    `TimestepMasking`, a Masking whose mask is per time step."""
    from maskviz.layers import TimestepMasking

    i = keras.Input((4, 6, 6, 1), name="video")
    x = (TimestepMasking() if fixed else L.Masking())(i)
    x = L.ConvLSTM2D(2, 3, padding=padding)(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, L.Dense(1)(x), name=name)


def masking_5d_convlstm_same():
    return _masking_5d_convlstm("same", False, "masking_5d_convlstm_same")


def masking_5d_convlstm_same_fixed():
    return _masking_5d_convlstm("same", True, "masking_5d_convlstm_same_fixed")


def masking_5d_convlstm_valid():
    return _masking_5d_convlstm("valid", False, "masking_5d_convlstm_valid")


def masking_5d_convlstm_fixed():
    return _masking_5d_convlstm("valid", True, "masking_5d_convlstm_fixed")


def _timedistributed_embedding(wrapper, name: str):
    i = keras.Input((3, 5), dtype="int32", name="chars")
    x = wrapper(L.Embedding(20, 4, mask_zero=True))(i)
    x = wrapper(L.LSTM(4))(x)
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(1)(x), name=name)


def timedistributed_embedding():
    return _timedistributed_embedding(L.TimeDistributed, "timedistributed_embedding")


def timedistributed_embedding_fixed():
    from maskviz.layers import MaskedTimeDistributed

    return _timedistributed_embedding(MaskedTimeDistributed, "timedistributed_embedding_fixed")


def timedistributed_dense():
    i = keras.Input((None, 4), name="features")
    x = L.Masking()(i)
    x = L.GRU(4, return_sequences=True)(x)
    x = L.TimeDistributed(L.Dense(2))(x)
    return keras.Model(i, x, name="timedistributed_dense")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class Downsample(keras.layers.Layer):
    """Keeps every other step but passes the mask on unchanged (the bug)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = True

    def call(self, x):
        return x[:, ::2]


@keras.saving.register_keras_serializable(package="maskviz_tests")
class DownsampleFixed(Downsample):
    def compute_mask(self, x, mask=None):
        return None if mask is None else mask[:, ::2]


def strided_mask():
    i = keras.Input((8,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = Downsample(name="downsample")(x)
    return keras.Model(i, L.LSTM(4)(x), name="strided_mask")


def strided_mask_fixed():
    i = keras.Input((8,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = DownsampleFixed(name="downsample")(x)
    return keras.Model(i, L.LSTM(4)(x), name="strided_mask_fixed")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class NotEqualZero(keras.layers.Layer):
    def call(self, x):
        return keras.ops.not_equal(x, 0)


def explicit_mask_override():
    a = keras.Input((8,), dtype="int32", name="a")
    b = keras.Input((8,), dtype="int32", name="b")
    other_mask = NotEqualZero(name="a_mask")(a)
    xb = L.Embedding(30, 4, mask_zero=True)(b)
    y = L.LSTM(4, name="lstm_b")(xb, mask=other_mask)
    return keras.Model([a, b], y, name="explicit_mask_override")


def explicit_mask_override_fixed():
    """The same layers; the LSTM's `mask=` is made from its own input `b`."""
    a = keras.Input((8,), dtype="int32", name="a")
    b = keras.Input((8,), dtype="int32", name="b")
    own_mask = NotEqualZero(name="b_mask")(b)
    xb = L.Embedding(30, 4, mask_zero=True)(b)
    y = L.LSTM(4, name="lstm_b")(xb, mask=own_mask)
    return keras.Model([a, b], y, name="explicit_mask_override_fixed")


def flatten_after_embedding():
    i = keras.Input((10,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = L.Flatten()(x)
    return keras.Model(i, L.Dense(1)(x), name="flatten_after_embedding")


def flatten_after_embedding_fixed():
    i = keras.Input((10,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(1)(x), name="flatten_after_embedding_fixed")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class IgnoredComputeMask(keras.layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = False

    def call(self, x):
        return x * 2.0

    def compute_mask(self, x, mask=None):
        return mask


def compute_mask_ignored():
    i = keras.Input((None,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = IgnoredComputeMask(name="ignored")(x)
    return keras.Model(i, L.GlobalAveragePooling1D()(x), name="compute_mask_ignored")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class IgnoredComputeMaskFixed(IgnoredComputeMask):
    """`IgnoredComputeMask` with `supports_masking = True`: its compute_mask is used."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = True


def compute_mask_ignored_fixed():
    i = keras.Input((None,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(i)
    x = IgnoredComputeMaskFixed(name="ignored")(x)
    return keras.Model(i, L.GlobalAveragePooling1D()(x), name="compute_mask_ignored_fixed")


# ----------------------------------------------------------------------------- clean


def clean_lstm():
    i = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(30, 8, mask_zero=True)(i)
    x = L.LSTM(8)(x)
    return keras.Model(i, L.Dense(1)(x), name="clean_lstm")


def bidirectional_tagger():
    i = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(30, 8, mask_zero=True)(i)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    return keras.Model(i, L.Dense(3)(x), name="bidirectional_tagger")


def transformer_block():
    i = keras.Input((12,), dtype="int32", name="tokens")
    x = L.Embedding(30, 8, mask_zero=True)(i)
    a = L.MultiHeadAttention(2, 4)(x, x)
    x = L.LayerNormalization()(L.Add()([x, a]))
    f = L.Dense(8)(L.Dense(16, activation="relu")(x))
    x = L.LayerNormalization()(L.Add()([x, f]))
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(1)(x), name="transformer_block")


def nested_encoder():
    inner_in = keras.Input((None, 8))
    inner = keras.Model(
        inner_in, L.LSTM(8, return_sequences=True)(L.Dense(8)(inner_in)), name="encoder"
    )
    i = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(30, 8, mask_zero=True)(i)
    x = inner(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(1)(x), name="nested_encoder")


def shared_embedding():
    a = keras.Input((None,), dtype="int32", name="left")
    b = keras.Input((None,), dtype="int32", name="right")
    emb = L.Embedding(30, 8, mask_zero=True, name="shared_emb")
    rnn = L.GRU(4, name="shared_gru")
    ya, yb = rnn(emb(a)), rnn(emb(b))
    return keras.Model([a, b], L.Dense(1)(L.Concatenate()([ya, yb])), name="shared_embedding")


def sequential_lstm():
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            L.Embedding(30, 8, mask_zero=True),
            L.LSTM(4),
            L.Dense(1),
        ],
        name="sequential_lstm",
    )


class SubclassedTagger(keras.Model):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.emb = L.Embedding(30, 8, mask_zero=True)
        self.rnn = L.GRU(4, return_sequences=True)
        self.out = L.Dense(2)

    def call(self, x):
        return self.out(self.rnn(self.emb(x)))


def subclassed_tagger():
    m = SubclassedTagger(name="subclassed_tagger")
    m(np.ones((2, 6), "int32"))
    return m


def no_masks():
    i = keras.Input((5,), name="x")
    return keras.Model(i, L.Dense(1)(L.Dense(4)(i)), name="no_masks")


class Zoo:
    """Builds each model on first use and keeps it for the session."""

    def __init__(self):
        self._cache = {}

    def __getitem__(self, name: str):
        if name not in self._cache:
            self._cache[name] = REGISTRY[f"zoo:{name}"].build()
        return self._cache[name]


# ------------------------------------------------------- from a new user's trial


def keras_hub_encoder():
    """keras-hub blocks set masks in their own code: sublayers that drop a mask inside
    them are not mask drops of the model."""
    import keras_hub

    inp = keras.Input((16,), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(100, 16, 32, mask_zero=True)(inp)
    x = keras_hub.layers.TransformerEncoder(64, 2)(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(2)(x), name="keras_hub_encoder")


def reversible_embedding_lstm():
    """ReversibleEmbedding attaches its mask in `call`; its compute_mask returns None."""
    inp = keras.Input((16,), dtype="int32", name="tokens")
    x = L.ReversibleEmbedding(100, 16, mask_zero=True)(inp)
    return keras.Model(inp, L.LSTM(8)(x), name="reversible_embedding_lstm")


def strided_conv_text():
    """keras.io's Conv1D text classifier: needs more steps than the default probe."""
    inp = keras.Input((None,), dtype="int64", name="text")
    x = L.Embedding(100, 16)(inp)
    x = L.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = L.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x), name="strided_conv_text")


@keras.saving.register_keras_serializable(package="maskviz_tests")
class TakesMaskIgnoresIt(keras.layers.Layer):
    """Accepts `mask` in call, neither uses it nor passes it on."""

    def call(self, x, mask=None):
        return x * 2.0


@keras.saving.register_keras_serializable(package="maskviz_tests")
class TakesMaskPassesIt(TakesMaskIgnoresIt):
    """`TakesMaskIgnoresIt` with `supports_masking = True`: the mask flows on."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = True


def _mask_arg(layer_cls, name: str):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(100, 8, mask_zero=True)(inp)
    x = layer_cls(name="scale")(x)
    return keras.Model(inp, L.LSTM(8)(x), name=name)


def mask_arg_dropped():
    return _mask_arg(TakesMaskIgnoresIt, "mask_arg_dropped")


def mask_arg_dropped_fixed():
    return _mask_arg(TakesMaskPassesIt, "mask_arg_dropped_fixed")


def backwards_sequence():
    """SimpleRNN(go_backwards=True, return_sequences=True) reverses its output but
    Keras passes the input's mask on unreversed."""
    t = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True)(t)
    r = L.SimpleRNN(3, go_backwards=True, return_sequences=True, name="backwards")(x)
    return keras.Model(t, L.Dense(2)(L.LSTM(2)(r)), name="backwards_sequence")


def backwards_sequence_fixed():
    """The same cell in `maskviz.layers.MaskedRNN`, which reverses its mask too."""
    from maskviz.layers import MaskedRNN

    t = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True)(t)
    rnn = MaskedRNN(L.SimpleRNNCell(3), go_backwards=True, return_sequences=True, name="backwards")
    return keras.Model(t, L.Dense(2)(L.LSTM(2)(rnn(x))), name="backwards_sequence_fixed")


def _bidirectional_initial_state(fixed: bool, name: str):
    t = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.Input((3,), name="state")
    emb = L.Embedding(20, 4, mask_zero=True)
    x = emb(t)
    kw = {"mask": emb.compute_mask(t)} if fixed else {}
    y = L.Bidirectional(L.GRU(3), name="bi")(x, initial_state=[h, h], **kw)
    return keras.Model([t, h], L.Dense(1)(y), name=name)


def bidirectional_initial_state():
    """Bidirectional called with initial_state: its RNNs never get the mask."""
    return _bidirectional_initial_state(False, "bidirectional_initial_state")


def bidirectional_initial_state_fixed():
    """The same call with the Embedding's mask passed as `mask=`."""
    return _bidirectional_initial_state(True, "bidirectional_initial_state_fixed")


# ------------------------------------------------------------------ the registry

# bug model -> (bug class, its true twin)
BUGS = {
    "seq2seq_initial_state": ("initial_state drops the mask", "seq2seq_initial_state_fixed"),
    "conv1d_after_masking": ("Conv1D drops the mask", "conv1d_after_masking_fixed"),
    "weakened_mask": ("compute_mask keeps padded steps", "weakened_mask_fixed"),
    "mask_arg_dropped": ("layer takes mask and drops it", "mask_arg_dropped_fixed"),
    "masking_5d_convlstm_same": ("5-D Masking mask", "masking_5d_convlstm_same_fixed"),
    "masking_5d_convlstm_valid": ("5-D Masking mask", "masking_5d_convlstm_fixed"),
    "timedistributed_embedding": (
        "TimeDistributed loses the inner mask",
        "timedistributed_embedding_fixed",
    ),
    "strided_mask": ("mask not resampled with its tensor", "strided_mask_fixed"),
    "explicit_mask_override": ("mask= of another input", "explicit_mask_override_fixed"),
    # Flatten cannot keep its output shape and ignore padding: the twin pools instead
    # (the head's kernel has another shape; every other layer is the same).
    "flatten_after_embedding": ("Flatten reads padding", "flatten_after_embedding_fixed"),
    "compute_mask_ignored": ("compute_mask without supports_masking", "compute_mask_ignored_fixed"),
    "backwards_sequence": ("go_backwards mask not reversed", "backwards_sequence_fixed"),
    "bidirectional_initial_state": (
        "initial_state drops the mask",
        "bidirectional_initial_state_fixed",
    ),
}

# Models expected correct: no structural finding (tests/test_rules_structure.py).
CLEAN = (
    "clean_lstm",
    "bidirectional_tagger",
    "transformer_block",
    "nested_encoder",
    "shared_embedding",
    "sequential_lstm",
    "subclassed_tagger",
    "timedistributed_dense",
    "no_masks",
    "keras_hub_encoder",
    "reversible_embedding_lstm",
    "strided_conv_text",
)
_PLAIN = CLEAN + tuple(twin for _, twin in BUGS.values())


for _name, (_bug, _twin) in BUGS.items():
    register("zoo", _name, seeded(globals()[_name]), bug=_bug, twin=_twin)
for _name in dict.fromkeys(_PLAIN):
    register("zoo", _name, seeded(globals()[_name]))
