"""`ApplyMask`, `ZeroPadded`, `MaskedReduce` (the layers `maskviz fix` inserts)
through the `run_layer_test` checklist, with expected values computed here."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from layer_checklist import run_layer_test  # noqa: E402

import maskviz.layers as mlayers  # noqa: E402
from maskviz.layers import ApplyMask, MaskedReduce, ZeroPadded  # noqa: E402

X = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], bool)


def test_apply_mask_checklist():
    run_layer_test(
        ApplyMask,
        {},
        X,
        MASK,
        expected_output_shape=(3, 4, 2),
        expected_mask_shape=(3, 4),
        expected_output=X,
        expected_mask=MASK,
        expected_num_weights=0,
    )


def test_zero_padded_checklist():
    run_layer_test(
        ZeroPadded,
        {},
        X,
        MASK,
        expected_output_shape=(3, 4, 2),
        expected_mask_shape=(3, 4),
        expected_output=X * MASK[..., None],
        expected_mask=MASK,
        expected_num_weights=0,
    )


def _expected(reduction: str, keepdims: bool) -> np.ndarray:
    out = []
    for row, keep in zip(X, MASK):
        kept = row[keep]
        if not kept.size:
            value = np.zeros(row.shape[1:], "float32")
        else:
            value = {"mean": np.mean, "sum": np.sum, "max": np.max, "min": np.min}[reduction](
                kept, axis=0
            )
        out.append(value[None] if keepdims else value)
    return np.stack(out)


@pytest.mark.parametrize("reduction", ["mean", "sum", "max", "min"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_masked_reduce_checklist(reduction, keepdims):
    expected = _expected(reduction, keepdims)
    run_layer_test(
        MaskedReduce,
        {"reduction": reduction, "keepdims": keepdims},
        X,
        MASK,
        expected_output_shape=expected.shape,
        expected_mask_shape=None,
        expected_output=expected,
        expected_num_weights=0,
        run_saving=reduction == "mean",
    )


def test_masked_reduce_without_mask_is_the_plain_reduction():
    got = np.asarray(MaskedReduce("mean")(X))
    np.testing.assert_allclose(got, X.mean(axis=1), rtol=1e-6)


def test_masked_reduce_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="Received: reduction='median'"):
        MaskedReduce("median")


def test_apply_mask_combines_a_list_of_masks():
    other = np.array([[1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
    mask = ApplyMask().compute_mask(X, [MASK, None, other])
    np.testing.assert_array_equal(np.asarray(mask), MASK & other)


def test_docstring_examples():
    globs = {"keras": keras, **{name: getattr(mlayers, name) for name in mlayers.__all__}}
    result = doctest.testmod(mlayers.pooling, extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
