"""The loss-and-gradient invariance (MV114): `loss=` in Python, `--loss` on the CLI,
the compiled loss by default. Truth is measured here with the loss itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import maskviz
from maskviz.cli import app

L = keras.layers


def tagger(drop_mask: bool, compiled: bool = False) -> keras.Model:
    keras.utils.set_random_seed(2)
    t = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(30, 6, mask_zero=True)(t)
    x = L.GRU(6, return_sequences=True)(x)
    if drop_mask:
        x = L.Conv1D(6, 1)(x)
    # A softmax head: the loss by name (`from_logits=False`) is defined on its outputs
    # on every backend (on JAX, logits of exactly 0 at padded steps make it NaN).
    model = keras.Model(t, L.Dense(4, activation="softmax")(x))
    if compiled:
        model.compile(loss="sparse_categorical_crossentropy")
    return model


def _grad_truth(model: keras.Model) -> bool:
    """Do the gradients change when only the targets at padded steps change? Observed
    on any backend through Keras's own training step: one `train_on_batch` of plain
    SGD (learning rate 1, no momentum) on a copy moves each weight by minus its
    gradient."""
    rng = np.random.default_rng(0)
    keep = np.arange(8)[None, :] < np.array([8, 3, 5, 6])[:, None]
    x = np.where(keep, rng.integers(1, 30, keep.shape), 0).astype("int32")
    y = rng.integers(0, 4, keep.shape).astype("int32")
    y2 = np.where(keep, y, (y + 1) % 4).astype("int32")
    before = model.get_weights()
    grads = []
    for target in (y, y2):
        copy = keras.models.clone_model(model)
        copy.set_weights(before)
        copy.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1.0),
            loss="sparse_categorical_crossentropy",
        )
        copy.train_on_batch(x, target)
        grads.append([w - w_after for w, w_after in zip(before, copy.get_weights())])
    scale = max(float(np.abs(g).max()) for g in grads[0])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*grads))
    return diff > 1e-6 + 1e-3 * scale


@pytest.mark.parametrize("drop_mask", [True, False])
def test_loss_argument_matches_gradient_truth(drop_mask):
    model = tagger(drop_mask)
    truth = _grad_truth(model)
    report = maskviz.inspect(model, loss="sparse_categorical_crossentropy")
    assert ("MV114" in report.rule_ids) == truth, report
    assert "loss" in report.oracle.invariance.checked
    # No loss, no check: an uncompiled model is skipped with a reason.
    plain = maskviz.inspect(model)
    assert "MV114" not in plain.rule_ids
    assert any(w == "loss" for w, _ in plain.oracle.invariance.skipped)


def test_compiled_loss_is_used_by_default():
    model = tagger(True, compiled=True)
    report = maskviz.inspect(model)
    (finding,) = [f for f in report.findings if f.rule == "MV114"]
    assert finding.severity.value == "error"
    assert "gradient" in finding.message


runner = CliRunner()


def test_cli_loss_option(tmp_path):
    path = tmp_path / "tagger.keras"
    tagger(True).save(path)
    result = runner.invoke(app, ["inspect", str(path), "--loss", "sparse_categorical_crossentropy"])
    assert result.exit_code == 1, result.output
    assert "MV114" in result.output
    bad = runner.invoke(app, ["inspect", str(path), "--loss", "no_such_loss"])
    assert bad.exit_code == 2, bad.output
    lines = [ln for ln in bad.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Unknown loss" in lines[0], bad.output


@pytest.mark.slow
def test_padding_check_callback_on_jax():
    """The PaddingCheck tests, on the JAX backend (a subprocess)."""
    tests = Path(__file__).parent
    code = (
        "import test_callbacks as T\n"
        "T.test_same_weights_and_losses_as_without_the_callback()\n"
        "T.test_correctly_masked_tagger_has_no_error()\n"
        "T.test_strict_stops_a_model_that_learns_from_padding()\n"
        "print('ok')\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([str(tests.parent), str(tests), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
