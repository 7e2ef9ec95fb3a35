"""keras.ops calls in Functional graphs are traced as calls (issue 10, item 3).

Every model's truth is measured here with Keras itself: an op that drops a mask is
one whose output changes when only the padded values change.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import layers, ops

import maskviz
from maskviz.graph import build_graph
from maskviz.render import to_dot
from maskviz.trace import run_trace

VOCAB, T, D = 30, 7, 5


def _tokens(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, size=(3, T)).astype("int32")
    x[0, 4:] = 0
    x[1, 2:] = 0
    return x


def _pad_changes_output(model: keras.Model, x: np.ndarray, out: int = 0) -> bool:
    """Truth: does changing only the padding ids change the output of real rows?

    Padded ids are replaced by other ids; the embedding mask says they are padding,
    so a correctly masked model's outputs must not move."""
    alt = x.copy()
    alt[x == 0] = 0
    y1 = model.predict(x, verbose=0)
    # Change the embedding rows of the padding id instead of the ids (mask stays).
    emb = next(lyr for lyr in model.layers if isinstance(lyr, layers.Embedding))
    w = emb.get_weights()
    w2 = [w[0].copy()]
    w2[0][0] += 5.0
    emb.set_weights(w2)
    try:
        y2 = model.predict(alt, verbose=0)
    finally:
        emb.set_weights(w)
    y1 = y1[out] if isinstance(y1, list) else y1
    y2 = y2[out] if isinstance(y2, list) else y2
    return not np.allclose(y1, y2, atol=1e-5)


def _mean_model() -> keras.Model:
    t = keras.Input((T,), dtype="int32", name="tokens")
    e = layers.Embedding(VOCAB, D, mask_zero=True)(t)
    m = ops.mean(e, axis=1)
    return keras.Model(t, layers.Dense(2)(m))


def _ops_between_layers_model() -> keras.Model:
    t = keras.Input((T,), dtype="int32", name="tokens")
    e = layers.Embedding(VOCAB, D, mask_zero=True, name="embedding")(t)
    x = e * 2.0
    x = x[:, :-1]
    y = layers.LSTM(3, name="lstm")(x)
    return keras.Model(t, y)


def _trace(model):
    return maskviz.inspect(model, oracle=False).trace


def test_op_calls_are_recorded_like_layer_calls():
    model = _ops_between_layers_model()
    trace = _trace(model)
    ops_calls = [c for c in trace.calls if c.kind == "op"]
    assert [c.class_name for c in ops_calls] == ["Multiply", "GetItem"]
    mul, get = ops_calls
    # Same fields as a layer call: shapes, masks in and out, parent, role.
    assert mul.inputs[0].mask is not None and mul.inputs[0].source == "embedding"
    assert mul.outputs[0].mask is None and mul.role == "destroyer"
    assert get.inputs[0].source == mul.id
    assert get.outputs[0].shape[1] == T - 1
    assert mul.parent is None and mul.received_mask is None and not mul.call_accepts_mask
    # The LSTM's input comes from the op now: no unsourced input.
    lstm = trace.call("lstm")
    assert lstm.inputs[0].source == get.id
    # The oracle gets the op's output arrays like a layer's.
    assert trace.values[mul.id][0].shape == (trace.values[mul.id][0].shape[0], T, D)


def test_keras_mask_ops_are_not_recorded():
    """The ops Keras records while computing Embedding's/Masking's masks are not calls."""
    t = keras.Input((T,), dtype="int32")
    v = keras.Input((T, 3))
    a = layers.LSTM(2)(layers.Embedding(VOCAB, 4, mask_zero=True)(t))
    b = layers.LSTM(2)(layers.Masking()(v))
    trace = _trace(keras.Model([t, v], [a, b]))
    assert not [c for c in trace.calls if c.kind == "op"]


def test_op_dropping_the_mask_is_a_finding_and_leaks():
    model = _mean_model()
    x = _tokens()
    assert _pad_changes_output(model, x)  # truth: padding reaches the output
    report = maskviz.inspect(model)
    mean = [c for c in report.trace.calls if c.kind == "op"]
    assert [c.class_name for c in mean] == ["Mean"]
    rules = {f.rule for f in report.findings if f.call_id == mean[0].id}
    assert rules & {"MV107", "MV101"}, report.findings


