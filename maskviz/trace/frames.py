"""The tracer's per-call state (`_Frame`) and what it reads of a call's arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .records import Via
from .values import _param_names


class _Frame:
    """The tracer's state for one call in progress."""

    def __init__(self, layer, call_id, path, parent, depth, call_index, seq, via: Via):
        self.layer = layer
        self.call_id = call_id
        self.path = path
        self.parent = parent
        self.depth = depth
        self.call_index = call_index
        self.seq = seq
        self.via = via
        self.inputs: list[tuple[str, Any]] = []
        self.input_sources: list[tuple[str | None, int]] = []
        self.first_arg: Any = None
        self.explicit_mask: Any = None
        self.explicit = False
        self.received: Any = _UNSET
        self.call_seen = False
        self.steps = 1
        self.root = False
        self.in_masks: list[Any] = []
        self.first_masks: list[Any] = []
        self.is_op = False
        # Per input: (mask when produced, or _UNSET when unknown/same; changed by).
        self.transit: list[tuple[Any, str | None]] = []


class _Unset:
    """Marks a value not known (yet), where `None` is a value."""

    def __repr__(self):
        return "UNSET"


_UNSET = _Unset()


def _received_masks(layer: Any, kwargs: Mapping[str, Any]) -> Any:
    """The masks `call` got: its `mask` argument, or the `<arg>_mask` arguments Keras
    fills for calls with several tensor arguments (`query_mask`, `value_mask`)."""
    names = _param_names(layer)
    if "mask" in names:
        return kwargs.get("mask", None)
    extra = [kwargs.get(n) for n in names if n.endswith("_mask") and n[:-5] in names]
    if any(m is not None for m in extra):
        return extra
    return None


def _is_loop_body(parent: Any, layer: Any) -> bool:
    """Whether `layer` is the step function of `parent` (an RNN's cell)."""
    cell = getattr(parent, "cell", None)
    if cell is None:
        return False
    if cell is layer:
        return True
    return any(c is layer for c in getattr(cell, "cells", []) or [])
