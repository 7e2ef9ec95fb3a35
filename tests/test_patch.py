"""`maskviz fix` / `patch_model`: fixes applied through `clone_model`, weights copied,
the saved model reloaded and re-verified. Assertions are by rule id and status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from marks import Lazy, slow_except  # noqa: E402

import maskviz  # noqa: E402
from maskviz.loading import load_model  # noqa: E402
from maskviz.patch import FIXED, LEFT, fix_model_file, patch_model  # noqa: E402
from maskviz.samples import sample_path  # noqa: E402

L = keras.layers

# sample -> (rule whose fix repairs it, where it fires, needs --unsafe-fixes)
MECHANICAL = {
    "seq2seq_initial_state": ("MV102", "decoder_lstm", False),
    "conv1d_after_masking": ("MV101", "conv1d", False),
    "masking_5d_convlstm": ("MV103", "conv_lstm2d", False),
    "timedistributed_embedding": ("MV104", "time_distributed_embedding", False),
    "custom_layer_no_masking": ("MV101", "scale_shift", False),
}

# The samples the quick run fixes (the full suite fixes all).
QUICK = ("conv1d_after_masking", "masking_5d_convlstm")

# Fixes that maskviz applies and verifies, but whose verification is blocked by a
# rule's false positive on the patched model (remove once the rule is fixed: the
# strict xfail below then fails as XPASS).
# Samples whose fix cannot be verified yet: name -> reason (tests xfail strictly).
BLOCKED: dict[str, str] = {}


def _convlstm_takes_a_time_mask() -> bool:
    """Observed: whether this backend's ConvLSTM2D applies a (batch, time) mask to its 4-D
    states. Keras's RNN loop on JAX cannot (it broadcasts the mask as (batch, 1))."""
    frames = np.zeros((2, 3, 4, 4, 1), dtype="float32")
    mask = np.array([[True, True, False], [True, False, False]])
    try:
        L.ConvLSTM2D(2, 3, padding="same")(frames, mask=mask)
    except Exception:
        return False
    return True


if not _convlstm_takes_a_time_mask():
    BLOCKED["masking_5d_convlstm"] = (
        f"ConvLSTM2D on {keras.backend.backend()} cannot apply a (batch, time) mask to its "
        "4-D states, so the TimestepMasking fix cannot be verified (maskviz leaves it)"
    )


def rows_for(result, rule):
    return [r for r in result.rows if r.finding.rule == rule]


@pytest.fixture(scope="module")
def originals():
    return {name: load_model(str(sample_path(name))) for name in MECHANICAL}


@pytest.fixture(scope="module")
def written(fixed):
    """The fixed samples that were verified and written."""
    return Lazy([name for name in fixed if name not in BLOCKED], fixed.__getitem__)


@pytest.fixture(scope="module")
def fixed(originals, tmp_path_factory, release):
    """Each mechanical sample fixed once: name -> FixResult."""
    out = tmp_path_factory.mktemp("fixed")

    def fix(name: str):
        result = fix_model_file(
            originals[name], str(out / f"{name}.keras"), unsafe_fixes=MECHANICAL[name][2]
        )
        release()  # what JAX compiled for this model (see conftest.release_compiled)
        return result

    return Lazy(list(MECHANICAL), fix)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=([pytest.mark.xfail(strict=True, reason=BLOCKED[n])] if n in BLOCKED else [])
            + ([] if n in QUICK else [pytest.mark.slow]),
        )
        for n in sorted(MECHANICAL)
    ],
)
def test_fix_repairs_sample(name, fixed):
    rule, where, _ = MECHANICAL[name]
    result = fixed[name]
    assert result.ok and result.written, result.to_text()
    assert os.path.exists(result.path)
    repaired = [r for r in rows_for(result, rule) if r.finding.path == where]
    assert repaired and all(r.status == FIXED and r.applied for r in repaired), result.to_text()
    # gone, or downgraded below error (a warning may stay at a layer that still drops
    # the mask when the repair puts the mask back right after it)
    assert (rule, where) not in {
        (f.rule, f.path) for f in result.after.findings if f.severity.value == "error"
    }
    assert not [f for f in result.after.findings if f.severity.value == "error"]
    assert all(c.passed is not False for c in result.checks), result.to_text()
    assert "MV107" not in result.after.rule_ids


