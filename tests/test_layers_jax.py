"""Runs `jax_layers_check.py` (the layer acceptance tests) on JAX, in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

SCRIPT = Path(__file__).resolve().parent / "jax_layers_check.py"


@pytest.mark.slow  # a subprocess; the full suite runs it
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
@pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="this session already runs the tests on JAX"
)
def test_layers_on_jax_backend():
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        cwd=SCRIPT.parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout and "on backend jax" in result.stdout, result.stdout
