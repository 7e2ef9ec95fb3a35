"""Shared fixtures. Importing TensorFlow costs seconds: models are built once per
session and shared."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="Rewrite tests/goldens/*.dot from the current output (review the diff).",
    )


def release_compiled() -> None:
    """Drops every executable JAX has compiled and cached, when JAX is loaded.

    On JAX, Keras runs a recurrent layer called eagerly through `lax.scan` with a
    step function made anew at each call, so every call compiles a new executable
    (about a second and 2-10 MB each), and JAX keeps them all until
    `jax.clear_caches()`. The fix search calls its models hundreds of times: run
    whole, the suite grew past 6 GB and crashed inside XLA's compiler. Nothing
    else is cleared (Keras's name counters and the session's models are kept)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()


@pytest.fixture(autouse=True)
def _release_compiled_after_each_test():
    yield
    release_compiled()


@pytest.fixture(scope="session")
def release():
    """`release()`: `release_compiled` for module fixtures that run many models."""
    return release_compiled


@pytest.fixture(scope="session")
def update_goldens(request) -> bool:
    return bool(request.config.getoption("--update-goldens")) or (
        os.environ.get("MASKVIZ_UPDATE_GOLDENS") == "1"
    )


@pytest.fixture(scope="session")
def zoo():
    """Fixture models named for the bug they show (see tests/models/zoo.py), built once."""
    from models import zoo as z

    return z.Zoo()


@pytest.fixture(scope="session")
def inspected(zoo):
    """`inspected(name)` -> the Report of zoo model `name`, computed once."""
    import maskviz

    cache = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = maskviz.inspect(zoo[name], **kwargs)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def passes_mask():
    """`passes_mask("LSTM")`: whether the installed Keras's layer of that kind returns a
    masked sequence when it gets one, observed on a tiny eager call (Keras 3.15 passes the
    mask on through RNN, Bidirectional and TimeDistributed; its next release does not).
    Tests that depend on it assert what this Keras did, not what a version should do."""
    import keras
    import numpy as np

    makers = {
        "LSTM": lambda: keras.layers.LSTM(2, return_sequences=True),
        "GRU": lambda: keras.layers.GRU(2, return_sequences=True),
        "SimpleRNN": lambda: keras.layers.SimpleRNN(2, return_sequences=True),
        "SimpleRNN-backwards": lambda: keras.layers.SimpleRNN(
            2, return_sequences=True, go_backwards=True
        ),
        "Bidirectional": lambda: keras.layers.Bidirectional(
            keras.layers.LSTM(2, return_sequences=True)
        ),
        "TimeDistributed": lambda: keras.layers.TimeDistributed(keras.layers.Dense(2)),
    }
    cache: dict[str, bool] = {}

    def observe(kind: str) -> bool:
        if kind not in cache:
            tokens = np.array([[1, 2, 0], [3, 0, 0]], dtype="int32")
            x = keras.layers.Embedding(5, 3, mask_zero=True)(tokens)
            y = makers[kind]()(x)
            cache[kind] = getattr(y, "_keras_mask", None) is not None  # test-only peek
        return cache[kind]

    return observe
