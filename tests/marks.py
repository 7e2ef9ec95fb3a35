"""Marks shared by the tests: which parameters the quick run (`-m "not slow"`) keeps.

The full suite (`python -m pytest -q`, what CI runs) runs every parameter; the quick run
keeps a few representative ones of a long parametrized test and leaves the rest out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest


def slow_except(values: Iterable[Any], keep: Iterable[Any]) -> list[Any]:
    """`values` as parameters, every one not in `keep` marked `slow`."""
    kept = set(keep)
    values = list(values)
    missing = kept - set(values)
    if missing:
        raise ValueError(f"kept parameters that are not parameters: {sorted(missing)}")
    return [v if v in kept else pytest.param(v, marks=pytest.mark.slow) for v in values]
