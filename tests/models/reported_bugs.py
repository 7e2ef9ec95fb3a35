"""A corpus of real, public masking reports, each reproduced as a small Keras 3 model.

Every case names the report it reproduces (`url`), says in one line what the
reporter saw (`summary`), builds the model with random weights (`build()`), and
gives padded sample inputs (`data()`, seeded numpy). `kind` is what we expect:

- "bug": padding leaks into real outputs (or into the loss), or Keras crashes
  on the padded input;
- "correct": the model is padding-invariant although it looks suspicious (the
  report was a question, a warning, or a bug since fixed).

The verdict that counts is never `kind`: `truth(case)` measures padding
invariance directly on the installed Keras, independently of maskviz:

1. append padding: every sequence input gets `EXTRA` more padded steps; real
   outputs must not change;
2. truncate: every right-padded row alone, cut to its real length; real outputs
   must not change;
3. perturb under an explicit mask: where a mask *input* marks padding, the
   padded tokens are replaced by other tokens (or noise); real outputs must not
   change;
4. fixed-length models (where 1 and 2 cannot run): the real content of each
   right-padded row moved behind its padding (left padding); time-less outputs
   must not change;
5. loss: for cases with a loss, the loss of `model.compile(loss=...)` must not
   change when the padded steps' targets change, nor when padding (with arbitrary
   targets) is appended.

Any change larger than `RTOL` of the outputs' scale is a "leak"; an exception on
the padded data is a "crash" (its detail says whether the same batch with real
content in place of the padding runs); otherwise "clean".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models import register  # noqa: E402

L = keras.layers
ops = keras.ops

RTOL = 1e-4  # of the outputs' scale: round-off from other batch sizes stays below
EXTRA = 3  # padded steps appended by the append test

# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One reproduced report.

    Attributes:
        name: identifier (the function name).
        kind: "bug" or "correct" (our expectation; `truth` decides).
        url: the public report.
        summary: what the reporter saw, one line.
        build: returns the model (random weights, seeded).
        data: returns `{input name: array}`, padded.
        pad: `{sequence input name: padding value}` (token id or mask_value).
        masks: `{mask input name: sequence input it marks}` (explicit masks).
        loss: a Keras loss name when the report is about the loss.
        targets: `data -> y` for the loss test (arbitrary values on padding).
    """

    name: str
    kind: str
    url: str
    summary: str
    build: Callable[[], Any]
    data: Callable[[], dict[str, np.ndarray]]
    pad: dict[str, Any]
    masks: dict[str, str] = field(default_factory=dict)
    loss: str | None = None
    targets: Callable[[dict[str, np.ndarray]], Any] | None = None


CASES: dict[str, Case] = {}


def case(kind, url, summary, *, data, pad, masks=None, loss=None, targets=None):
    """Registers the decorated model builder as a case."""

    def deco(fn):
        def build():
            keras.utils.set_random_seed(0)
            return fn()

        CASES[fn.__name__] = Case(
            name=fn.__name__,
            kind=kind,
            url=url,
            summary=summary,
            build=build,
            data=data,
            pad=dict(pad),
            masks=dict(masks or {}),
            loss=loss,
            targets=targets,
        )
        return fn

    return deco


# ------------------------------------------------------------------ data helpers


def _lengths_tokens(lengths, time, vocab, *, left=(), seed=0, pad=0):
    """Token rows with `lengths[i]` real ids in [1, vocab); rows in `left` left-padded."""
    rng = np.random.default_rng(seed)
    x = np.full((len(lengths), time), pad, dtype="int32")
    for i, n in enumerate(lengths):
        ids = rng.integers(1, vocab, size=n)
        if i in left:
            x[i, time - n :] = ids
        else:
            x[i, :n] = ids
    return x


def _lengths_floats(lengths, time, feat, *, left=(), seed=0, pad=0.0):
    """Float rows (batch, time, *feat) with real steps drawn away from `pad`."""
    rng = np.random.default_rng(seed)
    feat = tuple(np.atleast_1d(feat))
    x = np.full((len(lengths), time, *feat), pad, dtype="float32")
    for i, n in enumerate(lengths):
        vals = rng.uniform(0.5, 1.5, size=(n, *feat)) * rng.choice([-1.0, 1.0], size=(n, *feat))
        if i in left:
            x[i, time - n :] = vals
        else:
            x[i, :n] = vals
    return x


def tokens(name, lengths=(6, 3, 4), time=7, vocab=20, left=(2,), seed=0):
    return lambda: {name: _lengths_tokens(lengths, time, vocab, left=left, seed=seed)}


def floats(name, feat, lengths=(6, 3, 4), time=7, left=(2,), pad=0.0, seed=0):
    return lambda: {name: _lengths_floats(lengths, time, feat, left=left, pad=pad, seed=seed)}


# ------------------------------------------------------------------ layers from reports


