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
    """Fixture models named for the bug they show (see tests/zoo.py), built once."""
    import zoo as z

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