@pytest.mark.slow  # every sample fixed
def test_outputs_compared_on_unpadded_rows(fixed):
    """Every sample whose original runs gets the comparison (not skipped)."""
    for name, result in fixed.items():
        if name in BLOCKED:  # observed unverifiable here (test_fix_also_resolves_the_crash)
            continue
        check = next(c for c in result.checks if c.name.startswith("outputs unchanged"))
        if result.before.trace.error is None:
            assert check.passed is True, (name, check)
        else:  # Masking on 5-D input crashes ConvLSTM2D: nothing to compare with
            assert name == "masking_5d_convlstm" and check.passed is None


def test_fix_also_resolves_the_crash(fixed):
    result = fixed["masking_5d_convlstm"]
    if "masking_5d_convlstm" in BLOCKED:
        # The patched model still crashes here: maskviz says so and writes nothing.
        assert not result.written
        assert [r.status for r in rows_for(result, "MV112")] == [LEFT]
        return
    assert [r.status for r in rows_for(result, "MV112")] == [FIXED]
    assert result.after.trace.error is None


@pytest.mark.slow  # every sample fixed
def test_weights_copied_one_by_one(originals, written):
    for name, result in written.items():
        patched = {lyr.name: lyr for lyr in result.model.layers}
        compared = 0
        for layer in originals[name].layers:
            before = layer.get_weights()
            if not before:
                continue
            after = patched[layer.name].get_weights()
            assert len(after) == len(before), (name, layer.name)
            for a, b in zip(before, after):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}/{layer.name}")
                compared += 1
        assert compared, name


@pytest.mark.slow  # every sample fixed
def test_replacement_layers_are_maskviz_layers(written):
    classes = {name: {type(lyr).__name__ for lyr in r.model.layers} for name, r in written.items()}
    assert "MaskedConv1D" in classes["conv1d_after_masking"]
    if "masking_5d_convlstm" not in BLOCKED:
        assert "TimestepMasking" in classes["masking_5d_convlstm"]
        assert "Masking" not in classes["masking_5d_convlstm"]
    assert "ApplyMask" in classes["custom_layer_no_masking"]