@keras.saving.register_keras_serializable(package="reported_bugs")
class TwoInputMaskedLayer(keras.layers.Layer):
    """keras#19311: takes two masked inputs, zeroes the output where input b is masked."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[1]
        return mask

    def call(self, inputs, mask=None):
        _, b = inputs
        out = b[..., :1]
        if isinstance(mask, (list, tuple)) and mask[1] is not None:
            out = ops.where(ops.expand_dims(mask[1], -1), out, ops.zeros_like(out))
        return out

    def compute_output_shape(self, input_shape):
        return (*input_shape[1][:-1], 1)


@keras.saving.register_keras_serializable(package="reported_bugs")
class PositionalEmbedding(keras.layers.Layer):
    """keras#18543 (Chollet's book): token + learned position embedding, mask from ids."""

    def __init__(self, seq_length, input_dim, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.seq_length = seq_length
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.token_embeddings = L.Embedding(input_dim, output_dim)
        self.position_embeddings = L.Embedding(seq_length, output_dim)
        self.supports_masking = True

    def call(self, inputs):
        positions = ops.arange(0, ops.shape(inputs)[-1])
        return self.token_embeddings(inputs) + self.position_embeddings(positions)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def get_config(self):
        return {
            **super().get_config(),
            "seq_length": self.seq_length,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
        }


@keras.saving.register_keras_serializable(package="reported_bugs")
class MaskedGlobalAveragePool1D(keras.layers.Layer):
    """CyberZHG/keras-bert#34: zeroes masked steps, then takes the mean over ALL steps."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs * ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.mean(inputs, axis=-2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-2], input_shape[-1])


@keras.saving.register_keras_serializable(package="reported_bugs")
class MaskedConv1D(keras.layers.Conv1D):
    """bojone/bert4keras#151: Conv1D told it supports masking, so the mask passes on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True


@keras.saving.register_keras_serializable(package="reported_bugs")
class Scale(keras.layers.Layer):
    """A custom per-step layer that does not opt in to masking (the Keras default)."""

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.gamma


# --------------------------------------------------------------------------- the cases
# Convolutions and pooling over padded steps


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/411",
    "Masking(-99999.99) -> Conv1D(same) -> GRU -> GRU: the convolution mixes the padding "
    "value into real steps, training 'against values with -99999.99'.",
    data=floats("features", 1, lengths=(7, 4, 5), time=9, left=(), pad=-99999.99),
    pad={"features": -99999.99},
)
def conv1d_after_masking_gru():
    i = keras.Input((None, 1), name="features")
    x = L.Masking(mask_value=-99999.99)(i)
    x = L.Conv1D(4, 5, padding="same")(x)
    x = L.GRU(4, return_sequences=True)(x)
    x = L.GRU(4)(x)
    return keras.Model(i, L.Dense(1)(x), name="conv1d_after_masking_gru")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/16622",
    "Masking(20.0) -> Conv1D -> MaxPooling1D -> Flatten on a fixed-length input: "
    "'Are masking layers in CNN supported?' (no: the CNN reads the padding).",
    data=floats("features", 5, lengths=(12, 6, 8), time=12, left=(), pad=20.0),
    pad={"features": 20.0},
)
def cnn_after_masking_flatten():
    i = keras.Input((12, 5), name="features")
    x = L.Masking(mask_value=20.0)(i)
    x = L.Conv1D(6, 8, activation="gelu")(x)
    x = L.Dropout(0.3)(x)
    x = L.MaxPooling1D(pool_size=4)(x)
    x = L.Flatten()(x)
    return keras.Model(i, L.Dense(3)(x), name="cnn_after_masking_flatten")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/20113",
    "Masking on (timesteps, width, channels) -> Conv2D: Keras 3 warns the Conv2D "
    "destroys the mask; the 2-D kernel mixes padded timesteps into real ones.",
    data=floats("frames", (4, 2), lengths=(6, 3, 4), time=7, left=(), pad=0.0),
    pad={"frames": 0.0},
)
def conv2d_after_masking_timesteps():
    i = keras.Input((None, 4, 2), name="frames")
    x = L.Masking(0.0)(i)
    x = L.Conv2D(3, (3, 3), padding="same", activation="relu")(x)
    x = L.Conv2D(3, (3, 3), padding="same", activation="relu")(x)
    x = L.Conv2D(1, (1, 4))(x)  # (batch, time, 1, 1): one value per timestep
    x = L.Reshape((-1,))(x)
    return keras.Model(i, x, name="conv2d_after_masking_timesteps")


@case(
    "bug",
    "https://github.com/bojone/bert4keras/issues/151",
    "'Layer conv1d does not support masking': the suggested fix subclasses Conv1D with "
    "supports_masking=True, which silences the error but still convolves padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7),
    pad={"token_ids": 0},
)
def conv1d_forced_supports_masking():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    x = L.Dense(6, activation="tanh")(x)  # stands in for the ALBERT encoder's output
    x = MaskedConv1D(filters=4, kernel_size=3, padding="same")(x)
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(2)(x), name="conv1d_forced_supports_masking")


@case(
    "bug",
    "https://github.com/keras-team/keras/pull/13867",
    "Global max pooling over an LSTM's padded steps: GlobalMaxPooling1D has no mask "
    "support, so zero outputs at padded steps win the max for negative channels.",
    data=tokens("token_ids", lengths=(6, 2, 3), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def global_max_pool_over_padding():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    x = L.LSTM(8, return_sequences=True)(x)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(i, L.Dense(2)(x), name="global_max_pool_over_padding")


@case(
    "bug",
    "https://github.com/CyberZHG/keras-bert/issues/34",
    "A hand-written MaskedGlobalAveragePool1D zeroes padded steps and then averages "
    "over all steps, so the mean shrinks with the amount of padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7),
    pad={"token_ids": 0},
)
def custom_masked_mean_divides_by_all_steps():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    x = MaskedGlobalAveragePool1D()(x)
    return keras.Model(i, L.Dense(2)(x), name="custom_masked_mean_divides_by_all_steps")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/3777",
    "'GlobalAveragePooling1D is not compatible with masking' after LSTM(return_sequences)"
    ": since keras#10913 it averages only unmasked steps.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def lstm_global_average_pooling():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    x = L.LSTM(8, return_sequences=True)(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(1, activation="sigmoid")(x), name="lstm_global_average_pooling")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/12283",
    "Lambda(_average, mask=_mask) computing a mask-weighted mean of embeddings; "
    "predict([[2, 3]]) must equal predict([[0, 2, 3]]).",
    data=tokens("ids", lengths=(5, 2, 3), time=6, vocab=4, left=(1, 2)),
    pad={"ids": 0},
)
def lambda_mask_weighted_average():
    def average(x, mask=None):
        w = ops.cast(mask, "float32")
        w = w / (ops.sum(w, axis=1, keepdims=True) + 1e-16)
        return ops.sum(x * ops.expand_dims(w, -1), axis=1, keepdims=True)

    i = keras.Input((None,), dtype="int32", name="ids")
    y = L.Embedding(4, 2, mask_zero=True)(i)
    z = L.Lambda(average, mask=lambda inputs, mask=None: None, output_shape=(1, 2))(y)
    return keras.Model(i, z, name="lambda_mask_weighted_average")


# Merges, operators, custom layers


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/18416",
    "`x + x` between Masking and a global average: the operator result carries no "
    "mask, so GlobalAveragePooling1D averages the padded steps too.",
    data=floats("x", 1, lengths=(6, 3, 4), time=7, left=(2,), pad=0.0),
    pad={"x": 0.0},
)
def operator_drops_mask_before_pooling():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(0.0)(i)
    x = L.Dense(4, activation="tanh")(x)
    x = x + x
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(1)(x), name="operator_drops_mask_before_pooling")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/18416",
    "y = Dense(x * 1) on masked (batch, time, 1) data, padded x = y = 0: the operator "
    "drops the mask, so the MSE counts the padded steps and learns the wrong line.",
    data=floats("x", 1, lengths=(6, 3, 4), time=7, left=(), pad=0.0),
    pad={"x": 0.0},
    loss="mse",
    targets=lambda d: 2.0 * d["x"] + 1.0,
)
def operator_drops_mask_before_loss():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(0.0)(i)
    x = x * 1
    return keras.Model(i, L.Dense(1)(x), name="operator_drops_mask_before_loss")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/18416",
    "The identity map_fn of the same report: Masking -> Dense, the mask reaches the "
    "output and the loss ignores padded steps.",
    data=floats("x", 1, lengths=(6, 3, 4), time=7, left=(), pad=0.0),
    pad={"x": 0.0},
    loss="mse",
    targets=lambda d: 2.0 * d["x"] + 1.0,
)
def masked_dense_loss():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(0.0)(i)
    return keras.Model(i, L.Dense(1)(x), name="masked_dense_loss")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/19817",
    "Add() of two mask_zero embeddings feeding an LSTM: merge layers did not pass the "
    "list of masks to compute_mask, so the LSTM lost the mask.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def add_merge_of_masked_embeddings():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    a = L.Embedding(20, 6, mask_zero=True)(i)
    b = L.Embedding(20, 6, mask_zero=True)(i)
    x = L.Add()([a, b])
    x = L.LSTM(6)(x)
    return keras.Model(i, L.Dense(2)(x), name="add_merge_of_masked_embeddings")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/19311",
    "'Masking does not work in keras 3.0.5': a custom layer taking two masked inputs "
    "receives mask=None, its output is then read by an LSTM.",
    data=lambda: {
        "input_a": _lengths_floats((6, 3, 4), 7, 2, left=(), seed=1),
        "input_b": _lengths_floats((6, 3, 4), 7, 2, left=(), seed=2),
    },
    pad={"input_a": 0.0, "input_b": 0.0},
)
def two_input_custom_layer_mask():
    a = keras.Input((None, 2), name="input_a")
    b = keras.Input((None, 2), name="input_b")
    ma = L.Masking(0.0)(a)
    mb = L.Masking(0.0)(b)
    x = TwoInputMaskedLayer()([ma, mb])
    x = L.LSTM(4)(x)
    return keras.Model([a, b], L.Dense(1)(x), name="two_input_custom_layer_mask")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/19794",
    "A custom per-step layer without supports_masking between Embedding(mask_zero) and "
    "a GRU: Keras warns it 'will destroy the mask', the GRU then reads padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def custom_layer_destroys_mask():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    x = Scale()(x)
    x = L.GRU(4)(x)
    return keras.Model(i, L.Dense(2)(x), name="custom_layer_destroys_mask")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/40085",
    "'Lambda layer does not compute masked values properly': Masking(-10) -> Lambda(x - "
    "0.5) changes the padded steps' values, but real steps are untouched.",
    data=floats("x", 1, lengths=(2, 1, 2), time=3, left=(1,), pad=-10.0),
    pad={"x": -10.0},
)
def lambda_after_masking_padded_values():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(mask_value=-10.0)(i)
    return keras.Model(i, L.Lambda(lambda t: t - 0.5)(x), name="lambda_after_masking")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/3086",
    "Masking -> Activation('softmax') on a (batch, time) input: the padded zeros are "
    "still in the softmax's denominator.",
    data=lambda: {"scores": _lengths_floats((6, 3, 4), 6, (), left=(2,))},
    pad={"scores": 0.0},
)
def softmax_over_masked_positions():
    i = keras.Input((None,), name="scores")
    x = L.Masking(0.0)(i)
    return keras.Model(i, L.Activation("softmax")(x), name="softmax_over_masked_positions")


