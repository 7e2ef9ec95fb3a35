"""The trace: one record per layer call, for every kind of model, and the user's
model left exactly as it was."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import maskviz


def calls_by_class(report):
    out = {}
    for c in report.trace.calls:
        out.setdefault(c.class_name, []).append(c)
    return out


def test_roles_of_a_masked_lstm(inspected):
    calls = calls_by_class(inspected("clean_lstm", oracle=False))
    (emb,) = calls["Embedding"]
    (lstm,) = calls["LSTM"]
    (dense,) = calls["Dense"]
    assert emb.role == "generator" and emb.outputs[0].mask.shape == (4, 8)
    assert lstm.role == "consumer" and lstm.received
    assert lstm.received_mask[0].shape == (4, 8)
    assert dense.role == "none" and dense.outputs[0].mask is None
    # The RNN cell runs once per step: one record. Its Python `call` runs 9 times on
    # TensorFlow and once under JAX's scan; the step count comes from the time axis.
    (cell,) = calls["LSTMCell"]
    assert cell.parent == lstm.id and cell.steps >= 1
    from maskviz.graph import time_steps

    trace = inspected("clean_lstm", oracle=False).trace
    assert time_steps(cell, trace.by_id()) == lstm.inputs[0].shape[1] == 8
    assert time_steps(lstm, trace.by_id()) is None


def test_mask_not_received_is_recorded(inspected):
    report = inspected("seq2seq_initial_state", oracle=False)
    dec = report.trace.call("decoder")
    assert dec.inputs[0].mask is not None
    assert dec.received_mask is None and dec.call_accepts_mask
    assert {t.arg for t in dec.inputs} >= {"sequences", "initial_state[0]", "initial_state[1]"}
    assert dec.inputs[1].source == "encoder"


def test_nested_model_paths_and_edges(inspected):
    trace = inspected("nested_encoder", oracle=False).trace
    ids = [c.id for c in trace.calls]
    assert (
        "encoder" in ids
        and "encoder/lstm" in [i.rsplit("_", 1)[0] for i in ids]
        or any(i.startswith("encoder/lstm") for i in ids)
    )
    inner = [c for c in trace.calls if c.parent == "encoder"]
    assert inner and all(c.depth == 1 for c in inner)
    # The inner model's first layer is fed by the outer embedding.
    first = inner[0]
    assert first.inputs[0].source.startswith("embedding")


def test_shared_layer_gets_one_record_per_call(inspected):
    trace = inspected("shared_embedding", oracle=False).trace
    ids = [c.id for c in trace.calls]
    assert "shared_emb" in ids and "shared_emb#1" in ids
    assert "shared_gru" in ids and "shared_gru#1" in ids
    second = trace.call("shared_gru#1")
    assert second.call_index == 1
    sources = {trace.call(i).inputs[0].source for i in ("shared_gru", "shared_gru#1")}
    assert sources == {"shared_emb", "shared_emb#1"}
    # Inner calls hang under the call they belong to.
    assert {c.parent for c in trace.calls if c.class_name == "GRUCell"} == sources.__class__(
        {"shared_gru", "shared_gru#1"}
    )


def test_subclassed_and_sequential_models_are_traced(inspected):
    for name in ("subclassed_tagger", "sequential_lstm"):
        trace = inspected(name, oracle=False).trace
        roles = {c.class_name: c.role for c in trace.calls}
        assert roles["Embedding"] == "generator"
        assert trace.calls[0].inputs[0].source.startswith("input:")


def test_bidirectional_and_attention(inspected, passes_mask):
    calls = calls_by_class(inspected("bidirectional_tagger", oracle=False))
    (bi,) = calls["Bidirectional"]
    assert bi.received
    assert (bi.outputs[0].mask is not None) == passes_mask("Bidirectional")
    assert {c.parent for c in calls["LSTM"]} == {bi.id}
    calls = calls_by_class(inspected("transformer_block", oracle=False))
    (mha,) = calls["MultiHeadAttention"]
    # MultiHeadAttention gets query_mask/value_mask, not `mask`.
    assert mha.role == "consumer" and len(mha.received_mask) >= 2


def test_timedistributed_inner_call_is_recorded(inspected):
    trace = inspected("timedistributed_embedding", oracle=False).trace
    inner = [c for c in trace.calls if c.via == "call" and c.class_name == "Embedding"]
    assert len(inner) == 1
    (emb,) = inner
    assert emb.steps == 3 and emb.computed_mask[0].shape == (4, 5)


def _snapshot(model):
    layers = model._flatten_layers(include_self=True, recursive=True)
    return (
        [np.array(keras.ops.convert_to_numpy(w), copy=True) for w in model.weights],
        [sorted(vars(layer)) for layer in layers],
        ["call" in vars(layer) for layer in layers],
        keras.layers.Layer.__call__,
    )


def _assert_same(before, after):
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    assert before[1] == after[1]
    assert before[2] == after[2]
    assert before[3] is after[3]


@pytest.mark.parametrize(
    "name", ["seq2seq_initial_state", "masking_5d_convlstm_valid", "subclassed_tagger"]
)
def test_inspect_leaves_the_model_unchanged(name, zoo):
    model = zoo[name]
    feed = maskviz.inspect(model, oracle=False).probe.feed()
    before = _snapshot(model)
    try:
        out_before = keras.ops.convert_to_numpy(model(feed))
    except Exception:
        out_before = None
    maskviz.inspect(model)
    _assert_same(before, _snapshot(model))
    if out_before is not None:
        np.testing.assert_array_equal(out_before, keras.ops.convert_to_numpy(model(feed)))


class Boom(keras.layers.Layer):
    """Fails on data once armed (after the model is built), on any backend: torch's
    symbolic build runs `call` on tensors with a concrete batch size."""

    armed = False

    def call(self, x):
        if self.armed:
            raise RuntimeError("boom at data time")
        return x


def test_instrumentation_is_removed_when_the_run_fails_half_way():
    i = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(i)
    x = Boom(name="boom")(x)
    model = keras.Model(i, keras.layers.GRU(2)(x))
    model.get_layer("boom").armed = True
    before = _snapshot(model)
    report = maskviz.inspect(model)
    assert "MV112" in report.rule_ids
    assert report.trace.error_call == "boom"
    _assert_same(before, _snapshot(model))


def test_same_model_gives_byte_identical_json(zoo):
    model = zoo["transformer_block"]
    a = maskviz.inspect(model).to_json()
    b = maskviz.inspect(model).to_json()
    assert a == b
    assert '"maskviz"' in a and '"findings"' in a


def test_user_data_replaces_the_probe(zoo, tmp_path):
    model = zoo["clean_lstm"]
    tokens = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 0, 0, 0, 0]], dtype="int32")
    path = tmp_path / "d.npz"
    np.savez(path, tokens=tokens)
    report = maskviz.inspect(model, data=str(path))
    assert report.probe.from_data
    emb = report.trace.calls[0]
    assert emb.outputs[0].mask.shape == (2, 6) and emb.outputs[0].mask.kept == 0.4167


def test_bad_data_is_one_clear_error(zoo, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, wrong=np.zeros((2, 3)))
    with pytest.raises(maskviz.MaskvizError, match="keys do not match"):
        maskviz.inspect(zoo["clean_lstm"], data=str(path))


class AsksItsInner(keras.layers.Layer):
    """Passes a mask to its inner layer only if the inner `call` declares `mask`,
    as wrappers do (MaskedTimeDistributed, Keras's TimeDistributed)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.inner = keras.layers.GRU(2, name="inner_gru")
        self.supports_masking = True

    def call(self, x, mask=None):
        import inspect

        kwargs = {}
        if mask is not None and "mask" in inspect.signature(self.inner.call).parameters:
            kwargs["mask"] = mask
        return self.inner(x, **kwargs)

    def compute_mask(self, x, mask=None):
        return None


def test_instrumentation_is_invisible_to_signature_checks():
    i = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(i)
    model = keras.Model(i, AsksItsInner(name="asks")(x))
    report = maskviz.inspect(model, oracle=False)
    inner = report.trace.call("asks/inner_gru")
    assert inner.received, "tracing changed what the layer saw of its inner call's signature"
