"""The enums of type names (roles, call kinds, input kinds, mask states) are their values
wherever output is written: comparisons, dict keys, `str()`, f-strings, JSON."""

from __future__ import annotations

import json

import pytest

from maskviz.graph import MASK_STATES, MaskState, worst_state
from maskviz.inputs import InputKind, ModelInput
from maskviz.trace import ROLES, CallKind, Role, Via

ENUMS = [Role, Via, CallKind, InputKind, MaskState]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_members_are_their_values_in_output(enum):
    for member in enum:
        value = member.value
        assert member == value and hash(member) == hash(value)
        assert {value: 1}[member] == 1 and {member: 1}[value] == 1
        assert str(member) == value and type(str(member)) is str
        assert f"{member}" == value and f"{member:>12}" == f"{value:>12}"
        assert "{}".format(member) == value  # noqa: UP032
        assert json.dumps(member) == json.dumps(value)
        assert json.dumps({member: [member]}, indent=2) == json.dumps({value: [value]}, indent=2)
        assert enum(value) is member


def test_values_are_the_ones_the_json_output_has_always_used():
    assert ROLES == ("generator", "propagator", "modifier", "consumer", "destroyer", "none")
    assert [v.value for v in Via] == ["__call__", "call"]
    assert [k.value for k in CallKind] == ["layer", "op"]
    assert MASK_STATES == ("not-delivered", "wrong-rank", "carried", "none")
    assert {k.value for k in InputKind} == {"tokens", "masked-floats", "strings", "mask", "data"}


def test_plain_strings_become_members():
    given = ModelInput("m", (None, 5), "bool", kind="mask")
    assert given.kind is InputKind.MASK
    with pytest.raises(ValueError):
        ModelInput("m", (None, 5), "bool", kind="padding")
    assert worst_state(["none", "carried"]) is MaskState.CARRIED
    assert worst_state([]) is MaskState.NONE
