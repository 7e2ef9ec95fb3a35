"""`inspect` leaves the model exactly as it was, over the whole zoo and the samples: weight
bytes, RNN states, plain-data layer attributes, outputs, and what one `fit` step does, all
compared with a twin that was never inspected. Also after a run that fails halfway and a
run interrupted by KeyboardInterrupt."""

from __future__ import annotations

import inspect as pyinspect
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from marks import slow_except  # noqa: E402
from models import zoo as zoo_module  # noqa: E402

import maskviz  # noqa: E402
from maskviz import _keras_internals as ki  # noqa: E402
from maskviz.probe import make_probe  # noqa: E402

L = keras.layers
ORIGINAL_CALL = keras.layers.Layer.__dict__["__call__"]
ZOO = sorted(
    name
    for name, fn in vars(zoo_module).items()
    if pyinspect.isfunction(fn)
    and fn.__module__ == zoo_module.__name__
    and not name.startswith("_")
    and not pyinspect.signature(fn).parameters
)
PLAIN = (int, float, str, bool, type(None))


def _plain(value):
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, PLAIN) for v in value):
        return tuple(value)
    return _SKIP


_SKIP = object()


def _attributes(model) -> dict:
    """Every layer's plain-data attributes (numbers, strings, flags, shapes)."""
    out = {}
    for i, layer in enumerate(ki.flatten_layers(model)):
        for key, value in vars(layer).items():
            if key == "_keras_mask":
                continue
            plain = _plain(value)
            if plain is not _SKIP:
                out[(i, layer.name, key)] = plain
    return out


def _state_bytes(model) -> list[bytes]:
    return [np.asarray(keras.ops.convert_to_numpy(v)).tobytes() for v in ki.state_variables(model)]


def _build(name: str):
    keras.utils.set_random_seed(0)
    if name.startswith("sample:"):
        from maskviz.loading import load_model
        from maskviz.samples import sample_path

        return load_model(sample_path(name.split(":", 1)[1]), compile=False)
    return getattr(zoo_module, name)()


def _sample_names() -> list[str]:
    from maskviz.samples import SAMPLES

    return [f"sample:{n}" for n in SAMPLES]


def _assert_untouched(model) -> None:
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_CALL
    for layer in ki.flatten_layers(model):
        assert "call" not in vars(layer), layer.name
        assert "_standardize_inputs" not in vars(layer), layer.name


def _fit_step(model, probe) -> list[np.ndarray]:
    outputs = model(probe.feed())
    flat = keras.tree.flatten(outputs)
    targets = [np.zeros(np.shape(o), "float32") for o in flat]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    y = targets[0] if len(targets) == 1 else targets
    model.fit(probe.feed(), y, epochs=1, batch_size=len(targets[0]), verbose=0, shuffle=False)
    return [np.asarray(w) for w in model.get_weights()]


def _runnable_probe(model):
    """maskviz's probe, longer if the model needs it (as `inspect` does), or None when
    the model does not run on any (its mask bug crashes it)."""
    for time in (None, 32, 128):
        probe = make_probe(model, time=time)
        try:
            model(probe.feed())
            return probe
        except Exception:
            continue
    return None


@pytest.mark.parametrize(
    "name",
    # The quick run keeps a functional, a nested, a subclassed and a crashing model and a
    # bundled sample; the full suite runs the whole zoo and every sample.
    slow_except(
        ZOO + _sample_names(),
        [
            "seq2seq_initial_state",
            "nested_encoder",
            "subclassed_tagger",
            "masking_5d_convlstm_valid",
            "sample:custom_layer_no_masking",
        ],
    ),
)
def test_inspect_leaves_the_model_as_it_was(name):
    model, twin = _build(name), _build(name)
    for a, b in zip(_state_bytes(model), _state_bytes(twin)):
        assert a == b  # the twin starts identical
    probe = _runnable_probe(model)
    if probe is None:  # a mask bug that crashes the model: state is all there is to compare
        weights, attributes = _state_bytes(model), _attributes(model)
        maskviz.inspect(model)
        _assert_untouched(model)
        assert _state_bytes(model) == weights
        assert _attributes(model) == attributes
        return
    feed = probe.feed()
    before_out = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(feed))]
    twin(feed)
    weights, attributes = _state_bytes(model), _attributes(model)

    maskviz.inspect(model)

    _assert_untouched(model)
    assert _state_bytes(model) == weights
    assert _attributes(model) == attributes
    after_out = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(feed))]
    for a, b in zip(before_out, after_out):
        np.testing.assert_array_equal(a, b)
    if not model.trainable_weights:
        return
    try:
        fitted = _fit_step(model, probe)
    except Exception as e:
        # A zoo model that cannot train on this probe: the never-inspected twin must
        # fail the same way, or inspecting broke training.
        with pytest.raises(type(e)):
            _fit_step(twin, probe)
        return
    for a, b in zip(fitted, _fit_step(twin, probe)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- failed runs


class _Raises(L.Layer):
    """Raises `error` from its call once armed: a forward pass that stops halfway, after
    the stateful RNN before it has run."""

    def __init__(self, error, **kwargs):
        super().__init__(**kwargs)
        self.error = error
        self.armed = False

    def call(self, x):
        if self.armed:
            raise self.error
        return x


def _stateful_then_raises(error):
    i = keras.Input(batch_shape=(4, None, 3), name="features")
    x = L.Masking(0.0, name="masking")(i)
    x = L.LSTM(5, stateful=True, return_sequences=True, name="lstm")(x)
    x = _Raises(error, name="raises")(x)
    return keras.Model(i, L.Dense(1, name="head")(x))


def _prepared(error):
    keras.utils.set_random_seed(1)
    model = _stateful_then_raises(error)
    data = np.random.default_rng(0).normal(size=(4, 6, 3)).astype("float32")
    model(data)  # a non-zero state to keep
    model.get_layer("raises").armed = True
    return model, _state_bytes(model), _attributes(model)


def test_a_run_that_fails_halfway_leaves_the_model_as_it_was():
    model, weights, attributes = _prepared(ValueError("broken halfway"))
    report = maskviz.inspect(model)
    assert report.trace.error and "broken halfway" in report.trace.error
    _assert_untouched(model)
    assert _state_bytes(model) == weights
    assert _attributes(model) == attributes


def test_a_keyboard_interrupt_inside_a_layer_leaves_the_model_as_it_was():
    model, weights, attributes = _prepared(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        maskviz.inspect(model)
    _assert_untouched(model)
    assert _state_bytes(model) == weights
    assert _attributes(model) == attributes
    model.get_layer("raises").armed = False  # and maskviz still works afterwards
    maskviz.inspect(model)
    assert _state_bytes(model) == weights
