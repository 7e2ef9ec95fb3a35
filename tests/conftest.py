"""Shared fixtures. Importing TensorFlow costs seconds: models are built once per
session and shared."""

from __future__ import annotations

import os

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
