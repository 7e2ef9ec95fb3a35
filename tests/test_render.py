"""The drawn graph: DOT compared with tests/goldens/, and the files each format writes.

Rewrite the goldens after an intended change, then review them as a diff:

    pytest tests/test_render.py --update-goldens      # or MASKVIZ_UPDATE_GOLDENS=1
    git diff tests/goldens/
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import pytest
from models.render import BUILDERS, build_nested, build_seq2seq

import maskviz
from maskviz.errors import MaskvizError
from maskviz.findings import Finding, Severity
from maskviz.graph import build_graph
from maskviz.render import render_file, to_dot

GOLDENS = Path(__file__).parent / "goldens"


# golden name -> (model, depth)
GOLDEN_CASES = {
    "seq2seq": ("seq2seq", None),
    "nested": ("nested", None),
    "nested_depth0": ("nested", 0),
    "shared": ("shared", None),
    "time_distributed": ("time_distributed", None),
    "conv_drop": ("conv_drop", None),
    "video": ("video", None),
}


# Goldens whose drawing depends on whether the installed Keras's LSTM passes its mask on
# (3.15 does, its next release does not): one file per observed behaviour.
VERSIONED_GOLDENS = {"seq2seq"}


def _backend_neutral(dot: str) -> str:
    """The goldens are TensorFlow's. Other backends word a crash differently, and run an
    RNN's cell through a fused kernel whose Python `call` Keras never makes (torch), so
    the cell's row and the call count are left out of the comparison there."""
    dot = re.sub(r"failed: [^<]*", "failed: ...", dot)
    dot = re.sub(r'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">cell [^<]*</FONT></TD></TR>', "", dot)
    return re.sub(r"\): \d+ calls", "): N calls", dot)


def golden_path(case: str, passes_mask) -> Path:
    if case not in VERSIONED_GOLDENS:
        return GOLDENS / f"{case}.dot"
    variant = "rnn-passes-mask" if passes_mask("LSTM") else "rnn-drops-mask"
    return GOLDENS / variant / f"{case}.dot"


@pytest.fixture(scope="module")
def reports():
    cache: dict[str, maskviz.Report] = {}

    def get(name: str) -> maskviz.Report:
        if name not in cache:
            cache[name] = maskviz.inspect(BUILDERS[name]())
        return cache[name]

    return get


def _node_block(dot: str, node: str) -> str:
    """The attribute block of `node` in DOT text."""
    quoted = f'"{node}"' if re.search(r"[^A-Za-z0-9_]", node) else node
    m = re.search(rf"^\s*{re.escape(quoted)}\s*\[(.*?)\];", dot, re.S | re.M)
    assert m, f"node {node} not in DOT"
    return m.group(1)


def _edge_block(dot: str, u: str, v: str) -> str:
    def q(n: str) -> str:
        return f'"{n}"' if re.search(r"[^A-Za-z0-9_]", n) else n

    m = re.search(rf"^\s*{re.escape(q(u))} -> {re.escape(q(v))}\s*\[(.*?)\];", dot, re.S | re.M)
    assert m, f"edge {u} -> {v} not in DOT"
    return m.group(1)


# --------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_dot_matches_golden(case, reports, update_goldens, passes_mask):
    model, depth = GOLDEN_CASES[case]
    dot = reports(model).to_dot(depth=depth)
    path = golden_path(case, passes_mask)
    if update_goldens:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dot, encoding="utf-8")
    assert path.exists(), f"missing golden {path}: run pytest with --update-goldens"
    expected = path.read_text(encoding="utf-8")
    if keras.backend.backend() != "tensorflow":
        # The goldens are TensorFlow's; a crash's message is the backend's own text.
        dot, expected = _backend_neutral(dot), _backend_neutral(expected)
    assert dot == expected, (
        f"DOT for {case} differs from {path}. If the change is intended, rerun with "
        "--update-goldens (or MASKVIZ_UPDATE_GOLDENS=1) and review `git diff tests/goldens/`."
    )


def test_dot_is_deterministic_across_builds():
    # A fresh model, a fresh trace, a fresh graph: the same text.
    first = maskviz.inspect(build_nested(), oracle=False).to_dot()
    second = maskviz.inspect(build_nested(), oracle=False).to_dot()
    assert first == second
    assert not re.search(r"0x[0-9a-fA-F]{6,}", first), "memory address in DOT"
    assert "pos=" not in first and "bb=" not in first, "layout positions in DOT"


# --------------------------------------------------------------------------- content


def test_seq2seq_shows_the_undelivered_mask(reports, passes_mask):
    dot = reports("seq2seq").to_dot()
    edge = _edge_block(dot, "dec_emb", "decoder")
    assert 'color="#c62828"' in edge and "style=dashed" in edge
    assert "mask not delivered" in edge
    assert "MV102" in _node_block(dot, "decoder")
    assert "mask NOT received" in _node_block(dot, "decoder")
    # The encoder got its mask: a blue edge, no badge.
    assert 'color="#1565c0"' in _edge_block(dot, "enc_emb", "encoder")
    assert "MV10" not in _node_block(dot, "encoder")
    # Both LSTM states arrive on one labelled edge, without a mask.
    states = _edge_block(dot, "encoder", "decoder")
    assert "initial_state[0], initial_state[1]" in states and 'color="#9e9e9e"' in states
    # Every node shows its output shape and mask.
    logits = _node_block(dot, "logits")
    shown = "mask (4, 8) 62% kept" if passes_mask("LSTM") else "mask none"
    assert "out (4, 8, 50)" in logits and shown in logits
    # The text report agrees.
    assert "MV102" in reports("seq2seq").to_text()