# Attention


@case(
    "bug",
    "https://github.com/tensorflow/tensorflow/issues/49237",
    "Hand-built [B, T, S] attention_mask for MultiHeadAttention with the padding on the "
    "wrong axis (queries instead of keys): real queries attend to padded keys.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def mha_attention_mask_wrong_axis():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8)(i)
    keep = ops.not_equal(i, 0)
    att = ops.logical_and(ops.expand_dims(keep, 2), ops.ones_like(ops.expand_dims(keep, 1)))
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, attention_mask=att)
    return keras.Model(i, L.Dense(3)(x), name="mha_attention_mask_wrong_axis")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/49237",
    "The same report's answer: attention_mask[b, t, s] = keep[b, s] masks the padded "
    "keys, so real queries never see padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def mha_attention_mask_keys():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8)(i)
    keep = ops.not_equal(i, 0)
    att = ops.logical_and(ops.ones_like(ops.expand_dims(keep, 2)), ops.expand_dims(keep, 1))
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, attention_mask=att)
    return keras.Model(i, L.Dense(3)(x), name="mha_attention_mask_keys")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/20455",
    "Masking -> MultiHeadAttention -> GlobalAveragePooling1D: Keras warns that 'query', "
    "'key', 'value' (EinsumDense) destroy the mask, but MHA applies it.",
    data=floats("x", 4, lengths=(6, 3, 4), time=7, left=(2,), pad=0.0),
    pad={"x": 0.0},
)
def mha_implicit_mask_warning():
    i = keras.Input((None, 4), name="x")
    x = L.Masking(0.0)(i)
    x = L.MultiHeadAttention(num_heads=2, key_dim=3)(x, x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(2)(x), name="mha_implicit_mask_warning")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/18543",
    "PositionalEmbedding (mask from ids) -> self-attention -> GlobalMaxPooling1D: the "
    "mask reaches the attention, but the max pools over padded positions.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def positional_embedding_attention_max_pool():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = PositionalEmbedding(16, 20, 8)(i)
    a = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    x = L.LayerNormalization()(x + a)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(i, L.Dense(2)(x), name="positional_embedding_attention_max_pool")


@case(
    "bug",
    "https://github.com/tensorflow/tensorflow/issues/41294",
    "Attention()([query, value, key]) on Dense projections of a mask_zero embedding, "
    "then keras.ops.mean over time: the ops call averages the padded steps too.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def attention_then_ops_mean():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    q = L.Dense(8)(x)
    v = L.Dense(8)(x)
    k = L.Dense(8)(x)
    x = L.Attention()([q, v, k])
    x = ops.mean(x, axis=1)
    return keras.Model(i, L.Dense(2)(x), name="attention_then_ops_mean")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/41294",
    "Attention()([query, value, key]) followed by GlobalAveragePooling1D: query and "
    "value masks are applied and the pooling uses the query mask.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def attention_qvk_masked_pooling():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    q = L.Dense(8)(x)
    v = L.Dense(8)(x)
    k = L.Dense(8)(x)
    x = L.Attention()([q, v, k])
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, L.Dense(2)(x), name="attention_qvk_masked_pooling")


# keras-hub


def _hub():
    import keras_hub

    return keras_hub


@case(
    "correct",
    "https://github.com/keras-team/keras-hub/issues/2220",
    "TransformerEncoder after Embedding(mask_zero=True): the report says the implicit "
    "mask is silently ignored and attention covers padding tokens.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def hub_transformer_encoder_implicit_mask():
    hub = _hub()
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    x = hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2)(x)
    return keras.Model(i, x, name="hub_transformer_encoder_implicit_mask")


@case(
    "correct",
    "https://github.com/keras-team/keras-hub/pull/2297",
    "TransformerEncoder with an explicit padding_mask input, as the docs fix shows: "
    "padded token contents cannot reach real positions.",
    data=lambda: {
        "token_ids": (t := _lengths_tokens((6, 3, 4), 7, 20, left=(2,))),
        "padding_mask": t != 0,
    },
    pad={"token_ids": 0},
    masks={"padding_mask": "token_ids"},
)
def hub_transformer_encoder_padding_mask():
    hub = _hub()
    i = keras.Input((None,), dtype="int32", name="token_ids")
    m = keras.Input((None,), dtype="bool", name="padding_mask")
    x = L.Embedding(20, 8)(i)
    x = hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2)(x, padding_mask=m)
    return keras.Model([i, m], L.Dense(2)(x), name="hub_transformer_encoder_padding_mask")