def test_hand_made_mask_with_not_equal_is_correct():
    """A mask built by hand with `ops.not_equal` and passed explicitly: no error."""
    t = keras.Input((T,), dtype="int32", name="tokens")
    mask = ops.not_equal(t, 0)
    e = layers.Embedding(VOCAB, D)(t)
    y = layers.LSTM(3, name="lstm")(e, mask=mask)
    model = keras.Model(t, y)
    assert not _pad_changes_output(model, _tokens())
    report = maskviz.inspect(model)
    ne = [c for c in report.trace.calls if c.kind == "op"]
    assert [c.class_name for c in ne] == ["NotEqual"]
    lstm = report.trace.call("lstm")
    # The explicit mask is an input edge from the op that made it.
    assert any(t.source == ne[0].id for t in lstm.inputs)
    assert not [f for f in report.findings if f.severity.value == "error"], report.findings


def test_cast_and_multiply_masking_done_right_is_correct():
    t = keras.Input((T,), dtype="int32", name="tokens")
    m = ops.cast(ops.not_equal(t, 0), "float32")
    e = layers.Embedding(VOCAB, D)(t)
    x = e * m[:, :, None]
    s = ops.sum(x, axis=1) / ops.maximum(ops.sum(m, axis=1, keepdims=True), 1.0)
    model = keras.Model(t, layers.Dense(2)(s))
    assert not _pad_changes_output(model, _tokens())
    report = maskviz.inspect(model)
    assert len([c for c in report.trace.calls if c.kind == "op"]) >= 5
    assert not [f for f in report.findings if f.severity.value == "error"], report.findings
    assert "MV122" not in {f.rule for f in report.findings}


def test_op_calls_in_text_json_and_graph():
    model = _ops_between_layers_model()
    report = maskviz.inspect(model, oracle=False)
    text = str(report)
    assert "ops.Multiply" in text and "ops.GetItem" in text
    data = json.loads(json.dumps(report.trace.to_dict()))
    kinds = {c["id"]: c["kind"] for c in data["calls"]}
    assert kinds["lstm"] == "layer" and "op" in kinds.values()
    g = build_graph(report.trace, report.findings)
    op_nodes = [n for n, d in g.nodes(data=True) if d.get("call_kind") == "op"]
    assert len(op_nodes) == 2
    dot = to_dot(g)
    assert "ops.Multiply" in dot and "dashed" in dot


def test_ops_in_nested_functional_model_get_paths():
    inner_in = keras.Input((T, D))
    inner = keras.Model(inner_in, ops.cumsum(inner_in, axis=1), name="inner")
    t = keras.Input((T,), dtype="int32")
    y = inner(layers.Embedding(VOCAB, D)(t))
    trace = _trace(keras.Model(t, y))
    ids = [c.id for c in trace.calls if c.kind == "op"]
    assert ids and ids[0].startswith("inner/")


def test_symbolic_records_include_ops_when_the_pass_fails():
    """A crash before an op: the op still gets a (symbolic) record."""
    x = keras.Input((6, 4))
    m = keras.Input((5,), dtype="bool")
    h = layers.LSTM(3, return_sequences=True)(x, mask=m)
    y = ops.mean(h, axis=1)
    model = keras.Model([x, m], y)
    feed = [np.ones((2, 6, 4), "float32"), np.ones((2, 5), bool)]
    try:
        model(feed)
        crashed = False
    except Exception:
        crashed = True
    inputs = [
        maskviz.trace.ModelInput("x", (None, 6, 4), "float32"),
        maskviz.trace.ModelInput("m", (None, 5), "bool", kind="mask"),
    ]
    trace = run_trace(model, inputs, feed)
    means = [c for c in trace.calls if c.class_name == "Mean"]
    assert len(means) == 1 and means[0].kind == "op"
    assert means[0].observed is (not crashed)


