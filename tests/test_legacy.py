"""Models saved by tf.keras 2 (`tf_keras`): every masked layer type is saved by tf_keras in
a subprocess, then loaded by maskviz with the installed Keras 3 (legacy keys translated,
weights loaded: the outputs match tf.keras 2's), and the report says where it came from."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import maskviz
from maskviz import legacy
from maskviz.errors import MaskvizError
from maskviz.loading import load_model

HERE = Path(__file__).parent
_has_tf_keras = pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is None,
    reason="tf_keras is not installed (pip install 'maskviz[legacy]'): no Keras 2 to save with",
)


def needs_tf_keras(test):
    """Skipped without tf_keras; `slow`: its models are saved by tf.keras 2 in a
    subprocess (the quick run keeps the config translation tests)."""
    return pytest.mark.slow(_has_tf_keras(test))


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras2")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run(
        [sys.executable, str(HERE / "keras2_models.py"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


MODELS = [
    "embedding_lstm",
    "masking_gru",
    "simple_rnn",
    "bidirectional",
    "time_distributed",
    "conv_lstm2d",
    "conv1d_pooling",
    "attention",
    "sequential_gru",
    "seq2seq_initial_state",
]


@needs_tf_keras
def test_every_model_type_was_saved(keras2_files):
    assert sorted(keras2_files["models"]) == sorted(MODELS)
    assert keras2_files["tf_keras"].startswith("2.")


@needs_tf_keras
@pytest.mark.parametrize("name", MODELS)
def test_h5_loads_with_its_weights(keras2_files, name):
    paths = keras2_files["models"][name]
    model = load_model(paths["h5"])
    origin = legacy.origin_of(model)
    assert origin is not None and origin.version == keras2_files["tf_keras"]
    io = np.load(paths["io"])
    xs = [io[f"x{i}"] for i in range(len(model.inputs))]
    import keras

    y = keras.ops.convert_to_numpy(model(xs if len(xs) > 1 else xs[0], training=False))
    # Same weights, same graph: Keras 3 gives tf.keras 2's outputs on the unpadded row 0.
    # (Row 1 is padded: it matches only where both Keras versions deliver the same masks,
    # checked below.)
    np.testing.assert_allclose(y[0], io["y"][0], atol=1e-5)


@needs_tf_keras
@pytest.mark.parametrize("name", ["seq2seq_initial_state", "time_distributed", "sequential_gru"])
def test_comparison_agrees_with_the_padded_outputs(keras2_files, name):
    """Truth: the padded row's output under Keras 3 against tf.keras 2's. maskviz's
    comparison (tf.keras 2 traced in a subprocess) reports a difference in mask delivery
    exactly when that output differs."""
    import keras

    paths = keras2_files["models"][name]
    model = load_model(paths["h5"])
    io = np.load(paths["io"])
    xs = [io[f"x{i}"] for i in range(len(model.inputs))]
    y = keras.ops.convert_to_numpy(model(xs if len(xs) > 1 else xs[0], training=False))
    differs = float(np.max(np.abs(y[1] - io["y"][1]))) > 1e-4
    comparison = maskviz.inspect(model, oracle=False).to_dict()["keras2_comparison"]
    assert comparison["error"] == ""
    assert bool(comparison["differences"]) == differs, comparison


@needs_tf_keras
def test_every_rejected_key_is_translated(keras2_files):
    """Plain Keras 3 refuses these files; each key maskviz rewrites is one Keras 3 needed."""
    import keras

    refused, translated = set(), set()
    for name in MODELS:
        path = keras2_files["models"][name]["h5"]
        try:
            keras.saving.load_model(path, compile=False)
        except Exception:
            refused.add(name)
        translated |= set(legacy.origin_of(load_model(path)).translated)
    assert {"embedding_lstm", "attention", "seq2seq_initial_state"} <= refused
    assert {
        "LSTM.time_major",
        "GRU.time_major",
        "SimpleRNN.time_major",
        "ConvLSTM2D.time_major",
        "LSTM.initial_state",
        "Attention.score_mode",
        "MultiHeadAttention.query_shape",
    } <= translated


@needs_tf_keras
def test_keras_archive_from_tf_keras_gets_keras2_advice(keras2_files):
    path = keras2_files["models"]["embedding_lstm"]["keras"]
    with pytest.raises(MaskvizError, match=r"saved by tf\.keras 2\.\d+") as info:
        load_model(path)
    assert "Functional" not in str(info.value)
    assert ".h5" in str(info.value)


@needs_tf_keras
def test_report_names_keras2_and_compares_mask_delivery(keras2_files):
    """The encoder-decoder: tf.keras 2 hands the decoder (called with `initial_state=`) its
    mask; Keras 3 does not. Both observed: tf.keras 2 in a subprocess, Keras 3 in the trace."""
    model = load_model(keras2_files["models"]["seq2seq_initial_state"]["h5"])
    report = maskviz.inspect(model, oracle=False)
    data = report.to_dict()
    assert data["saved_by"]["keras"] == keras2_files["tf_keras"]
    comparison = data["keras2_comparison"]
    assert comparison["error"] == "" and comparison["compared"] >= 5
    decoder = report.trace.by_id()["decoder_lstm"]
    diffs = {d["layer"]: d for d in comparison["differences"]}
    if decoder.received:
        assert "decoder_lstm" not in diffs
    else:
        assert diffs["decoder_lstm"]["keras2_received_mask"] is True
    assert diffs.get("encoder_lstm") is None  # one tensor argument: a mask in both
    text = report.to_text()
    assert f"saved by tf.keras {keras2_files['tf_keras']} (Keras 2)" in text


def test_translate_refuses_what_keras3_cannot_express():
    config = {"class_name": "LSTM", "config": {"units": 2, "time_major": True}}
    with pytest.raises(MaskvizError, match="time_major=True"):
        legacy.translate_config(config)


def test_translate_leaves_keras3_configs_alone():
    config = {"class_name": "LSTM", "config": {"units": 2}, "inbound_nodes": []}
    assert legacy.translate_config(config) == (config, ())
