"""Marks shared by the tests: which parameters the quick run (`-m "not slow"`) keeps.

The full suite (`python -m pytest -q`, what CI runs) runs every parameter; the quick run
keeps a few representative ones of a long parametrized test and leaves the rest out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
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


class Lazy(Mapping):
    """`{key: compute(key)}` over `keys`, each value computed when a test first asks for
    it: a quick run that keeps a few parameters computes only theirs."""

    def __init__(self, keys: Iterable[str], compute: Callable[[str], Any]) -> None:
        self._keys = list(keys)
        self._compute = compute
        self._done: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._done:
            self._done[key] = self._compute(key)
        return self._done[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
