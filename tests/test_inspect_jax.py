"""maskviz observes whatever backend Keras runs on: the same verdicts on JAX.

The backend is fixed per process, so this runs a short script under
KERAS_BACKEND=jax in a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    sys.path.insert(0, {tests!r})
    import keras, maskviz
    from models import zoo
    assert keras.backend.backend() == "jax", keras.backend.backend()
    z = zoo.Zoo()
    expected = {{
        "seq2seq_initial_state": {{("MV102", "decoder")}},
        "conv1d_after_masking": {{("MV101", "conv1d")}},
        "bidirectional_initial_state": {{("MV102", "bi")}},
        "timedistributed_embedding": {{("MV104", "time_distributed")}},
    }}
    for name, want in expected.items():
        report = maskviz.inspect(z[name], oracle=False)
        got = {{(f.rule, f.layer) for f in report.findings}}
        assert want <= got, (name, got)
    clean = maskviz.inspect(z["clean_lstm"])
    assert not clean.at_or_above("warning"), clean.to_text()
    print("jax ok")
    """
)


@pytest.mark.slow  # a subprocess; the full suite runs it
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this session already runs on JAX")
def test_same_findings_on_jax():
    tests = str(Path(__file__).parent)
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(tests=tests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "jax ok" in proc.stdout
