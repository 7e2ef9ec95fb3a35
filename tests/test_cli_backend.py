"""`maskviz` picks no backend over the user's: `KERAS_BACKEND`, then `keras.json`, and
only when neither says anything and TensorFlow is missing, an installed backend."""

from __future__ import annotations

import importlib.util
import json

from maskviz import cli


def _no_config(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))


def test_env_wins(monkeypatch, tmp_path):
    _no_config(monkeypatch, tmp_path)
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert cli._configured_backend() == "jax"
    assert cli._choose_backend() is None


def test_keras_json_is_respected(monkeypatch, tmp_path):
    _no_config(monkeypatch, tmp_path)
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    assert cli._configured_backend() == "jax"
    assert cli._choose_backend() is None  # Keras reads keras.json itself


def test_broken_keras_json_is_no_choice(monkeypatch, tmp_path):
    _no_config(monkeypatch, tmp_path)
    (tmp_path / "keras.json").write_text("{not json")
    assert cli._configured_backend() is None


def _installed(monkeypatch, names):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in cli._BACKENDS:
            return object() if name in names else None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_nothing_configured_tensorflow_installed(monkeypatch, tmp_path):
    _no_config(monkeypatch, tmp_path)
    _installed(monkeypatch, {"tensorflow", "jax"})
    assert cli._choose_backend() is None  # Keras's default


def test_nothing_configured_no_tensorflow(monkeypatch, tmp_path):
    _no_config(monkeypatch, tmp_path)
    _installed(monkeypatch, {"torch"})
    assert cli._choose_backend() == "torch"
    _installed(monkeypatch, {"jax", "torch"})
    assert cli._choose_backend() == "jax"
    _installed(monkeypatch, set())
    assert cli._choose_backend() is None


def test_demo_ends_without_a_traceback_when_a_sample_cannot_load(monkeypatch):
    """A Keras older than the one that saved the samples: one line per sample, exit 2."""
    from typer.testing import CliRunner

    from maskviz import loading
    from maskviz.errors import MaskvizError

    def refuse(path, **kwargs):
        raise MaskvizError(f"Cannot load '{path}': Keras could not rebuild the model.")

    monkeypatch.setattr(loading, "load_model", refuse)
    result = CliRunner().invoke(cli.app, ["demo"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "could not be loaded by Keras" in result.output
