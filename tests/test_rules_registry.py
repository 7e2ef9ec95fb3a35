"""The rule registry, the call graph queries rules use, and the overlap policy.

Built on small hand-made traces (no Keras): what is checked is the bookkeeping, not
what a Keras version does.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
from types import SimpleNamespace as NS

import pytest

import maskviz.rules as rules_pkg
from maskviz.callgraph import CallGraph
from maskviz.findings import Finding, Severity
from maskviz.rules import Context, all_rules, get_rule, overlap, rule_modules, run_rules

RULES_DIR = pathlib.Path(rules_pkg.__file__).parent


def _call(id, *sources, parent=None, output_masked=False, **kw):
    """A call record with the attributes the call graph and the policy read."""
    inputs = tuple(NS(source=s, arg=f"x{i}") for i, s in enumerate(sources))
    return NS(
        id=id,
        path=id,
        name=id,
        parent=parent,
        inputs=inputs,
        output_masked=output_masked,
        is_functional=kw.pop("is_functional", False),
        **kw,
    )


def _trace(*calls):
    return NS(calls=list(calls), inputs=[NS(name="tokens")], outputs=[])


def _finding(rule, call_id, related=()):
    return Finding(
        rule=rule,
        name=rule.lower(),
        severity=Severity.WARNING,
        call_id=call_id,
        layer=call_id,
        path=call_id,
        message=f"{rule} at {call_id}",
        related=tuple(related),
    )


# --------------------------------------------------------------------------- registry


def test_one_module_per_rule_named_by_id_and_name():
    rules = all_rules()
    assert len(rule_modules()) == len(rules)
    for r in rules:
        expected = f"maskviz.rules.{r.id.lower()}_{r.name.replace('-', '_')}"
        assert r.module == expected, (r.id, r.module)


def test_rule_modules_stay_small_and_do_not_import_each_other():
    for path in RULES_DIR.glob("mv*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 500, path.name
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                assert not target.split(".")[-1].startswith("mv"), (path.name, target)


def test_finding_is_bound_to_the_running_rule():
    ctx = Context(trace=_trace(_call("a")))
    with pytest.raises(RuntimeError, match="Context.run"):
        ctx.finding(None, "no rule runs")
    mv105 = next(r for r in all_rules() if r.id == "MV105")
    fake = dataclasses.replace(mv105, func=lambda c: [c.finding(c.trace.calls[0], "bound")])
    (f,) = ctx.run(fake)
    assert (f.rule, f.name, f.call_id, f.severity) == (
        "MV105",
        "explicit-mask-override",
        "a",
        Severity.WARNING,
    )
    with pytest.raises(RuntimeError):  # unbound again afterwards
        ctx.finding(None, "after")


# --------------------------------------------------------------------------- graph


def test_children_container_and_consumers():
    g = CallGraph(
        _trace(
            _call("emb", "input:tokens"),
            _call("bi", "emb"),
            _call("bi/fwd", "emb", parent="bi"),
            _call("bi/bwd", "emb", parent="bi"),
            _call("dense", "bi"),
        )
    )
    assert g.children("bi") == ["bi/fwd", "bi/bwd"]
    assert g.children("dense") == []
    assert g.container("bi/fwd") == "bi"
    assert g.container("bi") is None
    assert g.consumers("emb") == ["bi", "bi/fwd", "bi/bwd"]
    assert g.record("dense").id == "dense"


def test_downstream_is_breadth_first_and_stops_at_a_container_that_remasks():
    calls = [
        _call("a", "input:tokens"),
        _call("wrap", "a", output_masked=True),
        _call("wrap/inner", "a", parent="wrap"),
        _call("b", "a"),
        _call("c", "b"),
        _call("d", "wrap"),
    ]
    g = CallGraph(_trace(*calls))
    assert g.downstream("a") == ["wrap", "wrap/inner", "b", "d", "c"]
    # The container put a mask back on its output: not reached from inside.
    assert g.downstream("wrap/inner") == []
    assert g.downstream("wrap/inner", through_remask=True) == ["wrap", "d"]


def test_mask_consumers_leave_through_the_container():
    calls = [
        _call("model", "input:tokens", output_masked=False, is_functional=True),
        _call("model/emb", "input:tokens", parent="model"),
        _call("model/dense", "model/emb", parent="model"),
        _call("head", "model"),
    ]
    g = CallGraph(_trace(*calls))
    # Something inside consumes the embedding: the mask goes there only.
    assert g.mask_consumers("model/emb") == ["model/dense"]
    # Nothing inside consumes the last call: its mask leaves through the model.
    assert g.mask_consumers("model/dense") == ["model"]


def test_walk_depth_first_finds_each_node_once():
    g = CallGraph(
        _trace(
            _call("a", "input:tokens"),
            _call("b", "a"),
            _call("c", "a"),
            _call("d", "b", "c"),
        )
    )
    assert list(g.walk("a", g.consumers)) == ["b", "c", "d"]
    assert list(g.walk("a", g.consumers, depth_first=True)) == ["b", "c", "d"]
    assert list(g.walk("a", g.consumers, expand=lambda n: n != "b")) == ["b", "c", "d"]
    assert list(g.walk("a", g.consumers, expand=lambda n: False)) == ["b", "c"]


# --------------------------------------------------------------------------- overlap


def test_policy_keeps_mv102_on_the_outermost_layer_only():
    ctx = Context(
        trace=_trace(
            _call("bi", "input:tokens"),
            _call("bi/fwd", "input:tokens", parent="bi"),
            _call("model", "input:tokens", is_functional=True),
            _call("model/lstm", "input:tokens", parent="model"),
        )
    )
    found = [_finding("MV102", c) for c in ("bi", "bi/fwd", "model", "model/lstm")]
    kept = overlap.resolve(ctx, found)
    # Inside a layer with its own call: the wrapper's finding says it. Inside a model
    # (its masks flow through its graph): both are reported.
    assert [f.call_id for f in kept] == ["bi", "model", "model/lstm"]


def test_policy_drops_mv110_where_its_mask_stops_at_a_reported_drop():
    ctx = Context(trace=_trace(_call("emb", "input:tokens"), _call("flat", "emb")))
    stops = _finding("MV110", "emb", related=("flat",))
    elsewhere = _finding("MV110", "emb", related=("other",))
    drop = _finding("MV101", "flat")
    assert overlap.resolve(ctx, [stops, drop]) == [drop]
    assert overlap.resolve(ctx, [elsewhere, drop]) == [elsewhere, drop]
    assert overlap.resolve(ctx, [stops]) == [stops]


def test_policy_drops_mv111_under_mv101_only_for_keras_layers(monkeypatch):
    ctx = Context(trace=_trace(_call("lstm", "input:tokens"), _call("custom", "lstm")))
    found = [
        _finding("MV101", "lstm"),
        _finding("MV111", "lstm"),
        _finding("MV101", "custom"),
        _finding("MV111", "custom"),
    ]
    monkeypatch.setattr(
        overlap, "keras_builtin", lambda ctx, call: "3.x" if call.id == "lstm" else None
    )
    kept = overlap.resolve(ctx, found)
    assert [(f.rule, f.call_id) for f in kept] == [
        ("MV101", "lstm"),
        ("MV101", "custom"),
        ("MV111", "custom"),
    ]


def test_select_reports_what_a_full_run_reports(zoo):
    """The mask Masking makes stops at the Conv1D that drops it: MV110 finds it
    unused, MV101 reports the drop, and the policy keeps MV101 only. `select` filters
    after the policy: a selected rule gives what a full run gives for it."""
    import maskviz

    model = zoo["conv1d_after_masking"]
    full = maskviz.inspect(model, oracle=False)
    ctx = Context(trace=full.trace, probe=full.probe, model=model)
    assert tuple(run_rules(ctx)) == full.findings
    drops = {f.call_id for f in full.findings if f.rule == "MV101"}
    (unused,) = ctx.run(get_rule("MV110"))
    assert drops & set(unused.related)
    assert "MV110" not in {f.rule for f in full.findings}
    for rid in ("MV101", "MV110"):
        only = maskviz.inspect(model, oracle=False, select=[rid])
        assert only.findings == tuple(f for f in full.findings if f.rule == rid)