def test_fixed_seq2seq_has_no_undelivered_edge():
    report = maskviz.inspect(build_seq2seq(pass_mask=True), oracle=False)
    dot = report.to_dot()
    edge = _edge_block(dot, "dec_emb", "decoder")
    assert 'color="#1565c0"' in edge and "not delivered" not in edge
    assert "mask NOT received" not in dot and "MV102" not in dot
    assert "mask received" in _node_block(dot, "decoder")


def test_nested_model_is_a_cluster_and_collapses(reports):
    report = reports("nested")
    full = report.to_dot()
    assert "subgraph cluster_block {" in full
    assert "block/proj" in full and "block/norm" in full
    # Its own box leads in, `block out` leads on to the pooling.
    assert _edge_block(full, "emb", "block")
    assert _edge_block(full, "block", "block/proj")
    assert _edge_block(full, "block:out", "pool")

    collapsed = report.to_dot(depth=0)
    assert "cluster_block" not in collapsed and "block/proj" not in collapsed
    box = _node_block(collapsed, "block")
    assert "shape=box3d" in box and "2 calls inside" in box
    assert "mask in (4, 8) &#8594; out (4, 8)" in box
    assert _edge_block(collapsed, "block", "pool")


def test_collapsed_box_carries_inner_findings(reports):
    # The renderer only styles: a finding on an inner call, whatever rule made
    # it, shows on the box that hides that call.
    trace = reports("nested").trace
    finding = Finding(
        rule="MV999",
        name="test-finding",
        severity=Severity.WARNING,
        call_id="block/norm",
        layer="norm",
        path="block/norm",
        message="m",
    )
    graph = build_graph(trace, [finding])
    full = to_dot(graph)
    assert "MV999" in _node_block(full, "block/norm")
    assert "MV999" not in _node_block(full, "block")
    collapsed = to_dot(graph, depth=0)
    assert "MV999" in _node_block(collapsed, "block")
    assert 'BGCOLOR="#ef6c00"' in _node_block(collapsed, "block")  # warning colour


def test_shared_layer_calls_are_separate_nodes(reports):
    dot = reports("shared").to_dot()
    for node in ("shared_emb", "shared_emb#1", "shared_gru", "shared_gru#1"):
        assert _node_block(dot, node)
    # An RNN's cell is a row of its box, not a cluster of its own.
    assert "cluster_shared_gru" not in dot and "shared_gru/gru_cell" not in dot
    assert "cell GRUCell &#183; 8 steps" in _node_block(dot, "shared_gru#1")
    heads = {m.group(1) for m in re.finditer(r'"input:[ab]" -> "?([\w#]+)"?', dot)}
    assert heads == {"shared_emb", "shared_emb#1"}


def test_time_distributed_inner_layer_in_its_cluster(reports):
    dot = reports("time_distributed").to_dot()
    assert "subgraph cluster_td_emb {" in dot
    inner = _node_block(dot, "td_emb/emb")
    assert "Embedding &#183; 3 steps" in inner and "generator" in inner


def test_finding_badge_on_its_node(reports):
    report = reports("conv_drop")
    assert "MV101" in report.rule_ids
    dot = report.to_dot()
    conv = _node_block(dot, "conv")
    assert "MV101" in conv and 'BGCOLOR="#c62828"' in conv and "destroyer" in conv
    assert "MV101" in report.to_text()


def test_wrong_rank_mask_edge(reports):
    dot = reports("video").to_dot()
    edge = _edge_block(dot, "masking", "conv_lstm")
    assert 'color="#ef6c00"' in edge and "wrong rank" in edge
    assert "failed:" in _node_block(dot, "conv_lstm")


def test_legend_explains_every_colour(reports):
    dot = reports("seq2seq").to_dot()
    legend = _node_block(dot, "legend")
    for word in ("generator", "propagator", "modifier", "consumer", "destroyer"):
        assert word in legend
    for state in ("mask carried", "no mask", "wrong rank", "not delivered"):
        assert state in legend


def test_depth_must_not_be_negative(reports):
    with pytest.raises(MaskvizError, match="depth"):
        reports("nested").to_dot(depth=-1)


# --------------------------------------------------------------------------- files

MAGIC = {".svg": b"<?xml", ".png": b"\x89PNG", ".pdf": b"%PDF", ".dot": b"digraph"}


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_render_file_writes_each_format(suffix, reports, tmp_path):
    target = tmp_path / f"seq2seq{suffix}"
    written = reports("seq2seq").render(str(target))
    assert written == str(target)
    data = target.read_bytes()
    assert data.startswith(MAGIC[suffix]), data[:20]
    if suffix == ".svg":
        assert b"decoder" in data and b"MV102" in data
    if suffix == ".dot":
        assert data.decode() == reports("seq2seq").to_dot()


def test_render_file_rejects_unknown_suffix(reports, tmp_path):
    with pytest.raises(MaskvizError) as err:
        render_file(reports("seq2seq").graph, str(tmp_path / "x.gif"))
    assert str(err.value) == (
        f"Cannot write graph '{tmp_path / 'x.gif'}': unknown format. "
        "Expected a path ending in .svg, .png, .pdf or .dot."
    )
    assert not (tmp_path / "x.gif").exists()


def test_render_needs_no_system_graphviz(reports, tmp_path, monkeypatch):
    # pygraphviz's bundled engine draws even with no `dot` on PATH.
    monkeypatch.setenv("PATH", str(tmp_path))
    out = render_file(reports("nested").graph, str(tmp_path / "n.svg"), depth=0)
    assert Path(out).read_bytes().startswith(b"<?xml")


def test_to_dot_takes_the_graph(reports):
    report = reports("nested")
    assert to_dot(report.graph, depth=0) == report.to_dot(depth=0)
