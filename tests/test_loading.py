"""maskviz.loading: safe loading with one-line errors, custom objects, installed packages."""

from __future__ import annotations

import os
import sys
import textwrap
import warnings
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maskviz.errors import MaskvizError  # noqa: E402
from maskviz.loading import load_custom_objects, load_model  # noqa: E402

CUSTOM_MODULE = "mvx_custom_layers"
CUSTOM_SOURCE = textwrap.dedent(
    """
    import keras
    from keras.layers import Dense  # imported, not defined here: must not be collected


    @keras.saving.register_keras_serializable(package="mvx_tests")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0


    class Halver(keras.layers.Layer):  # not registered: found by class name only
        def call(self, x):
            return x * 0.5


    @keras.saving.register_keras_serializable(package="mvx_tests")
    def scaled_tanh(x):
        return keras.ops.tanh(x) * 2.0
    """
)

INSTALLED_PKG = "mvx_installed_pkg"
LOOSE_MODULE = "mvx_loose_module"


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message, message
    assert len(message) < 400, message
    assert "Expected" in message, message
    return message


def _forget(module_prefix: str, registered_prefix: str) -> None:
    """Undoes an import of a test module: its sys.modules entries and its registrations."""
    for name in [m for m in sys.modules if m.split(".")[0] == module_prefix]:
        del sys.modules[name]
    registry = keras.saving.get_custom_objects()
    for key in [k for k in registry if k.startswith(registered_prefix + ">")]:
        del registry[key]


def _import_file(name: str, path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated_registry():
    """Each test starts without the test-only custom classes registered or imported."""
    yield
    for module, package in (
        (CUSTOM_MODULE, "mvx_tests"),
        (INSTALLED_PKG, INSTALLED_PKG),
        (LOOSE_MODULE, LOOSE_MODULE),
    ):
        _forget(module, package)
    for name in [m for m in sys.modules if m.startswith("_maskviz_custom_")]:
        del sys.modules[name]


def _token_model(name: str) -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, mask_zero=True, name="embedding")(tokens)
    x = keras.layers.LSTM(4, name="lstm")(x)
    return keras.Model(tokens, keras.layers.Dense(1, name="score")(x), name=name)


