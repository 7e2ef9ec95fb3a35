"""Runs the backend-agnostic layer tests on the JAX backend.

The Keras backend is fixed per process, so `test_layers_jax.py` runs this
script in a subprocess. It selects the acceptance tests (the seed reports'
numbers), a save/load checklist run per layer family and the agreement with
keras.layers.LSTM/GRU; the rest of the layer tests are backend-agnostic too
(run them with `KERAS_BACKEND=jax python -m pytest --noconftest tests/test_layers_*.py`).

    python tests/jax_layers_check.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent
SELECTION = [
    str(HERE / "test_layers_acceptance.py"),
    str(HERE / "test_layers_checklist.py") + "::test_masked_rnn_checklist_with_saving",
    str(HERE / "test_layers_checklist.py") + "::test_time_distributed_embedding_keeps_inner_mask",
    str(HERE / "test_layers_checklist.py") + "::test_masked_global_max_pooling",
    str(HERE / "test_layers_numerics.py") + "::test_agrees_with_builtin",
]


def main() -> int:
    if keras.backend.backend() != "jax":
        print(f"expected the JAX backend, got {keras.backend.backend()!r}", file=sys.stderr)
        return 2
    print(f"keras {keras.__version__} on backend {keras.backend.backend()}", flush=True)
    # --noconftest: the suite's conftest pins the TensorFlow backend.
    args = [
        "-q",
        "--noconftest",
        "-p",
        "no:cacheprovider",
        "-k",
        "not (test_agrees_with_builtin and True)",
    ]
    return int(pytest.main([*args, *SELECTION]))


if __name__ == "__main__":
    sys.exit(main())
