"""`StrEnum`: the base of maskviz's enums of type names (roles, input kinds, mask states)."""

from __future__ import annotations

import enum


class StrEnum(str, enum.Enum):
    """An enum whose members are strings: each compares equal to, hashes as, formats as and
    is written to JSON as its value, like `enum.StrEnum` of Python 3.11 (maskviz supports
    3.10). So `role == "consumer"` holds for `Role.CONSUMER`, and output is unchanged."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(str.__str__(self), format_spec)