TOKENS = np.array([[3, 4, 5, 0], [6, 0, 0, 0]], dtype="int32")
FEATURES = np.linspace(-1.0, 1.0, 10, dtype="float32").reshape(2, 5)


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """Every model file the tests load, saved once."""
    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    out: dict[str, object] = {"root": root}

    plain = _token_model("plain")
    plain.compile(optimizer="adam", loss="mse")
    # .keras before .h5: saving to .h5 removes the optimizer from the model's compile config.
    plain.save(root / "plain.keras")
    out["plain"] = root / "plain.keras"
    out["plain_expected"] = keras.ops.convert_to_numpy(plain(TOKENS))
    x_in = keras.Input((5,), name="x")
    dense = keras.Model(x_in, keras.layers.Dense(2, name="dense")(x_in), name="dense")
    dense.compile(optimizer="adam", loss="mse")
    out["dense_expected"] = keras.ops.convert_to_numpy(dense(FEATURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.save(root / "plain.h5")
        plain.save_weights(root / "plain.weights.h5")
        dense.save(root / "dense.h5")
    out["plain_h5"] = root / "plain.h5"
    out["weights_h5"] = root / "plain.weights.h5"
    out["dense_h5"] = root / "dense.h5"

    x_in = keras.Input((5,), name="x")
    lam = keras.Model(x_in, keras.layers.Lambda(lambda t: t + 1.0, name="add_one")(x_in))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "The object being serialized includes a `lambda`"
        lam.save(root / "lambda.keras")
        lam.save(root / "lambda.h5")
    out["lambda"] = root / "lambda.keras"
    out["lambda_h5"] = root / "lambda.h5"

    code_dir = root / "code"
    code_dir.mkdir()
    (code_dir / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_SOURCE)
    out["custom_py"] = code_dir / f"{CUSTOM_MODULE}.py"
    out["code_dir"] = code_dir
    mod = _import_file(CUSTOM_MODULE, out["custom_py"])
    x_in = keras.Input((5,), name="x")
    y = mod.Halver(name="halver")(mod.Doubler(name="doubler")(x_in))
    y = keras.layers.Dense(3, activation=mod.scaled_tanh, name="dense")(y)
    custom = keras.Model(x_in, y, name="custom")
    custom.save(root / "custom.keras")
    out["custom"] = root / "custom.keras"
    out["custom_expected"] = keras.ops.convert_to_numpy(custom(FEATURES))
    _forget(CUSTOM_MODULE, "mvx_tests")

    def mvx_unregistered_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred))

    x_in = keras.Input((5,), name="x")
    lossy = keras.Model(x_in, keras.layers.Dense(2, name="dense")(x_in), name="lossy")
    lossy.compile(optimizer="adam", loss=mvx_unregistered_loss)
    lossy.save(root / "custom_loss.keras")
    out["custom_loss"] = root / "custom_loss.keras"
    out["custom_loss_expected"] = keras.ops.convert_to_numpy(lossy(FEATURES))

    data = (root / "plain.keras").read_bytes()
    (root / "truncated.keras").write_bytes(data[: len(data) // 2])
    out["truncated"] = root / "truncated.keras"
    return out


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory):
    """A directory with an *installed* package (it has dist-info metadata) and a loose module
    (no metadata) that leaves a sentinel file when imported; a model file names each."""
    site = tmp_path_factory.mktemp("site")
    pkg = site / INSTALLED_PKG
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            import keras

            @keras.saving.register_keras_serializable(package="{INSTALLED_PKG}")
            class Tripler(keras.layers.Layer):
                def call(self, x):
                    return x * 3.0
            """
        )
    )
    info = site / f"{INSTALLED_PKG}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mvx-installed-pkg\nVersion: 0.1\n")
    (info / "top_level.txt").write_text(f"{INSTALLED_PKG}\n")
    sentinel = site / "loose_module_was_imported"
    (site / f"{LOOSE_MODULE}.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib
            import keras

            pathlib.Path({str(sentinel)!r}).write_text("imported")

            @keras.saving.register_keras_serializable(package="{LOOSE_MODULE}")
            class Quadrupler(keras.layers.Layer):
                def call(self, x):
                    return x * 4.0
            """
        )
    )
    for module, cls in ((INSTALLED_PKG, "Tripler"), (LOOSE_MODULE, "Quadrupler")):
        path = (
            site / INSTALLED_PKG / "__init__.py"
            if module == INSTALLED_PKG
            else site / f"{module}.py"
        )
        layer_cls = getattr(_import_file(module, path), cls)
        x_in = keras.Input((5,), name="x")
        keras.Model(x_in, layer_cls(name=cls.lower())(x_in)).save(site / f"{module}.keras")
        _forget(module, module)
    sentinel.unlink()
    return site, sentinel


# --------------------------------------------------------------------------- failures


def test_missing_path(tmp_path):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(tmp_path / "nope.keras")
    message = _one_line_error(excinfo)
    assert "nope.keras" in message and "does not exist" in message


def test_directory(tmp_path):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(tmp_path)
    assert "is a directory" in _one_line_error(excinfo)


def test_savedmodel_directory(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(MaskvizError) as excinfo:
        load_model(tmp_path)
    message = _one_line_error(excinfo)
    assert "SavedModel" in message and "model.save('model.keras')" in message


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not a model\n", bytes(range(256)) * 16],
    ids=["text", "binary"],
)
def test_not_a_keras_archive(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    assert "not a Keras archive" in _one_line_error(excinfo)


def test_unzipped_keras_directory(files, tmp_path):
    with zipfile.ZipFile(files["plain"]) as zf:
        zf.extractall(tmp_path)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(tmp_path)
    assert "zip its files into one archive" in _one_line_error(excinfo)


def test_empty_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"")
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    assert "empty" in _one_line_error(excinfo)


def test_zip_without_config(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    assert "without config.json" in _one_line_error(excinfo)


def test_truncated_archive(files):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["truncated"])
    message = _one_line_error(excinfo)
    assert "truncated or corrupt" in message and "truncated.keras" in message


def test_keras_archive_with_h5_suffix(files, tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(files["plain"].read_bytes())
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    assert "rename it to end in .keras" in _one_line_error(excinfo)


def test_unsupported_suffix(files, tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(files["plain"].read_bytes())
    with pytest.raises(MaskvizError) as excinfo:
        load_model(path)
    message = _one_line_error(excinfo)
    assert "'.bin'" in message and "rename it to end in .keras" in message


def test_weights_only_h5(files):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["weights_h5"])
    message = _one_line_error(excinfo)
    assert "weights only" in message and "load_weights" in message


def test_unknown_class_names_it_and_the_flag(files):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["custom"])
    message = _one_line_error(excinfo)
    assert "'Doubler'" in message and "mvx_tests>Doubler" in message
    assert "--custom-objects module.py" in message
    assert "Full object config" not in message