@case(
    "correct",
    "https://github.com/keras-team/keras-hub/issues/2141",
    "TokenAndPositionEmbedding(mask_zero=True) -> TransformerDecoder: UserWarnings say "
    "PositionEmbedding and EinsumDense destroy the mask, yet the decoder masks padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def hub_token_position_embedding_decoder():
    hub = _hub()
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = hub.layers.TokenAndPositionEmbedding(20, 16, 8, mask_zero=True)(i)
    x = hub.layers.TransformerDecoder(intermediate_dim=16, num_heads=2)(decoder_sequence=x)
    return keras.Model(i, L.Dense(3)(x), name="hub_token_position_embedding_decoder")


# Recurrent layers, wrappers, nesting


def _seq2seq_tokens():
    """Encoder and decoder token rows of the two seq2seq reports."""
    return {
        "encoder_tokens": _lengths_tokens((5, 3, 4), 6, 30, left=(), seed=1),
        "decoder_tokens": _lengths_tokens((4, 2, 3), 5, 30, left=(), seed=2),
    }


@case(
    "bug",
    "https://github.com/keras-team/keras/pull/5795",
    "Seq2seq decoder LSTM given the encoder's states as initial_state: with the "
    "initial state in the call, the decoder embedding's mask does not reach the LSTM.",
    data=_seq2seq_tokens,
    pad={"encoder_tokens": 0, "decoder_tokens": 0},
)
def seq2seq_initial_state():
    enc = keras.Input((None,), dtype="int32", name="encoder_tokens")
    dec = keras.Input((None,), dtype="int32", name="decoder_tokens")
    x = L.Embedding(30, 8, mask_zero=True)(enc)
    _, h, c = L.LSTM(8, return_state=True)(x)
    y = L.Embedding(30, 8, mask_zero=True)(dec)
    y = L.LSTM(8)(y, initial_state=[h, c])
    return keras.Model([enc, dec], L.Dense(4)(y), name="seq2seq_initial_state")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/7179",
    "Masking the source sequence of an encoder-decoder: Embedding(mask_zero) -> LSTM "
    "encoder whose states start the decoder; the decoder gets its mask explicitly.",
    data=_seq2seq_tokens,
    pad={"encoder_tokens": 0, "decoder_tokens": 0},
)
def seq2seq_explicit_decoder_mask():
    enc = keras.Input((None,), dtype="int32", name="encoder_tokens")
    dec = keras.Input((None,), dtype="int32", name="decoder_tokens")
    x = L.Embedding(30, 8, mask_zero=True)(enc)
    _, h, c = L.LSTM(8, return_state=True)(x)
    emb = L.Embedding(30, 8, mask_zero=True)
    y = emb(dec)
    y = L.LSTM(8)(y, initial_state=[h, c], mask=ops.not_equal(dec, 0))
    return keras.Model([enc, dec], L.Dense(4)(y), name="seq2seq_explicit_decoder_mask")


@case(
    "bug",
    "https://github.com/keras-team/keras/pull/5966",
    "Hand-made bidirectional LSTM: a go_backwards=True LSTM concatenated with the "
    "forward one without reversing its output, so steps are misaligned with padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def go_backwards_unreversed_concat():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    f = L.LSTM(4, return_sequences=True)(x)
    b = L.LSTM(4, return_sequences=True, go_backwards=True)(x)
    x = L.Concatenate()([f, b])
    return keras.Model(i, L.Dense(2)(x), name="go_backwards_unreversed_concat")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/7244",
    "'Masking with Bidirectional LSTMs not working?': Masking -> Bidirectional(LSTM, "
    "return_sequences) -> TimeDistributed(Dense); Keras reverses the mask too.",
    data=floats("x", 3, lengths=(6, 3, 4), time=7, left=(), pad=0.0),
    pad={"x": 0.0},
)
def bidirectional_masked_sequence_labeler():
    i = keras.Input((None, 3), name="x")
    x = L.Masking(0.0)(i)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    x = L.Dropout(0.5)(x)
    x = L.TimeDistributed(L.Dense(1))(x)
    return keras.Model(i, x, name="bidirectional_masked_sequence_labeler")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/4786",
    "TimeDistributed(Embedding(mask_zero)) -> TimeDistributed(LSTM) -> LSTM over "
    "sentences of words: the word mask does not reach the inner LSTM.",
    data=lambda: {"words": _nested_tokens()},
    pad={"words": 0},
)
def timedistributed_embedding_hierarchy():
    i = keras.Input((None, 5), dtype="int32", name="words")
    x = L.TimeDistributed(L.Embedding(20, 6, mask_zero=True))(i)
    x = L.TimeDistributed(L.LSTM(5))(x)
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(3, activation="softmax")(x), name="td_embedding_hierarchy")


def _nested_tokens():
    """(batch, sentences, words): sentences padded at the end, words right-padded."""
    rng = np.random.default_rng(3)
    x = np.zeros((3, 4, 5), dtype="int32")
    for b, n_sent in enumerate((4, 2, 3)):
        for s in range(n_sent):
            n = int(rng.integers(2, 6))
            x[b, s, :n] = rng.integers(1, 20, size=n)
    return x


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/10763",
    "Masking -> TimeDistributed(Sequential([Dense, Activation('elu')])) -> LSTM: "
    "crashed in Keras 2.2.0; the per-step Sequential cannot mix steps.",
    data=floats("x", 2, lengths=(3, 2, 1), time=3, left=(2,), pad=-100.0),
    pad={"x": -100.0},
)
def timedistributed_sequential_then_lstm():
    i = keras.Input((None, 2), name="x")
    x = L.Masking(mask_value=-100.0)(i)
    s = keras.Sequential([keras.Input((2,)), L.Dense(5), L.Activation("elu")])
    x = L.TimeDistributed(s)(x)
    x = L.LSTM(10)(x)
    return keras.Model(i, x, name="timedistributed_sequential_then_lstm")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/48678",
    "Masking on 5-D (time, rows, cols, channels) input before ConvLSTM2D: 'I get an "
    "error telling me my dimensions are mismatched'.",
    data=floats("frames", (4, 4, 1), lengths=(4, 2, 3), time=5, left=(), pad=0.0),
    pad={"frames": 0.0},
)
def masking_5d_convlstm2d():
    i = keras.Input((None, 4, 4, 1), name="frames")
    x = L.Masking(mask_value=0.0)(i)
    x = L.ConvLSTM2D(3, (3, 3), activation="relu", padding="same")(x)
    x = L.MaxPooling2D((2, 2), padding="same")(x)
    x = L.Flatten()(x)
    return keras.Model(i, L.Dense(1, activation="sigmoid")(x), name="masking_5d_convlstm2d")


