"""A model file imports and runs nothing without --unsafe, --custom-objects or
--allow-import: one test per vector. Each planted module writes a marker file when it is
imported, so "not imported" is observed, not assumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maskviz.errors import MaskvizError  # noqa: E402
from maskviz.loading import ALLOWED_IMPORTS, load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLANTED = "mvx_planted_layers"
FEATURES = np.linspace(-1.0, 1.0, 10, dtype="float32").reshape(2, 5)


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message == message.strip(), message
    return message


def _planted_source(marker: Path) -> str:
    return textwrap.dedent(
        f"""
        import pathlib
        import keras

        pathlib.Path({str(marker)!r}).write_text("imported")

        @keras.saving.register_keras_serializable(package="{PLANTED}")
        class Planted(keras.layers.Layer):
            def call(self, x):
                return x * 3.0
        """
    )


def _forget_planted() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == PLANTED]:
        del sys.modules[name]
    registry = keras.saving.get_custom_objects()
    for key in [k for k in registry if k.startswith(PLANTED + ">")]:
        del registry[key]


def _plant(folder: Path, marker: Path, *, dist_info: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PLANTED}.py").write_text(_planted_source(marker))
    if dist_info:  # an installed distribution, as pip leaves it
        info = folder / f"{PLANTED}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLANTED}\nVersion: 0.1\n")
        (info / "top_level.txt").write_text(f"{PLANTED}\n")
        (info / "RECORD").write_text(f"{PLANTED}.py,,\n")


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory) -> Path:
    """A model whose config names the planted module (saved from a private copy of it)."""
    import importlib.util

    root = tmp_path_factory.mktemp("planted_src")
    marker = root / "marker_at_save"
    (root / f"{PLANTED}.py").write_text(_planted_source(marker))
    spec = importlib.util.spec_from_file_location(PLANTED, root / f"{PLANTED}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PLANTED] = module
    spec.loader.exec_module(module)
    x = keras.Input((5,), name="x")
    model = keras.Model(x, module.Planted(name="planted")(x))
    path = root / "planted.keras"
    model.save(path)
    _forget_planted()
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    assert PLANTED in json.dumps(config)  # the file names the module
    return path


@pytest.fixture(autouse=True)
def _clean():
    _forget_planted()
    yield
    _forget_planted()


# --------------------------------------------------------------------------- import vectors


def test_module_in_the_current_folder_is_not_imported(planted_model, tmp_path, monkeypatch):
    folder = tmp_path / "repo"
    marker = tmp_path / "marker"
    _plant(folder, marker, dist_info=True)  # even with metadata beside it
    model = folder / "model.keras"
    model.write_bytes(planted_model.read_bytes())
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", ["", str(folder), *sys.path])  # as `python -m` sets it
    with pytest.raises(MaskvizError) as excinfo:
        load_model("model.keras")
    assert "'Planted'" in _one_line(excinfo)
    assert not marker.exists()
    assert PLANTED not in sys.modules
    assert sys.path[:2] == ["", str(folder)]  # put back after loading


def test_module_in_the_current_folder_under_python_dash_m(planted_model, tmp_path):
    folder = tmp_path / "repo"
    marker = tmp_path / "marker"
    _plant(folder, marker, dist_info=True)
    (folder / "model.keras").write_bytes(planted_model.read_bytes())
    # Modules that shadow what Keras imports: `python -m` would find them first.
    shadow = tmp_path / "shadow_marker"
    for name in ("numpy", "h5py", "absl"):
        (folder / f"{name}.py").write_text(
            f"import pathlib\npathlib.Path({str(shadow)!r}).write_text({name!r})\n"
        )
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "maskviz", "inspect", "model.keras"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "'Planted'" in lines[0]
    assert not marker.exists()
    assert not shadow.exists()


def test_module_on_pythonpath_is_not_imported(planted_model, tmp_path, monkeypatch):
    folder = tmp_path / "on_path"
    marker = tmp_path / "marker"
    _plant(folder, marker, dist_info=False)
    monkeypatch.syspath_prepend(str(folder))  # what PYTHONPATH does
    with pytest.raises(MaskvizError) as excinfo:
        load_model(planted_model)
    message = _one_line(excinfo)
    assert "'Planted'" in message and "--custom-objects" in message
    assert not marker.exists()


def test_installed_distribution_is_not_imported_and_the_message_names_the_flags(
    planted_model, tmp_path, monkeypatch
):
    folder = tmp_path / "site"
    marker = tmp_path / "marker"
    _plant(folder, marker, dist_info=True)
    monkeypatch.syspath_prepend(str(folder))
    import importlib.metadata

    assert PLANTED in importlib.metadata.packages_distributions()  # it is "installed"
    with pytest.raises(MaskvizError) as excinfo:
        load_model(planted_model)
    message = _one_line(excinfo)
    for flag in (f"--allow-import {PLANTED}", f"--custom-objects {PLANTED}", "--unsafe"):
        assert flag in message, message
    assert not marker.exists()
    # The user's explicit allowance imports it, and the model then loads and runs.
    model = load_model(planted_model, allow_imports=[PLANTED])
    assert marker.exists()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(FEATURES)), FEATURES * 3.0)


def test_allow_import_on_the_command_line(planted_model, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from maskviz.cli import app

    folder = tmp_path / "site"
    marker = tmp_path / "marker"
    _plant(folder, marker, dist_info=True)
    monkeypatch.syspath_prepend(str(folder))
    runner = CliRunner()
    refused = runner.invoke(app, ["inspect", str(planted_model)])
    assert refused.exit_code == 2, refused.output
    assert not marker.exists()
    allowed = runner.invoke(app, ["inspect", str(planted_model), "--allow-import", PLANTED])
    assert allowed.exit_code in (0, 1), allowed.output
    assert marker.exists()


def test_allow_list_is_the_keras_ecosystem():
    assert set(ALLOWED_IMPORTS) >= {"keras_hub", "keras_nlp", "keras_cv", "keras_rs"}
    with pytest.raises(MaskvizError) as excinfo:
        load_model(
            REPO / "maskviz" / "samples" / "conv1d_after_masking.keras",
            allow_imports=["not a module"],
        )
    assert "--allow-import" in _one_line(excinfo)


# --------------------------------------------------------------------------- code in the file


def _edit_config(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as zf:
        members = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return target


def _layers(config: dict) -> list[dict]:
    return config["config"]["layers"]


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dense")
    x = keras.Input((5,), name="x")
    keras.Model(x, keras.layers.Dense(2, name="dense")(x)).save(root / "dense.keras")
    return root / "dense.keras"


@pytest.fixture(scope="module")
def api_lambda_model(tmp_path_factory) -> Path:
    """A Lambda whose function is a Keras API function: it passes Keras's safe mode."""
    root = tmp_path_factory.mktemp("lambda_api")
    x = keras.Input((5,), name="x")
    path = root / "lambda_api.keras"
    keras.Model(x, keras.layers.Lambda(keras.ops.abs, name="abs")(x)).save(path)

    def to_set_backend(config):
        for layer in _layers(config):
            if layer["class_name"] == "Lambda":
                function = layer["config"]["function"]
                function["config"] = "set_backend"
                function["module"] = "keras.config"
                function.pop("registered_name", None)

    return _edit_config(path, root / "set_backend.keras", to_set_backend)


