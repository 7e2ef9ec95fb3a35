"""Findings: what a rule reports, with its severity and its fix.

This module is pure Python (no Keras import), so `maskviz explain` and
`maskviz rules` stay fast.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Severity(str, enum.Enum):
    """How bad a finding is. A field of the finding, never part of its id."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


class Applicability(str, enum.Enum):
    """How safe a fix is to apply automatically (after ruff's `Applicability`).

    - `SAFE`: outputs on rows without padding are unchanged; only padded rows change.
    - `UNSAFE`: may change outputs on unpadded rows; applied only with `--unsafe-fixes`.
    - `DISPLAY_ONLY`: printed as a suggestion, never applied.
    """

    SAFE = "safe"
    UNSAFE = "unsafe"
    DISPLAY_ONLY = "display-only"


@dataclass(frozen=True)
class MaskOf:
    """A typed fact: the mask that the call's input `arg` carries (e.g. `"sequences"`)."""

    arg: str


@dataclass(frozen=True)
class Fix:
    """What a finding asks to repair.

    A rule states *what* to repair; `maskviz.fixes` derives the candidate repairs
    from the trace (which call, which mask, which input) and measures each one, so
    the safety that counts is the measured one (`maskviz fix`).

    Attributes:
        applicability: the expected safety (`display-only` is never applied).
        description: one line saying what the repair does.
        call_kwargs: typed call arguments the repair passes, e.g.
            `(("mask", MaskOf("sequences")),)` for an RNN that did not get its mask.
    """

    applicability: Applicability
    description: str
    call_kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Finding:
    """One problem found in one layer call."""

    rule: str
    name: str
    severity: Severity
    call_id: str
    layer: str
    path: str
    message: str
    suggestion: str = ""
    fix: Fix | None = None
    details: tuple[tuple[str, Any], ...] = ()
    # Ids of other calls the finding is about (where a mask stops, for MV110), read by
    # the overlap policy (`maskviz.rules.overlap`); not part of the report.
    related: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity.value,
            "layer": self.layer,
            "path": self.path,
            "call": self.call_id,
            "message": self.message,
            "suggestion": self.suggestion,
            "fix": self.fix.applicability.value if self.fix else None,
            "details": dict(self.details),
        }
