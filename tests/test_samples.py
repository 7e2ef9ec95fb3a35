"""The bundled sample models: they load, they are up to date with make_samples.py, and each
buggy one shows its bug (observed on the installed Keras)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import pathlib
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import maskviz.samples  # noqa: E402
from maskviz.errors import MaskvizError  # noqa: E402
from maskviz.loading import load_model  # noqa: E402
from maskviz.samples import SAMPLES, sample_path  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
TOKENS = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]], dtype="int32")


@pytest.fixture(scope="session")
def loaded():
    """Each sample loaded once with plain Keras (after ``import maskviz.samples``)."""
    cache: dict[str, keras.Model] = {}

    def get(name: str) -> keras.Model:
        if name not in cache:
            with warnings.catch_warnings():  # Keras's own "does not support masking" ones
                warnings.simplefilter("ignore", UserWarning)
                cache[name] = keras.saving.load_model(sample_path(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def rebuilt(tmp_path_factory):
    spec = importlib.util.spec_from_file_location(
        "make_samples", REPO / "sample_models" / "make_samples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_samples(tmp_path_factory.mktemp("samples"))


def _mask(tensor):
    return getattr(tensor, "_keras_mask", None)  # test-only peek at Keras's private attribute


@contextlib.contextmanager
def _record_mask(layer):
    """Wraps `layer.call` to record the ``mask`` argument Keras gives it (restored after)."""
    seen: list = []
    original = layer.call

    @functools.wraps(original)
    def call(*args, **kwargs):
        mask = kwargs.get("mask")
        seen.append(None if mask is None else np.asarray(mask))
        return original(*args, **kwargs)

    layer.call = call
    try:
        yield seen
    finally:
        del layer.call


def _structure(path: pathlib.Path) -> dict:
    """The model's config as the installed Keras reads it back, less what Keras itself
    adds when it serialises a call (so a file saved by another Keras 3 compares equal).

    Loading normalises what a Keras version writes differently for the same layer
    (LayerNormalization saves `axis=-1` on 3.15 and `axis=2` on 3.16); the `training`
    call argument is recorded by some versions for RNN calls (3.15 writes
    `training=False`, 3.16 nothing): it is Keras's bookkeeping, not the model.
    """

    def strip(node, key=None):
        if isinstance(node, dict):
            return {
                k: strip(v, k)
                for k, v in node.items()
                if k != "shared_object_id" and not (key == "kwargs" and k == "training")
            }
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return strip(keras.saving.load_model(path).get_config())


# --------------------------------------------------------------------------- catalogue


def test_catalogue():
    assert list(SAMPLES)[-2:] == ["clean_lstm", "clean_transformer"]
    for name, (filename, description, kind) in SAMPLES.items():
        assert filename == f"{name}.keras"
        assert kind == ("clean" if name.startswith("clean_") else "bug")
        assert description and "\n" not in description
        path = sample_path(name)
        assert path.parent == pathlib.Path(maskviz.samples.__file__).parent
        assert path.is_file() and path.stat().st_size < 200 * 1024


def test_unknown_sample_name():
    with pytest.raises(MaskvizError, match="Expected one of: seq2seq_initial_state"):
        sample_path("nope")


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sample_loads(name, loaded):
    model = loaded(name)
    assert model.name == name
    assert type(load_model(sample_path(name))).__name__ == "Functional"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_committed_sample_matches_make_samples(name, rebuilt):
    """Re-running make_samples.py gives the same layer configs as the committed file (so the
    script is deterministic in structure and the committed samples are up to date)."""
    assert _structure(rebuilt[name]) == _structure(sample_path(name))


# --------------------------------------------------------------------------- the bugs


def test_seq2seq_decoder_lstm_gets_no_mask(loaded):
    model = loaded("seq2seq_initial_state")
    with (
        _record_mask(model.get_layer("decoder_lstm")) as decoder,
        _record_mask(model.get_layer("encoder_lstm")) as encoder,
    ):
        model([TOKENS, TOKENS])
    np.testing.assert_array_equal(encoder[-1], TOKENS != 0)  # a plain call gets its mask
    assert decoder[-1] is None  # called with initial_state=: the mask never arrives
    assert _mask(model.get_layer("decoder_embedding").output) is not None


@pytest.mark.parametrize(
    "name, maker, dropper",
    [
        ("conv1d_after_masking", "masking", "conv1d"),
        ("flatten_after_embedding", "embedding", "flatten"),
        ("custom_layer_no_masking", "embedding", "scale_shift"),
        ("timedistributed_embedding", None, "time_distributed_embedding"),
    ],
)
def test_mask_dropped(loaded, name, maker, dropper):
    model = loaded(name)
    if maker is not None:
        assert _mask(model.get_layer(maker).output) is not None
    assert _mask(model.get_layer(dropper).output) is None


def test_timedistributed_embedding_inner_lstm_gets_no_mask(loaded):
    model = loaded("timedistributed_embedding")
    docs = np.array([[[1, 2, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0], [0] * 6]] * 2, dtype="int32")
    with (
        _record_mask(model.get_layer("time_distributed_lstm").layer) as words,
        _record_mask(model.get_layer("sentence_lstm")) as sentences,
    ):
        model(docs)
    assert words and all(m is None for m in words)
    assert sentences and all(m is None for m in sentences)


def test_custom_layer_does_not_support_masking():
    from maskviz.samples.custom_layers import ScaleShift

    assert not ScaleShift().supports_masking


def test_masking_5d_makes_4d_mask_and_convlstm_crashes(loaded):
    model = loaded("masking_5d_convlstm")
    assert tuple(_mask(model.get_layer("masking").output).shape) == (None, None, 8, 8)
    frames = np.random.default_rng(0).random((2, 4, 8, 8, 1), dtype="float32")
    frames[:, 2:] = 0.0  # padded steps
    with pytest.raises(Exception, match="ConvLSTM2D"):
        model(frames)


def test_explicit_mask_override_survives_reload(loaded):
    model = loaded("explicit_mask_override")
    lstm = model.get_layer("lstm")
    assert [sorted(node.arguments.kwargs) for node in lstm._inbound_nodes] == [["mask"]]
    tokens_a = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 0, 0, 0, 0, 0, 0, 0]], dtype="int32")
    tokens_b = np.array([[1, 2, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]], dtype="int32")
    with _record_mask(lstm) as seen:
        model([tokens_a, tokens_b])
    np.testing.assert_array_equal(seen[-1], tokens_a != 0)  # the other sequence's mask
    assert not np.array_equal(seen[-1], tokens_b != 0)


# --------------------------------------------------------------------------- the clean ones


@pytest.mark.parametrize(
    "name, consumer", [("clean_lstm", "lstm"), ("clean_transformer", "mean_pool")]
)
def test_clean_models_deliver_the_mask(loaded, name, consumer):
    model = loaded(name)
    with _record_mask(model.get_layer(consumer)) as seen:
        model(TOKENS)
    np.testing.assert_array_equal(seen[-1], TOKENS != 0)