@case(
    "correct",
    "https://github.com/keras-team/keras/pull/23175",
    "An Embedding(mask_zero) wrapped in its own functional Model, called from an "
    "outer model before a SimpleRNN: nested functional models drop the mask.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def nested_functional_embedding():
    inner_in = keras.Input((None,), dtype="int32")
    inner = keras.Model(inner_in, L.Embedding(20, 6, mask_zero=True)(inner_in), name="embed")
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = inner(i)
    x = L.SimpleRNN(4)(x)
    return keras.Model(i, L.Dense(1)(x), name="nested_functional_embedding")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/31638",
    "'Mask is not propagated into Sequential keras layers': Masking -> nested "
    "Sequential([LSTM]) -> Dense; Keras 3 passes the mask into the nested model.",
    data=floats("x", 3, lengths=(6, 3, 4), time=7, left=(2,), pad=0.0),
    pad={"x": 0.0},
)
def masking_into_nested_sequential():
    i = keras.Input((None, 3), name="x")
    x = L.Masking(0.0)(i)
    x = keras.Sequential([keras.Input((None, 3)), L.LSTM(4)], name="inner")(x)
    return keras.Model(i, L.Dense(1)(x), name="masking_into_nested_sequential")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/1300",
    "Left-padded zero steps fed to a SimpleRNN with no mask at all: the biases turn the "
    "all-zero steps into a state that depends on how much padding there was.",
    data=floats("x", 3, lengths=(6, 3, 4), time=7, left=(0, 1, 2), pad=0.0),
    pad={"x": 0.0},
)
def unmasked_rnn_left_padding():
    i = keras.Input((None, 3), name="x")
    x = L.SimpleRNN(4, bias_initializer="random_normal")(i)  # trained biases are not 0
    return keras.Model(i, L.Dense(1)(x), name="unmasked_rnn_left_padding")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/30745",
    "Left-padded sequences (pad_sequences default) with Embedding(mask_zero) -> GRU: "
    "cuDNN wants right padding, but masked left padding is skipped correctly.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(0, 1, 2)),
    pad={"token_ids": 0},
)
def left_padded_masked_gru():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    x = L.GRU(4)(x)
    return keras.Model(i, L.Dense(2)(x), name="left_padded_masked_gru")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/13189",
    "Embedding(mask_zero) -> Bidirectional(LSTM, return_sequences) -> "
    "BatchNormalization -> Flatten -> Dense: 'Layer flatten does not support masking'.",
    data=tokens("token_ids", lengths=(8, 3, 5), time=8, left=()),
    pad={"token_ids": 0},
)
def flatten_after_bilstm():
    i = keras.Input((8,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    x = L.SpatialDropout1D(0.3)(x)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    x = L.BatchNormalization()(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.5)(x)
    return keras.Model(i, L.Dense(3, activation="sigmoid")(x), name="flatten_after_bilstm")


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/39146",
    "'Loss over a padded and masked sequence': Masking(-1) -> LSTM(return_sequences) "
    "-> per-step output; the loss should divide by the real length only.",
    data=floats("x", 2, lengths=(6, 3, 4), time=7, left=(), pad=-1.0),
    pad={"x": -1.0},
    loss="mse",
    targets=lambda d: np.tanh(d["x"][..., :1]),
)
def masked_lstm_sequence_loss():
    i = keras.Input((None, 2), name="x")
    x = L.Masking(mask_value=-1.0)(i)
    x = L.LSTM(4, return_sequences=True)(x)
    return keras.Model(i, L.Dense(1)(x), name="masked_lstm_sequence_loss")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/15323",
    "'tf.keras computes incorrect loss values with Masking': a per-step Conv1D head after "
    "the masked LSTM drops the mask, so padded steps count in the loss.",
    data=floats("x", 2, lengths=(6, 3, 4), time=7, left=(), pad=-1.0),
    pad={"x": -1.0},
    loss="mse",
    targets=lambda d: np.tanh(d["x"][..., :1]),
)
def conv_head_loss_counts_padding():
    i = keras.Input((None, 2), name="x")
    x = L.Masking(mask_value=-1.0)(i)
    x = L.LSTM(4, return_sequences=True)(x)
    x = L.Conv1D(1, 1)(x)
    return keras.Model(i, x, name="conv_head_loss_counts_padding")


@case(
    "bug",
    "https://github.com/bojone/bert4keras/issues/151",
    "The same supports_masking=True hack on a strided Conv1D: the mask keeps the input's "
    "length, the output has half of it, and the next LSTM cannot apply it.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=8, left=()),
    pad={"token_ids": 0},
)
def strided_conv1d_forced_supports_masking():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 4, mask_zero=True)(i)
    x = MaskedConv1D(filters=4, kernel_size=3, strides=2, padding="same")(x)
    x = L.LSTM(3)(x)
    return keras.Model(i, L.Dense(1)(x), name="strided_conv1d_forced_supports_masking")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/15980",
    "'TimeDistributed(Flatten()) does not support masking': Masking on (time, 5, 4) "
    "windows -> TimeDistributed(LSTM) -> TimeDistributed(Flatten) -> LSTM.",
    data=floats("windows", (5, 4), lengths=(6, 3, 4), time=6, left=(), pad=0.0),
    pad={"windows": 0.0},
)
def timedistributed_flatten_masked_windows():
    i = keras.Input((None, 5, 4), name="windows")
    x = L.Masking(0.0)(i)
    x = L.TimeDistributed(L.LSTM(3, return_sequences=True))(x)
    x = L.TimeDistributed(L.Flatten())(x)
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(1)(x), name="timedistributed_flatten_masked_windows")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/10895",
    "'I must ignore padded zeros' when averaging embeddings: AveragePooling1D after "
    "Embedding(mask_zero) drops the mask, so padded embeddings enter the average.",
    data=tokens("input", lengths=(6, 3, 4), time=6, vocab=10, left=(2,)),
    pad={"input": 0},
)
def average_pooling_over_padded_embeddings():
    i = keras.Input((None,), dtype="int32", name="input")
    x = L.Embedding(10, 4, mask_zero=True)(i)
    x = L.AveragePooling1D(pool_size=2, padding="same")(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, x, name="average_pooling_over_padded_embeddings")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/4978",
    "'Support for masking in flatten and reshape layers': Embedding(mask_zero) -> "
    "Reshape pairing steps -> LSTM; the reshaped steps carry padding unmasked.",
    data=tokens("token_ids", lengths=(8, 3, 6), time=8, left=()),
    pad={"token_ids": 0},
)
def reshape_after_masked_embedding():
    i = keras.Input((8,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 4, mask_zero=True)(i)
    x = L.Reshape((4, 8))(x)
    x = L.LSTM(4)(x)
    return keras.Model(i, L.Dense(2)(x), name="reshape_after_masked_embedding")


@case(
    "bug",
    "https://github.com/ageron/handson-ml2/issues/369",
    "compute_mean_embedding (sum / sqrt(count of non-zero vectors)) after "
    "Embedding(mask_zero): '<pad> tokens => zero vectors' is false, padding is summed.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def mean_embedding_assumes_zero_padding():
    def compute_mean_embedding(inputs):
        not_pad = ops.count_nonzero(inputs, axis=-1)
        n_words = ops.count_nonzero(not_pad, axis=-1)
        sqrt_n_words = ops.sqrt(ops.cast(ops.expand_dims(n_words, -1), "float32"))
        return ops.sum(inputs, axis=1) / sqrt_n_words

    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32", name="token_ids"),
            L.Embedding(20, 8, mask_zero=True),
            L.Lambda(compute_mean_embedding, output_shape=(8,)),
            L.Dense(10, activation="relu"),
            L.Dense(1, activation="sigmoid"),
        ],
        name="mean_embedding_assumes_zero_padding",
    )


