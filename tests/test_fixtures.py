"""The registry of model fixtures (tests/models/): every group loads, and every twin is
a true twin: the bug model with only the bug repaired, not another model."""

from __future__ import annotations

import warnings

import keras
import models
import numpy as np
import pytest

from maskviz import _keras_internals as ki

# Where a twin swaps a layer for its repaired kind: (bug layer class, twin layer class).
REPAIRS = {
    ("Conv1D", "MaskedConv1D"),
    ("Masking", "TimestepMasking"),
    ("TimeDistributed", "MaskedTimeDistributed"),
    ("SimpleRNN", "MaskedRNN"),
}
# Twins that cannot keep every layer: Flatten keeps the padded steps in its output shape,
# so its repair pools instead, and the head after it gets another kernel shape.
RESHAPED = {"zoo:flatten_after_embedding": ("Flatten", "GlobalAveragePooling1D")}


def _model(built):
    """The model of a built entry (groups return a model, `(model, data)` or an Entry)."""
    if isinstance(built, tuple):
        return built[0]
    return getattr(built, "model", built)


def _build(entry: models.Fixture) -> keras.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _model(entry.build())


def test_every_group_registers_its_models():
    registry = models.load()
    groups = {f.group for f in registry.values()}
    assert groups == set(models.GROUPS)
    for f in registry.values():
        assert callable(f.build), f.name
        assert f.group in f.tags and ({"bug", "clean"} & f.tags), f.name
        if f.twin:
            assert f.twin in registry, f.name
            assert registry[f.twin].bug is None, f"{f.twin} is the repaired twin of {f.name}"
    for f in models.select("reported_bugs"):
        assert f.source and f.source.startswith("http"), f.name
        assert f.truth is not None


def test_every_zoo_bug_has_a_twin():
    bugs = list(models.select("zoo", "bug"))
    assert bugs
    assert [f.name for f in bugs if not f.twin] == []


def test_bundled_samples_come_from_the_registry():
    from maskviz.samples import SAMPLES

    assert {f.name.split(":")[1] for f in models.select("samples")} == set(SAMPLES)


@pytest.mark.parametrize("bug", sorted(f.name for f, _ in models.twins()))
def test_twin_is_the_same_model_with_the_bug_repaired(bug):
    entry = models.get(bug)
    a, b = _build(entry), _build(models.get(entry.twin))
    assert [(t.shape, t.dtype) for t in a.inputs] == [(t.shape, t.dtype) for t in b.inputs]
    la, lb = ([x for x in m.layers if not isinstance(x, keras.layers.InputLayer)] for m in (a, b))
    assert len(la) == len(lb), ([x.name for x in la], [x.name for x in lb])
    reshaped = RESHAPED.get(bug)
    changed = 0
    for x, y in zip(la, lb):
        ca, cb = type(x).__name__, type(y).__name__
        same_kind = isinstance(y, type(x)) or (ca, cb) in REPAIRS or (ca, cb) == reshaped
        assert same_kind, f"{bug}: {x.name} ({ca}) became {y.name} ({cb})"
        changed += type(x) is not type(y)
        if reshaped and changed:
            continue  # the layers after a reshaping repair may change their shapes
        wa, wb = x.weights, y.weights
        assert [w.shape for w in wa] == [w.shape for w in wb], f"{bug}: {x.name}"
        for v, w in zip(wa, wb):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(w), err_msg=x.name
            )
    # The twin repairs something: a layer kind, or how a layer is called.
    assert changed or _calls(a) != _calls(b), f"{bug}: the twin is the same model"


def _calls(model) -> list[tuple[str, tuple[str, ...]]]:
    """(layer class, where each tensor argument comes from) of every call of a functional
    model: the producing layer's class, or the name of the model input."""
    out = []
    for node in ki.functional_nodes(model):
        op, args, kwargs, _ = ki.node_parts(node)
        sources = []
        for t in keras.tree.flatten((args, kwargs)):
            hist = ki.tensor_history(t)
            if hist is not None:
                src = hist[0]
                sources.append(
                    src.name if isinstance(src, keras.layers.InputLayer) else type(src).__name__
                )
        out.append((type(op).__name__, tuple(sources)))
    return out