@pytest.mark.parametrize("which", ["lambda", "lambda_h5"])
def test_lambda_refused_names_unsafe(files, which):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files[which])
    message = _one_line_error(excinfo)
    assert "--unsafe" in message and "'add_one'" in message


def test_lambda_refused_even_after_enable_unsafe_deserialization(files):
    """Keras ignores safe_mode=True once the process called enable_unsafe_deserialization();
    maskviz checks the config itself."""
    from keras.src.backend.common import global_state  # test-only: restore Keras's flag

    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    try:
        keras.saving.load_model(files["lambda"], safe_mode=True)  # Keras loads it: the hole
        with pytest.raises(MaskvizError) as excinfo:
            load_model(files["lambda"])
    finally:
        global_state.set_global_attribute("safe_mode_saving", before)
    assert "--unsafe" in _one_line_error(excinfo)


def test_custom_objects_file_missing(files, tmp_path):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["custom"], custom_objects=tmp_path / "layers.py")
    message = _one_line_error(excinfo)
    assert "layers.py" in message and "does not exist" in message


@pytest.mark.parametrize(
    "source, exc_name",
    [("import keras\nraise RuntimeError('boom')\n", "RuntimeError"), ("def f(:\n", "SyntaxError")],
    ids=["raises", "syntax-error"],
)
def test_custom_objects_file_fails_to_import(files, tmp_path, source, exc_name):
    bad = tmp_path / "broken_layers.py"
    bad.write_text(source)
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["custom"], custom_objects=bad)
    message = _one_line_error(excinfo)
    assert "broken_layers.py" in message and exc_name in message
    assert "broken_layers" not in sys.modules


def test_custom_objects_module_not_found(files):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["custom"], custom_objects="mvx_no_such_pkg.layers")
    message = _one_line_error(excinfo)
    assert "'mvx_no_such_pkg.layers'" in message and "mvx_no_such_pkg" in message


def test_custom_objects_neither_file_nor_module(files):
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["custom"], custom_objects="not a module!")
    assert "neither a .py file nor a module" in _one_line_error(excinfo)


# --------------------------------------------------------------------------- happy paths


def test_loads_keras_archive(files):
    model = load_model(files["plain"])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(TOKENS)), files["plain_expected"], rtol=1e-6
    )
    assert model.get_layer("embedding").mask_zero


def test_loads_h5_uncompiled_when_its_training_config_fails(files):
    # Keras 3.15 cannot restore the string loss 'mse' from an .h5 training config.
    with pytest.warns(UserWarning, match="loaded the model uncompiled"):
        model = load_model(files["dense_h5"])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(FEATURES)), files["dense_expected"], rtol=1e-6
    )


def test_h5_with_mask_operation_says_resave_as_keras(files):
    """Keras 3 records the mask it passes to the LSTM as a NotEqual operation node, which the
    legacy .h5 loader does not know ("Unknown layer: 'NotEqual'")."""
    with pytest.raises(MaskvizError) as excinfo:
        load_model(files["plain_h5"])
    message = _one_line_error(excinfo)
    assert "'NotEqual'" in message and "model.save('model.keras')" in message
    assert "custom" not in message


def test_unknown_custom_loss_loads_uncompiled(files):
    """maskviz does not need the loss: a custom one it cannot find costs only the compile."""
    with pytest.warns(UserWarning, match="mvx_unregistered_loss.*loaded the model uncompiled"):
        model = load_model(files["custom_loss"])
    assert not model.compiled
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(FEATURES)), files["custom_loss_expected"]
    )


def test_lambda_loads_with_unsafe(files):
    model = load_model(files["lambda"], unsafe=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(FEATURES)), FEATURES + 1.0)


@pytest.mark.parametrize("how", ["file", "path-object", "module", "list"])
def test_custom_objects(files, monkeypatch, how):
    if how == "file":
        spec = str(files["custom_py"])
    elif how == "path-object":
        spec = files["custom_py"]
    elif how == "module":
        monkeypatch.syspath_prepend(str(files["code_dir"]))
        spec = CUSTOM_MODULE
    else:
        spec = [str(files["custom_py"])]
    model = load_model(files["custom"], custom_objects=spec)
    assert [type(layer).__name__ for layer in model.layers[1:3]] == ["Doubler", "Halver"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(FEATURES)), files["custom_expected"], rtol=1e-6
    )


