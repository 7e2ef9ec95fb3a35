"""Rule documentation: the docstring is the doc (ruff style)."""

from __future__ import annotations

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


def test_every_rule_is_triggered_by_a_fixture():
    """A rule that no test fixture triggers is untested: each id must appear in a
    test's expectations (tests assert by id)."""
    import pathlib

    texts = "\n".join(
        p.read_text() for p in pathlib.Path(__file__).parent.glob("test_*.py") if p.name != __file__
    )
    untested = [
        r.id
        for r in all_rules()
        if f'"{r.id}"' not in texts.replace(pathlib.Path(__file__).read_text(), "")
    ]
    assert not untested, f"no test asserts these rules: {untested}"
