"""The text of a fix result: the before/after table, what was tried, the checks."""

from __future__ import annotations

from typing import Any

from .results import FIXED, LEFT, NEW, Outcome, PatchStatus


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths[:-1])) + "  " + r[-1]
        for r in rows
    ]


def _fix_cell(row: Any) -> str:
    if row.status == NEW:
        return "-"
    if row.applied:
        return f"applied: {row.note}"
    return row.note or "-"


def _diff(x: float | None) -> str:
    return "" if x is None else f", unpadded max |diff| {x:.2g}"


def render(result: Any, *, out_path: str | None, written: bool) -> str:
    before = result.before
    name = before.trace.model_name
    lines = [f"maskviz fix: model '{name}' ({before.trace.model_class})"]
    if result.status == PatchStatus.NOTHING:
        lines.append("  nothing to fix: no error-level finding.")
    if result.rows and result.status != PatchStatus.NOTHING:
        header = ("rule", "name", "severity", "layer", "status", "fix")
        body = [
            (
                r.finding.rule,
                r.finding.name,
                r.finding.severity.value,
                r.finding.path or "-",
                r.status,
                _fix_cell(r),
            )
            for r in result.rows
        ]
        lines.append("")
        lines.extend(_table([header, *body]))
        n_fixed = sum(r.status == FIXED for r in result.rows)
        n_left = sum(r.status == LEFT for r in result.rows)
        n_new = sum(r.status == NEW for r in result.rows)
        lines.append("")
        lines.append(
            f"  {len(result.kept)} repair(s) kept of {len(result.attempts)} tried; "
            f"{n_fixed} finding(s) fixed, {n_left} left, {n_new} new."
        )
        unsafe = [r for r in result.rows if r.note.startswith("unsafe fix")]
        if unsafe:
            lines.append(f"  {len(unsafe)} more fix(es) available with --unsafe-fixes.")
    if result.attempts:
        lines.append("")
        lines.append("tried:")
        for a in result.attempts:
            lines.append(
                f"  [{a.outcome}] {a.finding.rule} at `{a.finding.path}`: "
                f"{a.candidate.describe()}{_diff(a.max_diff)}"
            )
            if a.outcome != Outcome.KEPT and a.reason:
                lines.append(f"      why: {a.reason}")
    for change in result.code_changes:
        lines.append("")
        lines.append(change.to_text())
    if result.checks:
        lines.append("")
        lines.append("checks:")
        for c in result.checks:
            lines.append(f"  [{c.label}] {c.name}: {c.detail}")
    if result.status == PatchStatus.FAILED:
        lines.append("")
        lines.append(f"not fixed: {result.reason}")
    if out_path is not None:
        if written:
            lines.append(f"written to {out_path}")
        elif result.code_changes:
            lines.append("nothing written: make the code changes above by hand")
        elif result.status in (PatchStatus.NOTHING, PatchStatus.NO_FIX):
            lines.append("nothing written (use --force to write the model anyway)")
        else:
            lines.append("nothing written")
    return "\n".join(lines) + "\n"