def test_lambda_with_a_keras_api_function_is_refused(api_lambda_model):
    backend = keras.config.backend()
    with pytest.raises(MaskvizError) as excinfo:
        load_model(api_lambda_model)
    assert "Lambda" in _one_line(excinfo) and "--unsafe" in str(excinfo.value)
    assert keras.config.backend() == backend


def _tfsm(config):
    for layer in _layers(config):
        if layer["class_name"] == "Dense":
            layer["class_name"] = "TFSMLayer"
            layer["config"] = {"name": "dense", "filepath": "/tmp/attacker_savedmodel"}


def test_tfsmlayer_is_refused(dense_model, tmp_path):
    path = _edit_config(dense_model, tmp_path / "tfsm.keras", _tfsm)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    assert "TFSMLayer" in _one_line(excinfo)


def test_refusals_hold_after_enable_unsafe_deserialization(dense_model, api_lambda_model, tmp_path):
    from keras.src.backend.common import global_state

    tfsm = _edit_config(dense_model, tmp_path / "tfsm.keras", _tfsm)
    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    try:
        for path, word in ((api_lambda_model, "Lambda"), (tfsm, "TFSMLayer")):
            with pytest.raises(MaskvizError) as excinfo:
                load_model(path)
            assert word in _one_line(excinfo)
    finally:
        global_state.set_global_attribute("safe_mode_saving", before)