def test_load_custom_objects_collects_defined_and_registered(files):
    objects = load_custom_objects(files["custom_py"])
    assert {"Doubler", "Halver", "mvx_tests>Doubler", "mvx_tests>scaled_tanh"} <= set(objects)
    assert objects["Doubler"] is objects["mvx_tests>Doubler"]
    assert "Dense" not in objects  # imported by the file, not defined there
    assert load_custom_objects(None) == {}


def test_custom_objects_file_is_imported_once(files):
    first = load_custom_objects(files["custom_py"])
    second = load_custom_objects(files["custom_py"])
    assert first["Halver"] is second["Halver"]


def test_installed_package_named_by_the_file_is_not_imported_without_a_flag(site_dir, monkeypatch):
    site, _ = site_dir
    monkeypatch.syspath_prepend(str(site))
    assert INSTALLED_PKG not in sys.modules
    with pytest.raises(MaskvizError) as excinfo:
        load_model(site / f"{INSTALLED_PKG}.keras")
    message = _one_line_error(excinfo)
    assert f"--allow-import {INSTALLED_PKG}" in message and "--custom-objects" in message
    assert "--unsafe" in message
    assert INSTALLED_PKG not in sys.modules


@pytest.mark.parametrize("how", ["allow_imports", "unsafe"])
def test_installed_package_is_imported_when_allowed(site_dir, monkeypatch, how):
    site, _ = site_dir
    monkeypatch.syspath_prepend(str(site))
    assert INSTALLED_PKG not in sys.modules
    kwargs = {"allow_imports": [INSTALLED_PKG]} if how == "allow_imports" else {"unsafe": True}
    model = load_model(site / f"{INSTALLED_PKG}.keras", **kwargs)
    assert INSTALLED_PKG in sys.modules
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(FEATURES)), FEATURES * 3.0)


def test_module_that_is_not_installed_is_never_imported(site_dir, monkeypatch):
    site, sentinel = site_dir
    monkeypatch.syspath_prepend(str(site))  # importable, but not an installed distribution
    with pytest.raises(MaskvizError) as excinfo:
        load_model(site / f"{LOOSE_MODULE}.keras")
    assert "'Quadrupler'" in _one_line_error(excinfo)
    assert not sentinel.exists()
    assert LOOSE_MODULE not in sys.modules


def test_keras_hub_backbone_loads_without_flags(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    from models.oracle import bert

    backbone = bert(num_layers=1, hidden_dim=8)
    backbone.save(tmp_path / "bert.keras")
    model = load_model(tmp_path / "bert.keras")
    assert type(model) is keras_hub.models.BertBackbone


def test_mask_warnings_silenced_during_load():
    from maskviz.samples import sample_path

    path = sample_path("conv1d_after_masking")
    with warnings.catch_warnings(record=True) as plain:
        warnings.simplefilter("always")
        keras.saving.load_model(path)
    assert any("does not support masking" in str(w.message) for w in plain)  # Keras warns
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        load_model(path)
    assert not [w for w in ours if issubclass(w.category, UserWarning)]


def test_string_input_model_is_inspected_with_vocabulary_words(tmp_path):
    """StringLookup -> Embedding -> LSTM runs in Keras; maskviz probes it with words from
    the lookup's vocabulary, padded with its mask token, instead of failing on the dtype."""
    import maskviz

    vocabulary = ["the", "cat", "sat", "on", "mat"]
    words = keras.Input((None,), dtype="string", name="words")
    ids = keras.layers.StringLookup(vocabulary=vocabulary, mask_token="", name="lookup")(words)
    x = keras.layers.Embedding(len(vocabulary) + 2, 4, mask_zero=True, name="embedding")(ids)
    keras.Model(words, keras.layers.LSTM(3, name="lstm")(x)).save(tmp_path / "words.keras")
    model = load_model(tmp_path / "words.keras")
    report = maskviz.inspect(model)
    try:  # observed, not assumed: some backends have no string tensors (PyTorch, JAX)
        model(np.array([["the", "cat", ""]]))
    except Exception as e:
        # Then maskviz reports Keras's own failure as a finding, not a traceback.
        assert report.trace.error and type(e).__name__ in report.trace.error
        assert "MV112" in {f.rule for f in report.findings}
        return
    assert report.trace.error is None
    values = np.asarray(report.probe.values["words"]).astype(str)
    keep = report.probe.keep["words"]
    assert set(values[keep]) <= set(vocabulary) and set(values[~keep]) == {""}
    embedding = next(c for c in report.trace.calls if c.id.endswith("embedding"))
    assert embedding.outputs[0].mask is not None  # the padding became a mask
