"""Build the small sample models bundled in ``maskviz/samples/``: one per mask bug class,
plus two clean models.

Regenerate them (from the repository root) with::

    python sample_models/make_samples.py            # writes into maskviz/samples/
    python sample_models/make_samples.py --out DIR  # writes elsewhere

Every model is tiny (vocabulary 20, 8 units) and deterministic: each one is built after
``keras.utils.set_random_seed(0)`` and every layer and input has an explicit name, so the
same Keras version always writes the same configs and weights. ``tests/test_samples.py``
rebuilds them into a temporary directory and checks that the committed files match.

The custom layers used by ``custom_layer_no_masking.keras`` and
``explicit_mask_override.keras`` live in ``maskviz/samples/custom_layers.py`` (registered
under package ``maskviz_samples``), so the samples load with plain
``keras.saving.load_model`` after ``import maskviz.samples``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import warnings
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from maskviz.samples import SAMPLES  # noqa: E402
from maskviz.samples.custom_layers import PaddingMask, ScaleShift  # noqa: E402

VOCAB = 20
DIM = 8
UNITS = 8
SEED = 0

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[1] / "maskviz" / "samples"


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


def build_model(name: str) -> keras.Model:
    """Builds sample `name` from a fixed seed (the mask warnings Keras prints while building
    the buggy ones are the point of the sample, so they are silenced here)."""
    keras.utils.set_random_seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = BUILDERS[name]()
    _name_operations(model)
    return model


def _name_operations(model: keras.Model) -> None:
    """Gives the model's non-layer operations names that depend only on the model.

    Keras 3 records the mask it fills in for a layer's ``mask`` argument as a node input,
    computed by an operation node (``Embedding.compute_mask`` -> ``NotEqual``), and names that
    node from a process-wide counter (``not_equal_7``). Renaming keeps the saved configs
    identical however many models were built before in the process.
    """
    counts: dict[str, int] = {}
    for op in model.operations:
        if isinstance(op, layers.Layer):
            continue
        base = re.sub(r"_\d+$", "", op.name)
        n = counts.get(base, 0)
        counts[base] = n + 1
        op.name = base if n == 0 else f"{base}_{n}"


def build_samples(out_dir: str | os.PathLike[str] = DEFAULT_OUT) -> dict[str, pathlib.Path]:
    """Builds every sample in ``SAMPLES`` and saves it into `out_dir`; returns name -> path."""
    missing = set(SAMPLES) ^ set(BUILDERS)
    if missing:
        raise RuntimeError(f"SAMPLES and BUILDERS disagree about: {sorted(missing)}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (filename, _description, _kind) in SAMPLES.items():
        model = build_model(name)
        path = out / filename
        model.save(path)
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for name, path in build_samples(args.out).items():
        print(f"{name:28s} {path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
