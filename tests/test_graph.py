"""The call graph (networkx, data only): nodes, edges and their mask states."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from models.render import build_conv_drop, build_nested, build_seq2seq, build_shared, build_video

import maskviz
from maskviz.graph import build_graph, mask_state, worst_state
from maskviz.trace import MaskInfo, TensorInfo

STYLE_KEYS = {"color", "fillcolor", "label", "style", "penwidth", "fontname"}


@pytest.fixture(scope="module")
def graphs():
    cache = {}
    builders = {
        "seq2seq": build_seq2seq,
        "nested": build_nested,
        "shared": build_shared,
        "conv_drop": build_conv_drop,
        "video": build_video,
    }

    def get(name):
        if name not in cache:
            report = maskviz.inspect(builders[name](), oracle=False)
            cache[name] = (report, build_graph(report.trace, report.findings))
        return cache[name]

    return get


def test_one_node_per_call_input_and_output(graphs, passes_mask):
    report, g = graphs("seq2seq")
    calls = [c.id for c in report.trace.calls]
    assert [n for n, d in g.nodes(data=True) if d["kind"] == "call"] == calls
    assert {n for n, d in g.nodes(data=True) if d["kind"] == "input"} == {
        "input:enc_tokens",
        "input:dec_tokens",
    }
    assert {n for n, d in g.nodes(data=True) if d["kind"] == "output"} == {"output:logits"}
    emb = g.nodes["enc_emb"]
    assert emb["class_name"] == "Embedding" and emb["role"] == "generator"
    assert emb["output_shape"] == (4, 8, 8) and emb["output_mask"] == (4, 8)
    assert emb["kept"] == pytest.approx(0.625)
    # The decoder LSTM's output mask, as the installed Keras gives it (observed).
    expected = "carried" if passes_mask("LSTM") else "none"
    assert g.edges["logits", "output:logits"]["mask_state"] == expected


def test_edge_mask_states_in_seq2seq(graphs):
    _, g = graphs("seq2seq")
    assert g.edges["input:enc_tokens", "enc_emb"]["mask_state"] == "none"
    assert g.edges["enc_emb", "encoder"]["mask_state"] == "carried"
    assert g.edges["dec_emb", "decoder"]["mask_state"] == "not-delivered"
    assert g.edges["dec_emb", "decoder"]["arg"] == "sequences"
    states = g.edges["encoder", "decoder"]
    assert [t["arg"] for t in states["tensors"]] == ["initial_state[0]", "initial_state[1]"]
    assert states["mask_state"] == "none"
    dec = g.nodes["decoder"]
    assert dec["received"] is False and dec["call_accepts_mask"]
    assert {"rule": "MV102", "name": "mask-not-delivered", "severity": "error"} in dec["findings"]


def test_explicit_mask_is_delivered():
    report = maskviz.inspect(build_seq2seq(pass_mask=True), oracle=False)
    g = build_graph(report.trace, report.findings)
    assert g.edges["dec_emb", "decoder"]["mask_state"] == "carried"
    assert g.nodes["decoder"]["received"] is True
    assert not any(f["rule"] == "MV102" for f in g.nodes["decoder"]["findings"])


def test_containers_are_marked(graphs):
    _, g = graphs("nested")
    assert g.nodes["block"]["container"] is True
    assert g.nodes["block/proj"]["container"] is False
    assert g.nodes["block/proj"]["parent"] == "block" and g.nodes["block/proj"]["depth"] == 1
    assert g.edges["emb", "block"]["mask_state"] == "carried"
    # RNNs are containers of their cell, which runs once per step of the 8-step probe
    # (how often its Python `call` runs depends on the backend: one record either way).
    _, g = graphs("seq2seq")
    assert g.nodes["encoder"]["container"] is True
    assert g.nodes["encoder/lstm_cell"]["steps"] >= 1
    assert g.nodes["encoder/lstm_cell"]["time_steps"] == 8
    assert g.nodes["encoder"]["time_steps"] is None


def test_shared_layer_calls_have_their_own_ids(graphs):
    report, g = graphs("shared")
    assert {"shared_emb", "shared_emb#1", "shared_gru", "shared_gru#1"} <= set(g.nodes)
    feeds = {v for u in ("input:a", "input:b") for v in g.successors(u)}
    assert feeds == {"shared_emb", "shared_emb#1"}
    assert g.nodes["shared_emb#1"]["path"] == g.nodes["shared_emb"]["path"] == "shared_emb"


def test_dropped_mask_and_wrong_rank(graphs):
    _, g = graphs("conv_drop")
    assert g.nodes["conv"]["role"] == "destroyer"
    assert g.edges["emb", "conv"]["mask_state"] == "carried"
    assert g.edges["conv", "lstm"]["mask_state"] == "none"
    assert any(f["rule"] == "MV101" for f in g.nodes["conv"]["findings"])
    _, g = graphs("video")
    assert g.edges["masking", "conv_lstm"]["mask_state"] == "wrong-rank"
    assert g.nodes["conv_lstm"]["error"]


def test_graph_holds_data_not_styling(graphs):
    for name in ("seq2seq", "nested"):
        _, g = graphs(name)
        for _, d in g.nodes(data=True):
            assert not STYLE_KEYS & set(d)
        for _, _, d in g.edges(data=True):
            assert not STYLE_KEYS & set(d)


def test_unseen_sources_are_listed_on_the_consumer(graphs):
    _, g = graphs("seq2seq")
    if "decoder/lstm_cell" not in g:
        # torch runs the LSTM through a fused kernel: Keras never calls the cell, so
        # nothing inside the decoder is recorded (and none is invented).
        assert not [n for n in g if str(n).startswith("decoder/")], list(g)
        return
    cell = g.nodes["decoder/lstm_cell"]
    assert any(t["arg"] == "inputs" for t in cell["unsourced"])


# --------------------------------------------------------------------------- mask_state


def _consumer(**kw):
    base = {
        "observed": True,
        "call_accepts_mask": True,
        "received_mask": (MaskInfo((4, 8), "bool", 0.5),),
        "class_name": "LSTM",
    }
    return SimpleNamespace(**(base | kw))


def _tensor(shape, mask_shape):
    mask = None if mask_shape is None else MaskInfo(mask_shape, "bool", 0.5)
    return TensorInfo("inputs", shape, "float32", mask, "src", 0)


@pytest.mark.parametrize(
    "shape, mask_shape, consumer, expected",
    [
        ((4, 8, 16), None, {}, "none"),
        ((4, 8, 16), (4, 8), {}, "carried"),
        ((4, 8, 16), (4, 8), {"received_mask": None}, "not-delivered"),
        # Unobserved (symbolic) calls: what they received is unknown.
        ((4, 8, 16), (4, 8), {"received_mask": None, "observed": False}, "carried"),
        # A layer without a `mask` argument cannot be "not delivered".
        ((4, 8, 16), (4, 8), {"received_mask": None, "call_accepts_mask": False}, "carried"),
        ((4, 8, 16), (4, 6), {}, "wrong-rank"),
        ((4, 8), (4, 8, 16), {}, "wrong-rank"),
        # Masking on 5-D frames: a 4-D mask fits its tensor's leading axes; whether the
        # consumer can use it is the rules' observation (`rank_finding`), not the class's.
        ((4, 8, 6, 6, 2), (4, 8, 6, 6), {}, "carried"),
        ((4, 8, 6, 6, 2), (4, 8, 6, 6), {"call_accepts_mask": False}, "carried"),
        # Broadcast axes (attention masks) line up.
        ((4, 2, 8, 8), (4, 1, 1, 8), {"call_accepts_mask": False}, "carried"),
        ((None, None, 16), (None, None), {}, "carried"),
    ],
)
def test_mask_state(shape, mask_shape, consumer, expected):
    assert mask_state(_tensor(shape, mask_shape), _consumer(**consumer)) == expected


def test_rank_finding_marks_wrong_rank():
    assert mask_state(_tensor((4, 8, 16), (4, 8)), _consumer(), rank_finding=True) == "wrong-rank"


def test_worst_state_order():
    assert worst_state(["none", "carried"]) == "carried"
    assert worst_state(["carried", "wrong-rank", "not-delivered"]) == "not-delivered"
    assert worst_state([]) == "none"


def test_correct_masked_time_distributed_edges_are_not_wrong_rank():
    """Issue 9: a class list in graph.py drew a correct `MaskedTimeDistributed` model's
    (batch, time, words) mask as wrong-rank while the rules found nothing."""
    import keras

    import maskviz
    from maskviz.graph import build_graph
    from maskviz.layers import MaskedLSTM, MaskedTimeDistributed

    keras.utils.set_random_seed(0)
    tokens = keras.Input((None, 5), dtype="int32", name="tokens")
    words = MaskedTimeDistributed(keras.layers.Embedding(30, 4, mask_zero=True))(tokens)
    sentences = MaskedTimeDistributed(keras.layers.LSTM(4))(words)
    model = keras.Model(tokens, MaskedLSTM(3)(sentences))
    report = maskviz.inspect(model)
    assert not [f for f in report.findings if f.rule in ("MV103", "MV121")], report
    g = build_graph(report.trace, report.findings)
    states = {d.get("mask_state") for _, _, d in g.edges(data=True)}
    assert "wrong-rank" not in states, states
    assert "carried" in states, states
