"""The CLI through typer's CliRunner: exit codes, formats, and bad input as one line."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from maskviz.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def saved(zoo, tmp_path_factory):
    """`saved(name)` -> path of zoo model `name` saved as .keras (once)."""
    root = tmp_path_factory.mktemp("models")
    paths = {}

    def get(name):
        if name not in paths:
            paths[name] = root / f"{name}.keras"
            zoo[name].save(paths[name])
        return paths[name]

    return get


def one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("maskviz: error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_inspect_text_on_a_bug_exits_1(saved):
    result = runner.invoke(app, ["inspect", str(saved("seq2seq_initial_state"))])
    assert result.exit_code == 1, result.output
    assert "MV102" in result.output and "decoder" in result.output
    # The oracle's verdict per mask source is part of the text report.
    assert "oracle: dec_embedding" in result.output
    assert "LEAK at decoder" in result.output


def test_inspect_clean_model_exits_0(saved):
    result = runner.invoke(app, ["inspect", str(saved("clean_lstm"))])
    assert result.exit_code == 0, result.output
    assert "No findings." in result.output


def test_model_without_masks_is_a_clean_report(saved):
    result = runner.invoke(app, ["inspect", str(saved("no_masks")), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["findings"] == []
    assert all(c["role"] == "none" for c in doc["calls"])


def test_json_schema(saved):
    result = runner.invoke(app, ["inspect", str(saved("conv1d_after_masking")), "-f", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    for key in ("maskviz", "keras", "backend", "model", "calls", "findings"):
        assert key in doc
    f = doc["findings"][0]
    assert set(f) >= {"rule", "name", "severity", "layer", "path", "message", "suggestion", "fix"}
    assert f["rule"] == "MV101" and f["fix"] in ("safe", "unsafe", "display-only")


def test_sarif(saved):
    result = runner.invoke(app, ["inspect", str(saved("conv1d_after_masking")), "-f", "sarif"])
    doc = json.loads(result.stdout)
    assert doc["version"] == "2.1.0"
    assert doc["runs"][0]["results"][0]["ruleId"] == "MV101"


@pytest.mark.parametrize(
    ("fail_on", "code"), [("error", 0), ("warning", 1), ("info", 1), ("never", 0)]
)
def test_fail_on(saved, fail_on, code):
    # flatten_after_embedding has one warning (MV110) and no structural error;
    # --no-oracle keeps the leak oracle's error out of this test.
    result = runner.invoke(
        app,
        ["inspect", str(saved("flatten_after_embedding")), "--no-oracle", "--fail-on", fail_on],
    )
    assert result.exit_code == code, result.output


def test_missing_file():
    line = one_line_error(runner.invoke(app, ["inspect", "does/not/exist.keras"]))
    assert "does/not/exist.keras" in line


def test_directory(tmp_path):
    one_line_error(runner.invoke(app, ["inspect", str(tmp_path)]))


def test_not_a_keras_file(tmp_path):
    p = tmp_path / "notes.keras"
    p.write_text("hello")
    one_line_error(runner.invoke(app, ["inspect", str(p)]))


def test_truncated_archive(saved, tmp_path):
    data = saved("clean_lstm").read_bytes()
    p = tmp_path / "truncated.keras"
    p.write_bytes(data[: len(data) // 2])
    one_line_error(runner.invoke(app, ["inspect", str(p)]))


def test_unknown_custom_layer(zoo, tmp_path):
    # Save a model with a registered custom layer, then rename the class in the
    # archive so nothing can resolve it.
    src = tmp_path / "custom.keras"
    zoo["weakened_mask"].save(src)
    dst = tmp_path / "unknown.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                data = data.replace(b"UnmaskAll", b"NoSuchLayer")
            zout.writestr(item, data)
    line = one_line_error(runner.invoke(app, ["inspect", str(dst)]))
    assert "NoSuchLayer" in line and "--custom-objects" in line


def test_lambda_is_refused_unless_unsafe(tmp_path):
    import keras

    i = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(i)
    x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    model = keras.Model(i, keras.layers.GRU(2)(x))
    p = tmp_path / "lambda.keras"
    model.save(p)
    line = one_line_error(runner.invoke(app, ["inspect", str(p)]))
    assert "--unsafe" in line
    result = runner.invoke(app, ["inspect", str(p), "--unsafe", "--no-oracle"])
    assert result.exit_code in (0, 1), result.output
    assert "Lambda" in result.output


def test_bad_mask_input_flag(saved):
    one_line_error(
        runner.invoke(app, ["inspect", str(saved("clean_lstm")), "--mask-input", "nonsense"])
    )


def test_bad_data_file(saved, tmp_path):
    p = tmp_path / "x.npz"
    p.write_text("not npz")
    one_line_error(runner.invoke(app, ["inspect", str(saved("clean_lstm")), "--data", str(p)]))


def test_data_of_the_wrong_shape_is_a_usage_error(saved, tmp_path):
    p = tmp_path / "x.npz"
    import numpy as np

    np.savez(p, np.zeros((3, 12, 5), "int32"))
    line = one_line_error(
        runner.invoke(app, ["inspect", str(saved("clean_lstm")), "--data", str(p)])
    )
    assert "wrong shape" in line


def test_explain_and_rules():
    result = runner.invoke(app, ["explain", "MV102"])
    assert result.exit_code == 0, result.output
    assert "## Why is this bad?" in result.output and "initial_state" in result.output
    result = runner.invoke(app, ["rules"])
    assert result.exit_code == 0 and "MV101" in result.output and "mask-dropped" in result.output
    one_line_error(runner.invoke(app, ["explain", "MV999"]))


def test_help_rules_and_explain_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from maskviz.cli import app\n"
        "r = CliRunner()\n"
        "for args in (['--help'], ['rules'], ['explain', 'MV101'], ['inspect', '--help']):\n"
        "    assert r.invoke(app, args).exit_code == 0, args\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