@keras.saving.register_keras_serializable(package="reported_bugs")
class KeyMaskedSelfAttention(keras.Model):
    """Kyubyong/transformer#33: key mask = sign(|sum(keys)|), keys = tokens + positions."""

    def __init__(self, vocab=20, maxlen=16, dim=8, **kwargs):
        super().__init__(**kwargs)
        self.tok = L.Embedding(vocab, dim)
        self.pos = L.Embedding(maxlen, dim)
        self.mha = L.MultiHeadAttention(num_heads=2, key_dim=4)
        self.out = L.Dense(3)

    def call(self, token_ids):
        x = self.tok(token_ids) + self.pos(ops.arange(ops.shape(token_ids)[1]))
        key_masks = ops.sign(ops.abs(ops.sum(x, axis=-1)))  # never 0 once positions are added
        att = ops.cast(ops.expand_dims(key_masks, 1), "bool")
        att = ops.logical_and(att, ops.ones_like(ops.expand_dims(key_masks, 2), dtype="bool"))
        return self.out(self.mha(x, x, attention_mask=att))


@case(
    "bug",
    "https://github.com/Kyubyong/transformer/issues/33",
    "'does the key masking work?': a subclassed transformer builds its key mask from "
    "the sum of token + position embeddings, which is never zero on padding.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def key_mask_from_embedding_sum():
    model = KeyMaskedSelfAttention(name="key_mask_from_embedding_sum")
    model(np.zeros((1, 7), "int32"))
    return model


@keras.saving.register_keras_serializable(package="reported_bugs")
class TutorialPositionalEmbedding(keras.layers.Layer):
    """The TF transformer tutorial's layer: scaled embedding + sinusoids, its mask."""

    def __init__(self, vocab_size, d_model, **kwargs):
        super().__init__(**kwargs)
        self.d_model = d_model
        self.embedding = L.Embedding(vocab_size, d_model, mask_zero=True)
        depth = d_model / 2
        positions = np.arange(64)[:, None]
        angle = positions / (10000 ** (np.arange(depth)[None, :] / depth))
        self.pos_encoding = np.concatenate([np.sin(angle), np.cos(angle)], -1).astype("float32")

    def compute_mask(self, x, mask=None):
        return self.embedding.compute_mask(x, mask)

    def call(self, x):
        length = ops.shape(x)[1]
        x = self.embedding(x) * ops.sqrt(ops.cast(self.d_model, "float32"))
        return x + ops.convert_to_tensor(self.pos_encoding[None, :length, :])


@keras.saving.register_keras_serializable(package="reported_bugs")
class TutorialClassifier(keras.Model):
    """A subclassed model: tutorial embedding -> self-attention + Add -> pooled logits.

    With `explicit_mask`, the pooling gets the embedding's mask as an argument
    instead of relying on the mask travelling with the tensors.
    """

    def __init__(self, explicit_mask=False, **kwargs):
        super().__init__(**kwargs)
        self.explicit_mask = explicit_mask
        self.pos_embedding = TutorialPositionalEmbedding(20, 8)
        self.mha = L.MultiHeadAttention(num_heads=2, key_dim=4)
        self.add = L.Add()  # the tutorial: "+" would drop the mask, Add() should keep it
        self.norm = L.LayerNormalization()
        self.pool = L.GlobalAveragePooling1D()
        self.out = L.Dense(2)

    def call(self, token_ids):
        x = self.pos_embedding(token_ids)
        x = self.norm(self.add([x, self.mha(query=x, value=x, key=x)]))
        if self.explicit_mask:
            return self.out(self.pool(x, mask=self.pos_embedding.compute_mask(token_ids)))
        return self.out(self.pool(x))

    def get_config(self):
        return {**super().get_config(), "explicit_mask": self.explicit_mask}


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/19817",
    "'Merge layers do not pass masks to the compute_mask function': in a subclassed model "
    "the TF tutorial's Add() of embedding and attention loses the mask before pooling.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def subclassed_add_drops_mask():
    model = TutorialClassifier(name="subclassed_add_drops_mask")
    model(np.zeros((1, 7), "int32"))
    return model


@case(
    "correct",
    "https://github.com/tensorflow/tensorflow/issues/45854",
    "'MultiHeadAttention masking mechanism', subclassed tutorial model whose pooling is "
    "given the embedding's padding mask explicitly.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=()),
    pad={"token_ids": 0},
)
def subclassed_explicit_pooling_mask():
    model = TutorialClassifier(explicit_mask=True, name="subclassed_explicit_pooling_mask")
    model(np.zeros((1, 7), "int32"))
    return model


@case(
    "correct",
    "https://github.com/philipperemy/keras-tcn/issues/89",
    "'Could you support Masking layer?' for a TCN: causal Conv1D layers after Masking "
    "look like the classic conv-after-mask bug, but right padding never reaches real steps.",
    data=floats("signal", 2, lengths=(7, 3, 5), time=8, left=(), pad=0.0),
    pad={"signal": 0.0},
)
def causal_conv_after_masking():
    i = keras.Input((None, 2), name="signal")
    x = L.Masking(0.0)(i)
    x = L.Conv1D(4, 3, padding="causal", dilation_rate=1, activation="relu")(x)
    x = L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu")(x)
    return keras.Model(i, L.Dense(3, activation="softmax")(x), name="causal_conv_after_masking")


@case(
    "correct",
    "https://github.com/keras-team/keras/issues/1569",
    "'Masked RNNs return zero vectors for masked inputs and not a valid state': with "
    "return_state the LSTM's states are those of the last real step.",
    data=floats("x", 3, lengths=(6, 3, 4), time=7, left=(2,), pad=0.0),
    pad={"x": 0.0},
)
def masked_lstm_return_state():
    i = keras.Input((None, 3), name="x")
    x = L.Masking(0.0)(i)
    _, h, c = L.LSTM(4, return_state=True)(x)
    return keras.Model(i, L.Dense(2)(L.Concatenate()([h, c])), name="masked_lstm_return_state")


@case(
    "bug",
    "https://github.com/keras-team/tf-keras/issues/179",
    "LSTM VAE on padded series: Masking -> LSTM encoder -> RepeatVector -> LSTM decoder; "
    "RepeatVector drops the mask, so the reconstruction loss counts padded steps.",
    data=floats("series", 1, lengths=(8, 4, 6), time=8, left=(), pad=-1.0),
    pad={"series": -1.0},
    loss="mse",
    targets=lambda d: d["series"],
)
def repeatvector_autoencoder_loss():
    i = keras.Input((8, 1), name="series")
    x = L.Masking(mask_value=-1.0)(i)
    x = L.LSTM(6, return_sequences=True)(x)
    z = L.Dense(3)(L.LSTM(6)(x))
    y = L.RepeatVector(8)(z)
    y = L.LSTM(6, return_sequences=True)(y)
    y = L.TimeDistributed(L.Dense(1))(y)
    return keras.Model(i, y, name="repeatvector_autoencoder_loss")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/4962",
    "Attention on top of an LSTM for text classification: Dense(1, tanh) -> Flatten -> "
    "softmax -> RepeatVector -> Permute -> multiply -> sum; the softmax covers padding.",
    data=tokens("words", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"words": 0},
)
def flatten_softmax_attention_over_lstm():
    i = keras.Input((None,), dtype="int32", name="words")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    activations = L.LSTM(8, return_sequences=True)(x)
    w = L.Dense(1, activation="tanh")(activations)
    w = L.Flatten()(w)
    w = L.Activation("softmax")(w)
    w = L.RepeatVector(8)(w)
    w = L.Permute([2, 1])(w)
    weighted = L.Multiply()([activations, w])
    rep = L.Lambda(lambda t: ops.sum(t, axis=-2), output_shape=(8,))(weighted)
    return keras.Model(i, L.Dense(2)(rep), name="flatten_softmax_attention_over_lstm")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/2612",
    "'Implementing simple neural attention model (for padded inputs)': a Lambda averages "
    "the per-step softmax over all timesteps, next to a Lambda taking the last step.",
    data=tokens("sentence", lengths=(6, 3, 4), time=7, left=()),
    pad={"sentence": 0},
)
def lambda_average_over_timesteps():
    i = keras.Input((None,), dtype="int32", name="sentence")
    x = L.Embedding(20, 6, mask_zero=True)(i)
    lstm_out = L.LSTM(8, return_sequences=True)(x)
    attention = L.TimeDistributed(L.Dense(5, activation="softmax"))(lstm_out)
    context = L.Lambda(lambda t: ops.mean(t, axis=1), output_shape=(5,))(attention)
    last = L.Lambda(lambda t: t[:, -1, :], output_shape=(8,))(lstm_out)
    return keras.Model(i, L.Concatenate()([last, context]), name="lambda_average_over_timesteps")


