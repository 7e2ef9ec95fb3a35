"""The instrumentation is process-wide state: one run at a time, nested patches restored
last-in-first-out, other threads untouched, no run inside a run, and every run starts from
(and leaves) the model's own state, stateful RNN states included."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import maskviz  # noqa: E402
from maskviz import _keras_internals as ki  # noqa: E402
from maskviz.errors import MaskvizError  # noqa: E402

L = keras.layers
ORIGINAL_CALL = keras.layers.Layer.__dict__["__call__"]


def _findings(report) -> list[tuple]:
    return [(f.rule, f.path, f.severity.value) for f in report.findings]


# --------------------------------------------------------------------------- patching


def test_patches_nest_and_restore_last_in_first_out():
    seen = []

    def factory(tag):
        def make(original):
            def wrapper(self, *args, **kwargs):
                seen.append(tag)
                return original(self, *args, **kwargs)

            return wrapper

        return make

    layer = L.Dense(2)
    with ki.patched_layer_call(factory("outer")):
        outer = keras.layers.Layer.__dict__["__call__"]
        with ki.patched_layer_call(factory("inner")):
            layer(np.ones((1, 3), "float32"))
        assert keras.layers.Layer.__dict__["__call__"] is outer
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_CALL
    assert seen[:2] == ["inner", "outer"]


def test_another_threads_calls_bypass_the_wrapper():
    seen = []

    def make(original):
        def wrapper(self, *args, **kwargs):
            seen.append(threading.get_ident())
            return original(self, *args, **kwargs)

        return wrapper

    layer = L.Dense(2)
    x = np.ones((1, 3), "float32")
    layer(x)
    with ki.patched_layer_call(make):
        worker = threading.Thread(target=lambda: layer(x))
        worker.start()
        worker.join()
        layer(x)
    assert seen and set(seen) == {threading.get_ident()}


def test_patch_restored_when_the_block_raises():
    with pytest.raises(RuntimeError), ki.patched_layer_call(lambda original: original):
        raise RuntimeError("boom")
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_CALL


# --------------------------------------------------------------------------- threads


def test_two_threads_give_the_sequential_findings(zoo):
    names = ["conv1d_after_masking", "weakened_mask", "clean_lstm", "flatten_after_embedding"]
    sequential = {n: _findings(maskviz.inspect(zoo[n])) for n in names}
    assert any(sequential.values())  # at least one model has findings to compare
    results: dict[str, list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(batch):
        try:
            start.wait()
            for n in batch:
                results[n] = _findings(maskviz.inspect(zoo[n]))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(names[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == sequential
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_CALL
    for n in names:
        for layer in ki.flatten_layers(zoo[n]):
            assert "call" not in vars(layer), (n, layer.name)


# --------------------------------------------------------------------------- re-entry


class _InspectsItself(keras.layers.Layer):
    """A layer whose call runs maskviz on another model (what a callback-happy user
    might write)."""

    def __init__(self, other, **kwargs):
        super().__init__(**kwargs)
        self.other = other

    def call(self, x):
        maskviz.inspect(self.other, oracle=False)
        return x


def test_inspect_inside_inspect_is_a_clear_error_and_leaves_state_intact(zoo):
    inner_model = zoo["clean_lstm"]
    i = keras.Input((5, 3), name="x")
    y = L.Dense(2, name="dense")(_InspectsItself(inner_model, name="nested")(i))
    outer = keras.Model(i, y)
    weights = [w.copy() for w in outer.get_weights()]
    with pytest.raises(MaskvizError) as excinfo:
        maskviz.inspect(outer)
    message = str(excinfo.value)
    assert "\n" not in message and "same thread" in message, message
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_CALL
    for layer in ki.flatten_layers(outer) + ki.flatten_layers(inner_model):
        assert "call" not in vars(layer), layer.name
    for before, after in zip(weights, outer.get_weights()):
        np.testing.assert_array_equal(before, after)
    # Nothing is left locked or marked: the next inspection runs normally.
    assert _findings(maskviz.inspect(inner_model)) == _findings(maskviz.inspect(inner_model))


# --------------------------------------------------------------------------- stateful


def _stateful_model(batch: int, features: int) -> keras.Model:
    i = keras.Input(batch_shape=(batch, None, features), name="features")
    x = L.Masking(0.0, name="masking")(i)
    x = L.LSTM(6, stateful=True, name="stateful_lstm")(x)
    return keras.Model(i, L.Dense(1, name="head")(x), name="stateful")


def _states(model) -> list[np.ndarray]:
    layer = model.get_layer("stateful_lstm")
    return [np.array(keras.ops.convert_to_numpy(s), copy=True) for s in layer.states]


def _run_from(model, states, x) -> np.ndarray:
    for var, value in zip(model.get_layer("stateful_lstm").states, states):
        var.assign(value)
    return keras.ops.convert_to_numpy(model(x))


def test_stateful_rnn_runs_from_its_state_and_keeps_it():
    batch, time, features = 4, 8, 3
    model = _stateful_model(batch, features)
    rng = np.random.default_rng(0)
    model(rng.normal(size=(batch, time, features)).astype("float32"))  # a non-zero state
    before = _states(model)
    assert any(np.abs(s).max() > 0 for s in before)

    # The truth, computed here by truncation: from the same state, each right-padded row
    # gives what the row cut to its real length gives, so padding does not leak.
    lengths = [time, 2, 4, 6]
    data = rng.normal(size=(batch, time, features)).astype("float32")
    for r, n in enumerate(lengths):
        data[r, n:] = 0.0
    padded = _run_from(model, before, data)
    for r, n in enumerate(lengths):
        cut = _run_from(model, before, data[:, :n])
        np.testing.assert_allclose(padded[r], cut[r], rtol=1e-5, atol=1e-5)
    _run_from(model, before, data[:, :1])  # leave the state somewhere else again ...
    before = _states(model)  # ... and take that as the state to keep

    report = maskviz.inspect(model)
    leaks = [f for f in report.findings if f.rule == "MV107"]
    assert not leaks, [f.message for f in leaks]
    for b, a in zip(before, _states(model)):
        np.testing.assert_array_equal(b, a)
