"""Helpers for users' own test suites.

from maskviz.testing import assert_mask_safe

def test_model_masks():
    assert_mask_safe(build_model())
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .findings import Severity

_FAIL_ON = ("error", "warning", "info", "never")


def assert_mask_safe(
    model: Any,
    *,
    data: str | Mapping[str, Any] | None = None,
    fail_on: str = "error",
) -> Any:
    """Fails when maskviz finds a mask problem in `model` at or above `fail_on`.

    Runs `maskviz.inspect(model, data=data)` (trace, rules and leak oracle).

    Args:
        model: a Keras model (Functional, Sequential, subclassed, nested).
        data: a `.npz` path or a mapping of input name to array, used instead of the
            generated probe batch.
        fail_on: the lowest severity that fails: `"error"` (default), `"warning"`,
            `"info"`, or `"never"` (only inspect).

    Returns:
        The `Report`, when no finding is at or above `fail_on`.

    Raises:
        AssertionError: listing each such finding as `RULE [severity] path: message`.
        ValueError: `fail_on` is not one of the values above.
    """
    if fail_on not in _FAIL_ON:
        raise ValueError(
            f"`fail_on` must be one of {', '.join(map(repr, _FAIL_ON))}. Received: {fail_on!r}"
        )
    from .api import inspect

    report = inspect(model, data=data)
    if fail_on == "never":
        return report
    bad = report.at_or_above(Severity(fail_on))
    if bad:
        lines = [
            f"maskviz found {len(bad)} mask problem(s) at or above {fail_on!r} in model "
            f"'{report.trace.model_name}':"
        ]
        for f in bad:
            lines.append(f"  {f.rule} [{f.severity.value}] {f.path or '-'}: {f.message}")
            if f.suggestion:
                lines.append(f"      suggestion: {f.suggestion}")
        lines.append("Run `maskviz explain RULE` for a rule's documentation.")
        raise AssertionError("\n".join(lines))
    return report


__all__ = ["assert_mask_safe"]
