"""Our `run_layer_test`: the checklist Keras runs on its own layers, plus masks.

Keras's `testing.TestCase.run_layer_test` builds a layer, calls it eagerly and
symbolically, checks shapes, round-trips the config and saves a model. It says
nothing about masks, so this helper also checks the mask each layer hands on,
in eager calls and inside a Functional model before and after `.keras`
save/load. Backend-agnostic: the same checks run on TensorFlow and on JAX.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

import maskviz.layers  # noqa: F401  (registers the classes for loading)


@keras.saving.register_keras_serializable(package="maskviz_tests")
class MaskAsTensor(keras.layers.Layer):
    """Test-only layer: outputs the mask it receives as a float tensor (0/1).

    Lets a Functional model expose a mask as an output, so that masks can be
    compared before and after save/load like any other output.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            raise ValueError(
                f"MaskAsTensor got no mask for an input of shape {inputs.shape}. "
                "Expected the mask of the layer under test."
            )
        return ops.cast(mask, "float32")

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None


def _nan_equal_configs(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_nan_equal_configs(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_nan_equal_configs(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _shape_matches(actual: Sequence[Any], expected: Sequence[Any]) -> bool:
    """Shapes match where `expected` is not None."""
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected, strict=True)
    )


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict[str, Any],
    input_data: Any,
    input_mask: Any,
    expected_output_shape: Any,
    expected_mask_shape: Any,
    *,
    expected_output: Any = None,
    expected_mask: Any = None,
    expected_num_weights: int | None = None,
    call_kwargs: dict[str, Any] | None = None,
    run_saving: bool = True,
    atol: float = 1e-5,
) -> dict[str, Any]:
    """Runs the layer checklist on `layer_cls(**init_kwargs)`; raises AssertionError.

    Checks, in order:
      1. config round-trip: `from_config(get_config()).get_config()` equals it,
         and the class is registered under package "maskviz";
      2. build: `layer.build(input_shape)` builds it (weights counted if
         `expected_num_weights` is given);
      3. eager call on `input_data` with `mask=input_mask` (or no mask when
         `None`): output shape, optional `expected_output`; `compute_mask`
         gives `expected_mask_shape` (or `None`), optional `expected_mask`;
      4. symbolic call on `keras.Input`s: output shape (batch left open) agrees
         with `compute_output_shape` and the expected shape, mask shape too;
      5. with `run_saving`: a Functional model (data input, plus a mask input
         if `input_mask` is given) whose outputs are the layer's output and its
         mask (`MaskAsTensor`) gives the eager results, and so does the same
         model after `.keras` save/load.

    Shapes are tuples; for layers with several outputs (`return_state`), a
    list of tuples (and a list of mask shapes, `None` for "no mask").
    Returns the eager output and mask, for extra checks.
    """
    call_kwargs = dict(call_kwargs or {})
    input_data = np.asarray(input_data)
    mask = None if input_mask is None else np.asarray(input_mask, dtype=bool)

    # 1. Config round-trip and registration.
    layer = layer_cls(**init_kwargs)
    registered = keras.saving.get_registered_name(layer_cls)
    assert registered == f"maskviz>{layer_cls.__name__}", registered
    config = layer.get_config()
    revived = layer_cls.from_config(copy.deepcopy(config))
    assert _nan_equal_configs(revived.get_config(), config), (config, revived.get_config())

    # 2. Build.
    built = layer_cls(**init_kwargs)
    built.build(input_data.shape)
    assert built.built
    if expected_num_weights is not None:
        assert len(built.weights) == expected_num_weights, [w.path for w in built.weights]

    # 3. Eager call.
    x = ops.convert_to_tensor(input_data)
    m = None if mask is None else ops.convert_to_tensor(mask)
    output = layer(x, mask=m, **call_kwargs) if m is not None else layer(x, **call_kwargs)
    outputs = _as_list(output)
    exp_shapes = (
        expected_output_shape
        if isinstance(expected_output_shape, list)
        else [expected_output_shape]
    )
    assert [tuple(o.shape) for o in outputs] == [tuple(s) for s in exp_shapes], (
        [o.shape for o in outputs],
        exp_shapes,
    )
    if expected_output is not None:
        expected_outputs = (
            expected_output if isinstance(expected_output_shape, list) else [expected_output]
        )
        for o, e in zip(outputs, expected_outputs, strict=True):
            np.testing.assert_allclose(ops.convert_to_numpy(o), e, atol=atol)
    out_masks = _as_list(layer.compute_mask(x, m))
    exp_mask_shapes = (
        expected_mask_shape if isinstance(expected_mask_shape, list) else [expected_mask_shape]
    )
    if len(out_masks) == 1 and len(exp_mask_shapes) > 1 and out_masks[0] is None:
        out_masks = [None] * len(exp_mask_shapes)
    got_mask_shapes = [None if q is None else tuple(q.shape) for q in out_masks]
    assert got_mask_shapes == [None if s is None else tuple(s) for s in exp_mask_shapes], (
        got_mask_shapes,
        exp_mask_shapes,
    )
    if expected_mask is not None:
        np.testing.assert_array_equal(ops.convert_to_numpy(out_masks[0]), expected_mask)

    # 4. Symbolic call.
    sym_layer = layer_cls.from_config(copy.deepcopy(config))
    data_in = keras.Input(input_data.shape[1:], dtype=str(input_data.dtype))
    inputs = [data_in]
    if mask is not None:
        mask_in = keras.Input(mask.shape[1:], dtype="bool")
        inputs.append(mask_in)
        sym_out = sym_layer(data_in, mask=mask_in, **call_kwargs)
    else:
        sym_out = sym_layer(data_in, **call_kwargs)
    sym_outs = _as_list(sym_out)
    for o, e in zip(sym_outs, exp_shapes, strict=True):
        assert _shape_matches(o.shape, (None, *tuple(e)[1:])), (o.shape, e)
    try:
        declared = _as_list(sym_layer.compute_output_shape(tuple(data_in.shape)))
    except NotImplementedError:  # Keras then infers shapes by tracing `call`
        declared = [tuple(o.shape) for o in sym_outs]
    if len(sym_outs) == 1 and isinstance(declared[0], int | None):
        declared = [tuple(declared)]
    for o, d in zip(sym_outs, declared, strict=True):
        assert _shape_matches(o.shape, tuple(d)), (o.shape, d)
    sym_masks = _as_list(sym_layer.compute_mask(data_in, inputs[1] if mask is not None else None))
    if len(sym_masks) == 1 and len(exp_mask_shapes) > 1 and sym_masks[0] is None:
        sym_masks = [None] * len(exp_mask_shapes)
    for q, e in zip(sym_masks, exp_mask_shapes, strict=True):
        assert (q is None) == (e is None), (q, e)
        if q is not None:
            assert _shape_matches(q.shape, (None, *tuple(e)[1:])), (q.shape, e)

    # 5. Functional model, before and after .keras save/load.
    if run_saving:
        model_outputs = list(sym_outs)
        if exp_mask_shapes[0] is not None:
            model_outputs.append(MaskAsTensor()(sym_outs[0]))
        sym_layer.set_weights(layer.get_weights())
        model = keras.Model(inputs, model_outputs)
        feed = [input_data] if mask is None else [input_data, mask]
        before = [ops.convert_to_numpy(t) for t in _as_list(model(feed))]
        eager = [ops.convert_to_numpy(o) for o in outputs]
        if exp_mask_shapes[0] is not None:
            eager.append(ops.convert_to_numpy(out_masks[0]).astype("float32"))
        for b, e in zip(before, eager, strict=True):
            np.testing.assert_allclose(b, e, atol=atol)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
        assert any(isinstance(lay, layer_cls) for lay in loaded.layers)
        after = [ops.convert_to_numpy(t) for t in _as_list(loaded(feed))]
        for a, b in zip(after, before, strict=True):
            np.testing.assert_allclose(a, b, atol=atol)

    return {"output": output, "mask": out_masks[0] if out_masks else None}