@pytest.mark.slow  # a subprocess
def test_patched_files_load_in_fresh_process(written):
    """Only `import maskviz` is needed for maskviz's layers; the user's own custom
    layer (ScaleShift, package maskviz_samples) comes through maskviz's loader."""
    paths = {name: r.path for name, r in written.items()}
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import maskviz
        import keras
        import numpy as np
        paths = json.loads(sys.argv[1])
        out = {}
        for name, path in paths.items():
            if name == "custom_layer_no_masking":
                from maskviz.loading import load_model
                model = load_model(path)
            else:
                model = keras.saving.load_model(path)
            out[name] = {
                "modules": sorted({type(l).__module__.split(".")[0] for l in model.layers}),
                "rules": sorted(
                    {f.rule for f in maskviz.inspect(model, oracle=False).at_or_above("error")}
                ),
            }
        print(json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(paths)
    for name, got in loaded.items():
        assert MECHANICAL[name][0] not in got["rules"], (name, got)
        if name != "seq2seq_initial_state":  # a call-level fix: Keras layers only
            assert "maskviz" in got["modules"], (name, got)


def _lstm_mask_path_rounding() -> float:
    """Observed: max |diff| of an LSTM's outputs without a mask and with a mask that
    keeps every step. 0 where Keras runs both through one loop (TensorFlow); float32
    rounding where a mask sends the LSTM down another code path (PyTorch, JAX)."""
    lstm = L.LSTM(
        8,
        kernel_initializer=keras.initializers.GlorotUniform(seed=0),
        recurrent_initializer=keras.initializers.Orthogonal(seed=1),
    )
    x = np.random.default_rng(0).standard_normal((4, 10, 6)).astype("float32")
    plain = keras.ops.convert_to_numpy(lstm(x))
    masked = keras.ops.convert_to_numpy(lstm(x, mask=np.ones((4, 10), bool)))
    return float(np.abs(plain - masked).max())


def test_safety_is_measured_not_declared(originals, tmp_path):
    """The custom per-step layer's repair (zero padded steps, put the mask back) was
    declared unsafe; measured, it leaves unpadded outputs unchanged, so it is kept
    without --unsafe-fixes, with the measured max |diff| in the text."""
    out = tmp_path / "custom.keras"
    result = fix_model_file(originals["custom_layer_no_masking"], str(out))
    assert result.written and result.ok, result.to_text()
    kept = [a for a in result.attempts if a.outcome == "kept"]
    assert kept
    if _lstm_mask_path_rounding() == 0.0:
        assert all(a.max_diff == 0.0 for a in kept)
    else:  # the repaired model's LSTM now gets a mask: float32 rounding, nothing more
        assert all(a.max_diff is not None and a.max_diff < 1e-6 for a in kept)
    assert f"unpadded max |diff| {kept[0].max_diff:.2g}" in result.to_text()


def test_clean_model_left_alone(tmp_path):
    model = load_model(str(sample_path("clean_lstm")))
    out = tmp_path / "clean.keras"
    result = fix_model_file(model, str(out))
    assert result.status == "nothing to fix" and result.ok
    assert not result.written and not out.exists()
    forced = fix_model_file(model, str(out), force=True)
    assert forced.written and out.exists()


def test_flatten_after_embedding_is_repaired(tmp_path):
    """Flatten -> Dense after a masked Embedding: the search zeroes the padded steps
    before Flatten (the finding's own fix was display-only) and, since Flatten reads
    each step at its position (MV113), moves the real steps to the front first; the
    padding id's vector then no longer reaches the output, and the side of the
    padding no longer matters (truth computed here)."""
    model = load_model(str(sample_path("flatten_after_embedding")))
    out = tmp_path / "flatten.keras"
    result = fix_model_file(model, str(out))
    assert result.ok and out.exists(), result.to_text()
    assert [c.kind for c in result.kept] == ["pack-real"]
    fixed = keras.saving.load_model(out)
    time = model.input.shape[1]
    tokens = np.array([[3, 4, 0, 0, 0, 0, 0, 0, 0, 0][:time]], "int32")
    emb = next(lyr for lyr in fixed.layers if isinstance(lyr, L.Embedding))
    before = keras.ops.convert_to_numpy(fixed(tokens))
    old = np.asarray(emb.embeddings)
    emb.embeddings.assign(np.where(np.arange(len(old))[:, None] == 0, 5.0, old))
    assert np.allclose(before, keras.ops.convert_to_numpy(fixed(tokens)), atol=1e-6)
    emb.embeddings.assign(old)
    left = np.roll(tokens, time - 2, axis=1)  # the same tokens, padded on the left
    assert left[0, -2:].tolist() == [3, 4]
    assert np.allclose(before, keras.ops.convert_to_numpy(fixed(left)), atol=1e-5)
    # Unpadded rows give what the original model gave.
    full = np.arange(1, time + 1, dtype="int32")[None] % 7 + 1
    assert np.allclose(
        keras.ops.convert_to_numpy(model(full)), keras.ops.convert_to_numpy(fixed(full)), atol=1e-5
    )


@keras.saving.register_keras_serializable(package="maskviz_test_patch")
class PreviousStep(keras.layers.Layer):
    """Not per step: each output step is the previous input step, scaled (a shift in
    time by a layer with weights, so the mask cannot be passed through it)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return keras.ops.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0]]) * self.scale


@pytest.mark.slow
def test_failed_verification_writes_nothing(tmp_path):
    """Putting the mask back on a layer that shifts time misaligns it: the last real
    step of each padded row stops reaching the output, so no candidate passes and
    nothing is written."""
    tokens = keras.Input((None,), dtype="int32")
    x = L.Embedding(30, 4, mask_zero=True)(tokens)
    x = PreviousStep(name="previous_step")(x)
    model = keras.Model(tokens, L.LSTM(4)(x))
    out = tmp_path / "shift.keras"
    result = fix_model_file(model, str(out), unsafe_fixes=True)
    assert result.status == "failed" and not result.ok, result.to_text()
    assert not result.written and not out.exists()
    assert result.attempts and not result.kept
    assert result.model is None and "real step(s) no longer reach" in result.reason


def conv_text_classifier():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(50, 8, mask_zero=True, name="embedding")(tokens)
    x = L.Conv1D(8, 3, padding="same", name="conv")(x)
    x = L.LSTM(8, name="lstm")(x)
    return keras.Model(tokens, L.Dense(1, name="score")(x), name="conv_text")


def test_sequential_model_is_patched():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            L.Embedding(50, 8, mask_zero=True),
            L.Conv1D(8, 3, padding="same", name="conv"),
            L.GRU(4),
        ],
        name="sequential_conv",
    )
    result = maskviz.inspect(model).patch()
    assert result.ok, result.to_text()
    assert [(r.status, r.applied) for r in rows_for(result, "MV101")] == [(FIXED, True)]
    assert isinstance(result.model, keras.Sequential)


def test_nested_model_layer_is_patched():
    inner_in = keras.Input((None, 8))
    encoder = keras.Model(
        inner_in, L.Conv1D(8, 3, padding="same", name="conv")(inner_in), name="encoder"
    )
    tokens = keras.Input((None,), dtype="int32")
    x = encoder(L.Embedding(50, 8, mask_zero=True)(tokens))
    model = keras.Model(tokens, L.LSTM(4)(x), name="nested_conv")
    report = maskviz.inspect(model)
    assert ("MV101", "encoder/conv") in {(f.rule, f.path) for f in report.findings}
    result = patch_model(report)
    assert result.ok, result.to_text()
    inner = result.model.get_layer("encoder").get_layer("conv")
    assert type(inner).__name__ == "MaskedConv1D"


def test_subclassed_model_is_reported_not_patched():
    class Tagger(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.emb = L.Embedding(50, 8, mask_zero=True)
            self.conv = L.Conv1D(8, 3, padding="same")
            self.rnn = L.GRU(4)

        def call(self, x):
            return self.rnn(self.conv(self.emb(x)))

    model = Tagger(name="tagger")
    model(np.ones((2, 6), "int32"))
    report = maskviz.inspect(model)
    assert "MV101" in report.rule_ids
    result = patch_model(report)
    assert result.status == "failed" and result.model is None
    assert "subclassed" in result.reason


def test_original_model_unchanged():
    model = conv_text_classifier()
    weights = [w.copy() for w in model.get_weights()]
    result = maskviz.inspect(model).patch()
    assert result.ok, result.to_text()
    assert type(model.get_layer("conv")) is L.Conv1D
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert "MV101" in maskviz.inspect(model, oracle=False).rule_ids


# --------------------------------------------------------------------------- as a new user


def padded(rng, n, max_len, vocab):
    lengths = rng.integers(2, max_len + 1, size=n)
    seqs = [list(rng.integers(1, vocab, size=k)) for k in lengths]
    return keras.utils.pad_sequences(seqs, maxlen=max_len, padding="post")


def guide_classifier_broken():
    """The masking guide's `Embedding(mask_zero=True) -> LSTM(32)`, plus the Conv1D a
    user adds for n-gram features (as in the text-classification examples)."""
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = L.Embedding(input_dim=5000, output_dim=16, mask_zero=True)(inputs)
    x = L.Conv1D(16, 3, padding="same", activation="relu")(x)
    x = L.LSTM(32)(x)
    outputs = L.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def guide_seq2seq_broken():
    """The lstm_seq2seq example's encoder-decoder, with `Embedding(mask_zero=True)`
    added for padded token ids: the decoder gets `initial_state=`, so no mask."""
    encoder_inputs = keras.Input(shape=(None,), dtype="int32")
    x = L.Embedding(60, 16, mask_zero=True)(encoder_inputs)
    _, state_h, state_c = L.LSTM(32, return_state=True)(x)
    decoder_inputs = keras.Input(shape=(None,), dtype="int32")
    y = L.Embedding(60, 16, mask_zero=True)(decoder_inputs)
    y = L.LSTM(32, return_sequences=True)(y, initial_state=[state_h, state_c])
    outputs = L.Dense(60, activation="softmax")(y)
    return keras.Model([encoder_inputs, decoder_inputs], outputs)


@pytest.mark.parametrize("case", slow_except(["classifier", "seq2seq"], ["classifier"]))
def test_guide_model_fix_then_train(case, tmp_path):
    from typer.testing import CliRunner

    from maskviz.cli import app

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if case == "classifier":
        model, rule = guide_classifier_broken(), "MV101"
        x = padded(rng, 64, 12, 5000)
        y = rng.integers(0, 2, size=(64, 1)).astype("float32")
        loss = "binary_crossentropy"
    else:
        model, rule = guide_seq2seq_broken(), "MV102"
        x = [padded(rng, 64, 9, 60), padded(rng, 64, 7, 60)]
        y = np.roll(x[1], -1, axis=1)
        loss = "sparse_categorical_crossentropy"
    src, out = tmp_path / "model.keras", tmp_path / "fixed.keras"
    model.save(src)
    result = CliRunner().invoke(app, ["fix", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert rule in result.output and out.exists()

    fixed = keras.saving.load_model(out)
    assert rule not in maskviz.inspect(fixed, oracle=False).rule_ids
    fixed.compile(optimizer="adam", loss=loss)
    history = fixed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
