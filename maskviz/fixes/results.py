"""What the fix search returns: every attempt, the before/after table, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._strenum import StrEnum
from ..findings import Finding, Severity
from .candidates import Candidate
from .measure import Check


class Outcome(StrEnum):
    """What became of one candidate tried for one finding."""

    KEPT = "kept"
    REPLACED = "replaced"  # kept, then replaced by a candidate at the same call
    FAILED = "failed"
    UNSAFE = "unsafe"  # it changes outputs on rows without padding
    NOT_APPLICABLE = "not applicable"  # it could not be built into the model


class RowStatus(StrEnum):
    """A finding in the before/after table."""

    FIXED = "fixed"
    LEFT = "left"
    NEW = "new"


class PatchStatus(StrEnum):
    """What the search did as a whole."""

    NOTHING = "nothing to fix"
    NO_FIX = "no applicable fix"
    PATCHED = "patched"
    FAILED = "failed"


FIXED, LEFT, NEW = RowStatus.FIXED, RowStatus.LEFT, RowStatus.NEW


@dataclass(frozen=True)
class Attempt:
    """One candidate tried for one finding.

    Attributes:
        finding: the finding it was tried for.
        candidate: what was tried.
        outcome: `kept`, `replaced` (kept, then replaced by a candidate at the same
            call that repairs more), `failed`, `unsafe` (it changes unpadded outputs) or
            `not applicable` (it could not be built into the model).
        reason: why it was not kept (the failed checks), or what it measured.
        max_diff: max |diff| of the outputs on rows without padding.
    """

    finding: Finding
    candidate: Candidate
    outcome: Outcome
    reason: str = ""
    max_diff: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))


@dataclass(frozen=True)
class Row:
    """One line of the before/after table.

    Attributes:
        finding: the finding (from the report before, or after for `new`).
        status: `fixed`, `left` or `new`.
        applied: a candidate kept by the search targeted this finding.
        note: what repaired it, or why nothing did.
    """

    finding: Finding
    status: RowStatus
    applied: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RowStatus(self.status))


@dataclass(frozen=True)
class PatchResult:
    """What `patch_model` did.

    Attributes:
        before: the report the search started from.
        after: the report of the repaired (saved and reloaded) model.
        model: the repaired model, or `None`.
        rows: the before/after table.
        checks: the final verification of the repaired model.
        status: `nothing to fix`, `no applicable fix`, `patched` or `failed`.
        reason: one line saying why, when nothing was kept or a check failed.
        saved_path: the verified `.keras` file (temporary).
        attempts: every candidate tried, in order.
        kept: the candidates kept.
        code_changes: for a subclassed model, the verified changes to make by hand.
    """

    before: Any
    after: Any = None
    model: Any = field(default=None, repr=False)
    rows: tuple[Row, ...] = ()
    checks: tuple[Check, ...] = ()
    status: PatchStatus = PatchStatus.NOTHING
    reason: str = ""
    saved_path: str | None = None
    attempts: tuple[Attempt, ...] = ()
    kept: tuple[Candidate, ...] = ()
    code_changes: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", PatchStatus(self.status))

    @property
    def applied(self) -> list[Finding]:
        return [r.finding for r in self.rows if r.applied]

    @property
    def verified(self) -> bool:
        return self.status != PatchStatus.FAILED and all(c.passed is not False for c in self.checks)

    @property
    def remaining_errors(self) -> list[Finding]:
        return [
            r.finding
            for r in self.rows
            if r.status in (LEFT, NEW) and r.finding.severity == Severity.ERROR
        ]

    @property
    def ok(self) -> bool:
        """Verified, and no error-severity finding is left."""
        return self.verified and not self.remaining_errors

    def to_text(self) -> str:
        from .text import render

        return render(self, out_path=None, written=False)


@dataclass(frozen=True)
class FixResult(PatchResult):
    """What `fix_model_file` did: a `PatchResult` plus where it was written."""

    path: str = ""
    written: bool = False

    def to_text(self) -> str:
        from .text import render

        return render(self, out_path=self.path, written=self.written)