def test_non_modelling_keras_function_is_refused(dense_model, tmp_path):
    def get_file_activation(config):
        for layer in _layers(config):
            if layer["class_name"] == "Dense":
                layer["config"]["activation"] = {
                    "module": "keras.utils",
                    "class_name": "function",
                    "config": "get_file",
                    "registered_name": None,
                }

    path = _edit_config(dense_model, tmp_path / "get_file.keras", get_file_activation)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    assert "keras.utils.get_file" in _one_line(excinfo)


@pytest.fixture(scope="module")
def lookup_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lookup")
    x = keras.Input((None,), dtype="string", name="words")
    y = keras.layers.StringLookup(vocabulary=["a", "b"], name="lookup")(x)
    path = root / "lookup.keras"
    keras.Model(x, y).save(path)
    return path


@pytest.mark.parametrize("where", ["absolute", "relative_in_cwd"])
def test_vocabulary_path_outside_the_archive_is_refused(lookup_model, tmp_path, monkeypatch, where):
    secret = tmp_path / "secret.txt"
    secret.write_text("password\n")
    monkeypatch.chdir(tmp_path)
    value = str(secret) if where == "absolute" else "secret.txt"

    def point_outside(config):
        for layer in _layers(config):
            if layer["class_name"] == "StringLookup":
                layer["config"]["vocabulary"] = value

    path = _edit_config(lookup_model, tmp_path / "outside.keras", point_outside)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    message = _one_line(excinfo)
    assert "vocabulary" in message and "--unsafe" in message


def test_stored_bytecode_in_h5_is_refused(tmp_path):
    x = keras.Input((5,), name="x")
    model = keras.Model(x, keras.layers.Lambda(lambda t: t + 1.0, name="add_one")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "lambda.h5")
    with pytest.raises(MaskvizError) as excinfo:
        load_model(tmp_path / "lambda.h5")
    assert "'add_one'" in _one_line(excinfo)


def test_unsafe_lifts_the_lambda_refusal(tmp_path):
    x = keras.Input((5,), name="x")
    model = keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0, name="double")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "double.keras")
    with pytest.raises(MaskvizError):
        load_model(tmp_path / "double.keras")
    loaded = load_model(tmp_path / "double.keras", unsafe=True)
    np.testing.assert_allclose(np.asarray(loaded(FEATURES)), FEATURES * 2.0)


# --------------------------------------------------------------------------- quoting


def test_control_characters_in_a_path_are_escaped(tmp_path):
    weird = tmp_path / "a\nb\x1b]0;title\x07.keras"
    with pytest.raises(MaskvizError) as excinfo:
        load_model(weird)
    message = _one_line(excinfo)
    assert "\x1b" not in message and "\x07" not in message and "\\n" in message


def test_control_characters_in_a_class_name_are_escaped(dense_model, tmp_path):
    def rename(config):
        for layer in _layers(config):
            if layer["class_name"] == "Dense":
                layer["class_name"] = "Evil\x1b]0;pwned\x07\x00Layer"
                layer["module"] = "evil\nmodule"

    path = _edit_config(dense_model, tmp_path / "evil.keras", rename)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    message = _one_line(excinfo)
    assert not any(c in message for c in "\x1b\x07\x00")


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("where", ["file", "folder"])
def test_unreadable_file_or_folder_is_one_line(tmp_path, monkeypatch, where):
    """Tests run as root, which permission bits do not stop (the fuzz corpus measures that),
    so the operating system's refusal is simulated where maskviz meets it."""
    target = tmp_path / "locked" / "model.keras"
    target.parent.mkdir()
    target.write_bytes((REPO / "maskviz" / "samples" / "clean_lstm.keras").read_bytes())
    name = "stat" if where == "folder" else "open"  # no search permission: stat fails
    real = getattr(os, name)

    def refusing(path, *args, **kwargs):
        if str(path) == str(target):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, refusing)  # where maskviz.loading meets it
    with pytest.raises(MaskvizError) as excinfo:
        load_model(target)
    message = _one_line(excinfo)
    assert "Permission denied" in message and "permissions" in message
