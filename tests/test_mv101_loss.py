"""MV101 judges a mask dropped before the loss by what the loss does, whether a
layer or a `keras.ops` call drops it.

The truth is measured here without maskviz: the model is compiled with the loss
and evaluated on targets that differ only at padded steps. When the loss moves,
it counts padding.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import maskviz  # noqa: E402

L = keras.layers
LENGTHS = (6, 3, 4)
T = 7


@keras.saving.register_keras_serializable(package="test_mv101_loss")
class Times1(L.Layer):
    """A per-step layer that does not declare `supports_masking`."""

    def call(self, x):
        return x * 1


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((len(LENGTHS), T, 1), "float32")
    for r, n in enumerate(LENGTHS):
        x[r, :n] = rng.uniform(0.5, 1.5, (n, 1))
    return x


def _op_drop():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(0.0, name="masking")(i)
    x = x * 1
    return keras.Model(i, L.Dense(1, name="head")(x))


def _layer_drop():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(0.0, name="masking")(i)
    x = Times1(name="times1")(x)
    return keras.Model(i, L.Dense(1, name="head")(x))


def _mask_kept():
    i = keras.Input((None, 1), name="x")
    x = L.Masking(0.0, name="masking")(i)
    return keras.Model(i, L.Dense(1, name="head")(x))


def loss_counts_padding(build) -> float:
    """How much the MSE moves when only the targets at padded steps change."""
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(loss="mse")
    x = _data()
    y = 2.0 * x + 1.0
    padded = x == 0.0
    y2 = np.where(padded, y + 5.0, y)
    a = float(model.evaluate(x, y, verbose=0))
    b = float(model.evaluate(x, y2, verbose=0))
    return abs(a - b)


def _mv101(build, **kw):
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = maskviz.inspect(build(), data={"x": _data()}, **kw)
    return [f for f in report.findings if f.rule == "MV101"], report


@pytest.mark.parametrize(
    "build,kind,cls", [(_op_drop, "op", "Multiply"), (_layer_drop, "layer", "Times1")]
)
def test_drop_before_the_loss_is_an_error_for_ops_and_layers(build, kind, cls):
    change = loss_counts_padding(build)
    assert change > 1e-3, "the loss should count padding on this model"
    found, report = _mv101(build, loss="mse")
    assert [f.severity.value for f in found] == ["error"], report
    call = report.trace.by_id()[found[0].call_id]
    assert (call.kind, call.class_name) == (kind, cls)


@pytest.mark.parametrize("build", [_op_drop, _layer_drop])
def test_compiled_loss_counts_as_the_loss(build):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = maskviz.inspect(model, data={"x": _data()})
    assert any(f.rule == "MV101" and f.severity.value == "error" for f in report.findings)


@pytest.mark.parametrize("build", [_op_drop, _layer_drop])
def test_without_a_loss_the_drop_is_a_warning(build):
    found, _ = _mv101(build)
    assert [f.severity.value for f in found] == ["warning"]


def test_a_model_whose_loss_ignores_padding_gets_no_mv101():
    assert loss_counts_padding(_mask_kept) <= 1e-6
    found, report = _mv101(_mask_kept, loss="mse")
    assert not found
    assert not report.at_or_above("error"), report


@pytest.mark.parametrize("build", [_op_drop, _layer_drop])
def test_fix_gives_a_model_whose_loss_ignores_padding(build, tmp_path):
    """`maskviz fix --loss mse` repairs the drop at the op or the layer; the written
    model's loss no longer moves with the padded targets (measured here)."""
    from maskviz.fixes import fix_model_file

    assert loss_counts_padding(build) > 1e-3
    keras.utils.set_random_seed(0)
    out = tmp_path / "fixed.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fix_model_file(build(), str(out), data={"x": _data()}, loss="mse")
    assert result.written and result.ok, result.to_text()
    fixed = keras.saving.load_model(out)
    assert loss_counts_padding(lambda: fixed) <= 1e-6
