"""Rule documentation: the docstring is the doc (ruff style)."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

from maskviz.rules import DOC_SECTIONS, all_rules, get_rule


def test_ids_and_names_are_unique_and_well_formed():
    rules = all_rules()
    assert len({r.id for r in rules}) == len(rules)
    assert len({r.name for r in rules}) == len(rules)
    for r in rules:
        assert re.fullmatch(r"MV\d{3}", r.id), r.id
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", r.name), r.name


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_every_rule_documents_every_section(rule):
    missing = [s for s in DOC_SECTIONS if s not in rule.doc]
    assert not missing, f"{rule.id} docstring lacks {missing}"
    assert rule.summary


def test_lookup_by_id_or_name():
    assert get_rule("mv102").name == "mask-not-delivered"
    assert get_rule("mask-not-delivered").id == "MV102"
    with pytest.raises(KeyError, match="Unknown rule"):
        get_rule("MV999")


def _positive_ids(tree: ast.AST) -> set[str]:
    """Rule ids that an `assert` (or a `rules["MV1xx"]` lookup, which raises when the
    rule did not fire) expects to be *present*: `"MV101" in ids`, `f.rule == "MV101"`,
    `report.rule_ids == ["MV101"]`, `by_rule["MV101"]`, and the keys of a `CASES`
    registry of positive fixtures. Ids under `not`, `not in` or `!=` are negative and do
    not count."""
    found: set[str] = set()

    def ids_in(node: ast.AST) -> set[str]:
        return {
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and re.fullmatch(r"MV\d{3}", n.value)
        }

    def positive(node: ast.AST) -> set[str]:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return set()
        if isinstance(node, ast.BoolOp):
            return set().union(*(positive(v) for v in node.values))
        if isinstance(node, ast.Compare):
            if any(isinstance(op, (ast.NotIn, ast.NotEq, ast.IsNot)) for op in node.ops):
                return set()
            return ids_in(node)
        if isinstance(node, ast.Call):
            return ids_in(node)
        return set()

    for node in ast.walk(tree):
        # A registry of positive fixtures (`CASES = {"MV101": (bug, where, twin), ...}`,
        # parametrising a test that asserts the rule fires on the bug).
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            if any(isinstance(t, ast.Name) and t.id == "CASES" for t in node.targets):
                for key in node.value.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        rule_id = key.value.split("-")[0]
                        if re.fullmatch(r"MV\d{3}", rule_id):
                            found.add(rule_id)
                continue
        if isinstance(node, ast.Assert):
            found |= positive(node.test)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if isinstance(node.slice, ast.Constant):
                found |= ids_in(node.slice)
    return found


def _without_slow_tests(tree: ast.Module) -> ast.Module:
    """`tree` without the test functions marked `slow` (`@pytest.mark.slow`, or a
    decorator that marks them so, such as test_legacy's `needs_tf_keras`): the quick
    run (`-m "not slow"`) must still expect every rule to fire."""

    class Strip(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef | None:
            for d in node.decorator_list:
                text = ast.unparse(d)
                if text.endswith("mark.slow") or text == "needs_tf_keras":
                    return None
            return node

    return Strip().visit(tree)


def test_every_rule_is_triggered_by_a_fixture():
    """A rule that no test expects to fire is untested. Each id must appear in a
    positive expectation of some test that the quick run keeps (negative assertions
    such as `assert "MV101" not in ids`, and tests marked `slow`, do not count)."""
    here = pathlib.Path(__file__).resolve()
    expected: set[str] = set()
    for p in here.parent.glob("test_*.py"):
        if p.resolve() == here:
            continue
        expected |= _positive_ids(_without_slow_tests(ast.parse(p.read_text())))
    untested = [r.id for r in all_rules() if r.id not in expected]
    assert not untested, f"no test expects these rules to fire: {untested}"


def test_positive_ids_ignore_negative_assertions():
    tree = ast.parse(
        "assert 'MV101' not in ids\n"
        "assert not {'MV102'} & ids\n"
        "assert f.rule != 'MV103'\n"
        "assert 'MV104' in ids\n"
        "x = rules['MV105'][0]\n"
    )
    assert _positive_ids(tree) == {"MV104", "MV105"}