@case(
    "bug",
    "https://github.com/keras-team/keras/issues/12475",
    "'Conv1d Still does not support masking': the text CNN Embedding(mask_zero) -> "
    "Conv1D -> GlobalMaxPooling1D, where padded embeddings enter the windows and the max.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def text_cnn_over_padding():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    x = L.Conv1D(6, 3, padding="same", activation="relu")(x)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(i, L.Dense(2, activation="softmax")(x), name="text_cnn_over_padding")


@keras.saving.register_keras_serializable(package="reported_bugs")
class TemporalSoftmax(keras.layers.Layer):
    """The masking guide's layer, with the softmax over time as keras-io#1904 corrects it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        m = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        inputs_exp = ops.exp(inputs) * m
        return inputs_exp / ops.sum(inputs_exp, axis=1, keepdims=True)


@case(
    "correct",
    "https://github.com/keras-team/keras-io/pull/1904",
    "The 'Understanding masking & padding' guide's TemporalSoftmax after "
    "Embedding(mask_zero) -> Dense(1): a custom layer that applies the mask itself.",
    data=tokens("token_ids", lengths=(6, 3, 4), time=7, left=(2,)),
    pad={"token_ids": 0},
)
def guide_temporal_softmax():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(20, 8, mask_zero=True)(i)
    x = L.Dense(1)(x)
    return keras.Model(i, TemporalSoftmax()(x), name="guide_temporal_softmax")


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class Truth:
    verdict: str  # "leak", "crash" or "clean"
    max_change: float  # largest change of a real output, relative to the outputs' scale
    checks: tuple[str, ...]  # the tests that ran
    detail: str = ""


def _run(model, x):
    # One input goes in as the array (subclassed models take a tensor, not a dict).
    out = model(next(iter(x.values())) if len(x) == 1 else dict(x), training=False)
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(keras.ops.convert_to_numpy(o), dtype="float64") for o in out]


def _keep(c: Case, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Real positions, (batch, time) booleans, for each sequence input."""
    keep = {}
    for name, pad in c.pad.items():
        arr = x[name]
        differs = arr != pad
        keep[name] = differs if arr.ndim == 2 else np.any(differs, axis=tuple(range(2, arr.ndim)))
    for mname, seq in c.masks.items():
        keep[seq] = np.asarray(x[mname]).astype(bool)
    return keep


def _append(c: Case, x, n):
    out = dict(x)
    for name, pad in c.pad.items():
        a = x[name]
        extra = np.full((a.shape[0], n, *a.shape[2:]), pad, dtype=a.dtype)
        out[name] = np.concatenate([a, extra], axis=1)
    for mname in c.masks:
        a = np.asarray(x[mname])
        out[mname] = np.concatenate([a, np.zeros((a.shape[0], n), dtype=a.dtype)], axis=1)
    return out


def _step_inputs(ref, times, longer=None):
    """For each output, the sequence input whose time axis its axis 1 follows (None
    for a time-less output). With the append run at hand, an output is per-step when
    it grew by the EXTRA appended steps; otherwise when its axis 1 has an input's length."""
    steps = []
    for i, o in enumerate(ref):
        name = None
        if o.ndim >= 2:
            for n, t in times.items():
                grew = longer is None or (longer[i].ndim >= 2 and longer[i].shape[1] == t + EXTRA)
                if o.shape[1] == t and grew:
                    name = n
                    break
        steps.append(name)
    return steps


def _compare(ref, new, keep, steps, *, starts=None, scale=1.0):
    """Largest change of real outputs between runs `ref` and `new` (same rows).

    Per-step outputs (`steps[i]` names their sequence input) are compared at real
    positions; `starts[name]` is where `new`'s time axis begins inside `ref`'s
    (0 unless leading padding was cut). Time-less outputs are compared whole.
    """
    worst = 0.0
    for o, p, name in zip(ref, new, steps, strict=True):
        if name is not None and p.ndim >= 2:
            s = (starts or {}).get(name, 0)
            t = min(o.shape[1] - s, p.shape[1])
            sel = keep[name][:, s : s + t]
            a, b = o[:, s : s + t][sel], p[:, :t][sel]
        else:
            if o.shape != p.shape:
                return float("inf")
            a, b = o, p
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - b))))
    return worst / scale


def _scale(outs):
    m = max((float(np.max(np.abs(o))) for o in outs if o.size), default=1.0)
    return max(m, 1e-3)


def _loss_value(model, c: Case, x, y):
    model.compile(loss=c.loss)
    res = model.evaluate(dict(x), y, batch_size=len(y), verbose=0, return_dict=True)
    return float(res["loss"])