def test_mask_changed_in_transit():
    """MultiHeadAttention clears its inputs' masks: a consumer that Keras runs after
    it gets the tensor without its mask (produced with one, consumed without)."""
    t = keras.Input((T,), dtype="int32", name="tokens")
    e = layers.Embedding(VOCAB, D, mask_zero=True)(t)
    a = layers.MultiHeadAttention(2, 4, name="multi_head_attention")(e, e)
    a = layers.GlobalAveragePooling1D()(layers.Dense(D)(layers.Dense(D)(a)))
    p = layers.GlobalAveragePooling1D(name="pool_e")(e)
    model = keras.Model(t, [a, p])
    x = _tokens()
    # Truth, measured with Keras: did the pooling of `e` see the mask?
    w = model.get_layer(index=1).get_weights()[0]
    masked_mean = np.stack([w[row[row != 0]].mean(axis=0) for row in x])
    saw_mask = np.allclose(model.predict(x, verbose=0)[1], masked_mean, atol=1e-5)

    report = maskviz.inspect(model, data={"tokens": x})
    pool = report.trace.call("pool_e")
    rules = {f.rule: f for f in report.findings}
    if pool.inputs[0].mask_changed:
        assert pool.inputs[0].produced_mask is not None and pool.inputs[0].mask is None
        assert pool.inputs[0].changed_by == "multi_head_attention"
        assert "query" in report.trace.call("multi_head_attention").changed_masks
        f = rules["MV120"]
        assert f.call_id == "multi_head_attention" and "pool_e" in f.message
        # Severity follows what happened: the pooling still got its mask through the
        # graph (Functional replays the mask argument), so no harm was observed.
        assert f.severity.value == ("info" if saw_mask and pool.received else "error")
        assert "(was (" in str(report)
    else:
        assert "MV120" not in rules


class _AttendThenPool(keras.Model):
    """A subclassed model that pools the embeddings after attending over them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emb = layers.Embedding(VOCAB, D, mask_zero=True, name="emb")
        self.mha = layers.MultiHeadAttention(2, 4, name="mha")
        self.pool = layers.GlobalAveragePooling1D(name="pool")
        self.head = layers.Dense(2, name="head")

    def call(self, tokens):
        x = self.emb(tokens)
        a = self.mha(x, x)
        return self.head(ops.concatenate([self.pool(x), ops.mean(a, axis=1)], axis=-1))


def test_mask_cleared_by_attention_in_a_subclassed_model_is_an_error():
    model = _AttendThenPool()
    x = _tokens()
    model(x)
    # Truth: the pooling of the embeddings, measured inside the model, is not the
    # masked mean (its mask was cleared before it ran).
    w = model.emb.get_weights()[0]
    masked_mean = np.stack([w[row[row != 0]].mean(axis=0) for row in x])
    seen = {}
    original = model.pool.call

    def spy(inputs, mask=None):
        out = original(inputs, mask=mask)
        seen["pooled"] = ops.convert_to_numpy(out)
        seen["mask"] = mask
        return out

    model.pool.call = spy
    try:
        model(x)
    finally:
        del model.pool.call
    pooled_masked = np.allclose(seen["pooled"], masked_mean, atol=1e-5)

    report = maskviz.inspect(model, data={"input": x})
    rules = {f.rule: f for f in report.findings}
    pool = report.trace.call("pool")
    if seen["mask"] is None:
        assert not pooled_masked
        assert pool.inputs[0].mask_changed and pool.inputs[0].changed_by == "mha"
        f = rules["MV120"]
        assert f.call_id == "mha" and f.severity.value == "error"
    else:
        assert pooled_masked
        assert "MV120" not in rules or rules["MV120"].severity.value != "error"


_BETWEEN = {
    "Concatenate": lambda e: ops.concatenate([e, e], axis=-1),
    "Reshape": lambda e: ops.reshape(e, (-1, T, D)),
    "Take": lambda e: ops.take(e, list(range(T)), axis=1),
    "Where": lambda e: ops.where(e > 0.0, e, 0.0),
    "GetItem": lambda e: e[:, :-1],
}


@pytest.mark.parametrize("name", sorted(_BETWEEN))
def test_op_between_embedding_and_lstm_is_where_the_mask_stops(name):
    t = keras.Input((T,), dtype="int32", name="tokens")
    e = layers.Embedding(VOCAB, D, mask_zero=True, name="embedding")(t)
    y = layers.LSTM(3, name="lstm")(_BETWEEN[name](e))
    model = keras.Model(t, y)
    x = _tokens()
    leaks = _pad_changes_output(model, x)  # truth, measured
    report = maskviz.inspect(model, data={"tokens": x})
    op = [c for c in report.trace.calls if c.kind == "op" and c.class_name == name]
    assert len(op) == 1
    op = op[0]
    assert any(i.mask is not None and i.source == "embedding" for i in op.inputs)
    lstm = report.trace.call("lstm")
    assert any(t.source == op.id for t in lstm.inputs)
    if op.outputs[0].mask is None:
        # The op is the call where the mask stops.
        assert op.role == "destroyer"
        ops_fed = {c.id for c in report.trace.calls if c.kind == "op"}
        assert any(f.rule == "MV101" and f.call_id in ops_fed for f in report.findings)
    if leaks:
        assert any(f.severity.value == "error" for f in report.findings)
