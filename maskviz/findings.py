"""Findings: what a rule reports, with its severity and its fix.

This module is pure Python (no Keras import), so `maskviz explain` and
`maskviz rules` stay fast.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
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
class Fix:
    """A fix for one finding.

    Attributes:
        applicability: how safe the fix is.
        description: one line saying what the fix does.
        replace: for mechanical fixes, a `clone_function`-style callable taking the
            original layer and returning its replacement (or `None` to keep it).
            `patch.py` combines these into one `clone_function`.
        call_kwargs: for call-level fixes (e.g. pass `mask=` explicitly), the keyword
            arguments to add when the layer is called while the model is rebuilt.
        target: the path of the layer `replace` applies to, when it is not the
            finding's own layer (MV103 replaces the `Masking` that made the mask).
    """

    applicability: Applicability
    description: str
    replace: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)
    call_kwargs: tuple[tuple[str, Any], ...] = ()
    target: str | None = None


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