def _loss_truth(model, c: Case, x, keep, variable):
    """Relative change of the compiled loss when only padded steps' targets change,
    and (variable length) when EXTRA padded steps with arbitrary targets are appended."""
    rng = np.random.default_rng(7)
    y = np.asarray(c.targets(x), dtype="float32")
    k = keep[next(iter(c.pad))]
    base = _loss_value(model, c, x, y)

    def noisy(y, k):
        k = k.reshape(k.shape + (1,) * (y.ndim - 2))
        return np.where(k, y, rng.normal(size=y.shape).astype("float32"))

    worst = abs(_loss_value(model, c, x, noisy(y, k)) - base)
    if variable:
        longer_y = np.concatenate([y, np.zeros((len(y), EXTRA, *y.shape[2:]), "float32")], 1)
        longer_k = np.concatenate([k, np.zeros((len(y), EXTRA), bool)], axis=1)
        longer = _append(c, x, EXTRA)
        worst = max(worst, abs(_loss_value(model, c, longer, noisy(longer_y, longer_k)) - base))
    return worst / max(abs(base), 1e-3)


def _unpadded(c: Case, x, keep):
    """`x` with every padded position filled with real content (masks all true)."""
    rng = np.random.default_rng(5)
    out = dict(x)
    for name in c.pad:
        a, k = x[name], keep[name]
        real = a[k]  # (n_real_steps, *features)
        fill = real[rng.integers(0, len(real), size=k.shape)]
        out[name] = np.where(k.reshape(k.shape + (1,) * (a.ndim - 2)), a, fill)
    for mname in c.masks:
        out[mname] = np.ones_like(x[mname])
    return out


def truth(c: Case, model=None) -> Truth:
    """Measures whether padding reaches `c`'s real outputs (or loss) on this Keras."""
    try:
        model = model if model is not None else c.build()
    except Exception as e:  # Keras rejects the model while building it on masked input
        return Truth("crash", float("nan"), ("build",), f"{type(e).__name__}: {e}"[:300])
    x = c.data()
    keep = _keep(c, x)
    try:
        ref = _run(model, x)
    except Exception as e:
        detail = f"{type(e).__name__}: {e}"[:300]
        try:  # Tell a padding-triggered crash from one any mask (or any input) triggers.
            _run(model, _unpadded(c, x, keep))
            detail = "only with padding: " + detail
        except Exception:
            detail = "also without padding: " + detail
        return Truth("crash", float("nan"), ("run",), detail)
    times = {n: x[n].shape[1] for n in c.pad}
    scale = _scale(ref)
    checks, worst, variable = [], 0.0, True
    detail = []

    # 1. Append padding.
    try:
        longer = _run(model, _append(c, x, EXTRA))
    except Exception:  # a fixed-length model
        variable, longer = False, None
    steps = _step_inputs(ref, times, longer)
    if variable:
        checks.append("append")
        ch = _compare(ref, longer, keep, steps, scale=scale)
        detail.append(f"append={ch:.3g}")
        worst = max(worst, ch)

    # 2. Cut each padded row to its real span (leading and trailing padding).
    if variable:
        n_rows = len(next(iter(x.values())))
        for r in range(n_rows):
            spans = {}
            for name in c.pad:
                real = np.flatnonzero(keep[name][r])
                spans[name] = (int(real[0]), int(real[-1]) + 1) if real.size else (0, 0)
            if all(spans[n] == (0, times[n]) for n in c.pad):
                continue
            if any(e == 0 for _, e in spans.values()):
                continue
            row = {k: v[r : r + 1] for k, v in x.items()}
            for name, (s, e) in spans.items():
                row[name] = row[name][:, s:e]
            for mname, seq in c.masks.items():
                s, e = spans[seq]
                row[mname] = row[mname][:, s:e]
            try:
                short = _run(model, row)
            except Exception:
                continue
            if "truncate" not in checks:
                checks.append("truncate")
            rk = {n: keep[n][r : r + 1] for n in keep}
            starts = {n: s for n, (s, _) in spans.items()}
            ch = _compare([o[r : r + 1] for o in ref], short, rk, steps, starts=starts, scale=scale)
            worst = max(worst, ch)
            detail.append(f"truncate[{r}]={ch:.3g}")

    # 3. Perturb padded contents under an explicit mask input.
    if c.masks:
        rng = np.random.default_rng(11)
        pert = dict(x)
        for seq in set(c.masks.values()):
            a = x[seq]
            k = keep[seq].reshape(keep[seq].shape + (1,) * (a.ndim - 2))
            if np.issubdtype(a.dtype, np.integer):
                pool = a[np.broadcast_to(k, a.shape)]
                other = rng.choice(pool, size=a.shape).astype(a.dtype)
            else:
                other = rng.normal(size=a.shape).astype(a.dtype)
            pert[seq] = np.where(k, a, other)
        ch = _compare(ref, _run(model, pert), keep, steps, scale=scale)
        checks.append("perturb")
        detail.append(f"perturb={ch:.3g}")
        worst = max(worst, ch)

    # 4. Fixed length: move each right-padded row's content behind its padding.
    if not variable:
        moved = {k: v.copy() for k, v in x.items()}
        rows = []
        for name in c.pad:
            for r in range(len(x[name])):
                real = np.flatnonzero(keep[name][r])
                if real.size and real[-1] + 1 < times[name] and real[0] == 0:
                    n = int(real[-1]) + 1
                    moved[name][r] = np.roll(x[name][r], times[name] - n, axis=0)
                    rows.append(r)
        if rows:
            new = _run(model, moved)
            checks.append("pad-side")
            rows = sorted(set(rows))
            timeless = [i for i, name in enumerate(steps) if name is None]
            ch = _compare(
                [ref[i][rows] for i in timeless],
                [new[i][rows] for i in timeless],
                keep,
                [None] * len(timeless),
                scale=scale,
            )
            detail.append(f"pad-side={ch:.3g}")
            worst = max(worst, ch)

    # 5. Loss.
    if c.loss:
        ch = _loss_truth(model, c, x, keep, variable)
        checks.append("loss")
        detail.append(f"loss={ch:.3g}")
        worst = max(worst, ch)

    if not checks:
        return Truth("clean", 0.0, (), "no invariance test could run")
    verdict = "leak" if worst > RTOL else "clean"
    return Truth(verdict, worst, tuple(checks), " ".join(detail))


def maskviz_errors(c: Case, model=None) -> list[str]:
    """The rule ids of maskviz's error-level findings on `c` with its padded data."""
    import maskviz

    model = model if model is not None else c.build()
    data = c.data()
    try:
        names = {t.name for t in model.inputs}
    except (AttributeError, ValueError):  # a subclassed model has no named inputs
        names = set()
    if set(data) != names:  # positional keys, as in an .npz saved without names
        data = {f"arr_{i}": v for i, v in enumerate(data.values())}
    # The loss the case trains with, as a user gives it (`--loss`); the truth
    # measures the loss for the same cases.
    report = maskviz.inspect(model, data=data, loss=c.loss)
    return sorted({f.rule for f in report.at_or_above("error")})


# A report whose model, with only its bug repaired, is another report's model.
_TWINS = {"seq2seq_initial_state": "seq2seq_explicit_decoder_mask"}
for _c in CASES.values():
    register(
        "reported_bugs",
        _c.name,
        _c.build,
        tags=(f"expect-{_c.kind}",),
        bug=_c.summary if _c.kind == "bug" else None,
        source=_c.url,
        truth=truth,
        twin=_TWINS.get(_c.name),
    )
