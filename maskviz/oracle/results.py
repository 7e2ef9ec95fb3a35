"""The values oracle's results: frozen dataclasses, `to_dict()` for the JSON report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RTOL = 1e-3
"""A change counts when it exceeds `RTOL * max |baseline|` (plus `ATOL`) over the
compared positions. float32 round-off is ~1e-7 per operation; re-running the same
ops on the same kept values is usually bit-exact, and the few kernels that block
differently for a batch of 6 rows differ by O(1e-6) relative, far below 1e-3.
The noise is of the tensor's own scale, so a real leak moves kept values by
O(1e-2 .. 1) relative."""
ATOL = 1e-6
EXTRA_ROWS = 2


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CallChange:
    """A call whose output changed at compared positions when padding was perturbed.

    Attributes:
        call_id: the call.
        output_index: which of its outputs changed most.
        change: `max |delta| / max |baseline|` over the compared positions.
        max_abs: `max |delta|`.
        scale: `max |baseline|` over the compared positions.
        compared: "mask" (its own output mask), "source-keep" (the source's mask,
            for outputs still aligned with the source's time axis) or "whole".
        rows: the batch rows that changed.
    """

    call_id: str
    output_index: int
    change: float
    max_abs: float
    scale: float
    compared: str
    rows: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "output_index": self.output_index,
            "change": _num(self.change),
            "max_abs": _num(self.max_abs),
            "scale": _num(self.scale),
            "compared": self.compared,
            "rows": list(self.rows),
        }


@dataclass(frozen=True)
class Leak:
    """A first leaking call: it changed, none of its upstream calls did.

    Attributes:
        call_id: the call where padding leaks in.
        change: its relative change (see `CallChange.change`).
        rows: the rows whose kept positions changed.
        layouts: how those rows are padded: "right-padded", "left-padded",
            "other" (gaps), "unpadded" (a change in a row without padding means
            rows are mixed) or "empty".
        outputs: the model outputs (names) the leak reaches.
        paths: per reached output, the call ids from this call to the output.
    """

    call_id: str
    change: float
    rows: tuple[int, ...]
    layouts: tuple[str, ...]
    outputs: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...]

    @property
    def left_padding_only(self) -> bool:
        return bool(self.layouts) and set(self.layouts) == {"left-padded"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "change": _num(self.change),
            "rows": list(self.rows),
            "layouts": list(self.layouts),
            "outputs": list(self.outputs),
            "paths": [list(p) for p in self.paths],
        }


@dataclass(frozen=True)
class FullyMaskedIssue:
    """A first call where a fully masked sample goes wrong.

    Attributes:
        call_id: the call.
        kind: "nonfinite" (NaN or inf in the fully masked rows) or "non-neutral"
            (the two fully masked rows, which differ only in their padding values,
            give different outputs at compared positions).
        outputs: the model outputs (names) that show it.
        count: number of non-finite values (nonfinite) or changed values.
        change: relative difference between the two rows (non-neutral).
    """

    call_id: str
    kind: str
    outputs: tuple[str, ...]
    count: int
    change: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "kind": self.kind,
            "outputs": list(self.outputs),
            "count": self.count,
            "change": _num(self.change),
        }


@dataclass(frozen=True)
class SourceResult:
    """What perturbing one mask source showed.

    Attributes:
        source: the generator call id, or `"input:NAME"` for a data input paired
            with an explicit mask input.
        kind: "generator" or "explicit-mask".
        mask_input: the explicit mask input's name (explicit-mask sources).
        masked_positions: how many (batch, time) positions were perturbed.
        row_layouts: per probe row, how the source pads it.
        outputs_reached: model outputs downstream of the source.
        outputs_changed: model outputs whose kept positions changed.
        changed: every call that changed (including those not reaching an output).
        leaks: the first leaking calls.
        fully_masked_checked: whether the fully-masked rows ran.
        fully_masked: first calls where a fully masked sample goes wrong.
    """

    source: str
    kind: str
    mask_input: str | None
    masked_positions: int
    row_layouts: tuple[str, ...]
    outputs_reached: tuple[str, ...]
    outputs_changed: tuple[str, ...]
    changed: tuple[CallChange, ...]
    leaks: tuple[Leak, ...]
    fully_masked_checked: bool
    fully_masked: tuple[FullyMaskedIssue, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "mask_input": self.mask_input,
            "masked_positions": self.masked_positions,
            "row_layouts": list(self.row_layouts),
            "outputs_reached": list(self.outputs_reached),
            "outputs_changed": list(self.outputs_changed),
            "changed": [c.to_dict() for c in self.changed],
            "leaks": [lk.to_dict() for lk in self.leaks],
            "fully_masked_checked": self.fully_masked_checked,
            "fully_masked": [i.to_dict() for i in self.fully_masked],
        }


@dataclass(frozen=True)
class OracleResult:
    """The oracle's verdict for one model.

    Attributes:
        sources: one result per mask source that was perturbed.
        skipped: `(what, why)` for sources or checks that could not run.
        rtol, atol: the tolerance used.
        seed: the noise seed.
        runs: extra forward passes made.
    """

    sources: tuple[SourceResult, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    rtol: float = RTOL
    atol: float = ATOL
    seed: int = 0
    runs: int = 0
    invariance: Any = None  # `invariance.InvarianceResult` (length/side, loss)

    @property
    def leaks(self) -> list[tuple[SourceResult, Leak]]:
        """Every first leaking call, with its source."""
        return [(s, lk) for s in self.sources for lk in s.leaks]

    @property
    def leaking_calls(self) -> set[str]:
        return {lk.call_id for _, lk in self.leaks}

    def summary_lines(self) -> list[str]:
        """One line per mask source, for the text report."""
        lines = []
        for s in self.sources:
            head = f"oracle: {s.source} ({s.kind}, {s.masked_positions} padded positions): "
            if not s.leaks:
                reached = ", ".join(s.outputs_reached) or "no output"
                lines.append(head + f"no leak; reaches {reached}")
                continue
            parts = []
            for lk in s.leaks:
                rows = ", ".join(str(r) for r in lk.rows)
                path = " -> ".join(lk.paths[0]) if lk.paths else lk.call_id
                parts.append(f"LEAK at {lk.call_id} (change {lk.change:.2f}, rows {rows}) {path}")
            lines.append(head + "; ".join(parts))
        for what, why in self.skipped:
            lines.append(f"oracle: skipped {what}: {why}")
        if self.invariance is not None:
            lines.extend(self.invariance.summary_lines())
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "rtol": self.rtol,
            "atol": self.atol,
            "seed": self.seed,
            "runs": self.runs,
            "sources": [s.to_dict() for s in self.sources],
            "skipped": [{"what": w, "why": y} for w, y in self.skipped],
            **({"invariances": self.invariance.to_dict()} if self.invariance else {}),
        }


def _num(x: float) -> float | str:
    x = float(x)
    if np.isfinite(x):
        return round(x, 6)
    return "inf" if x > 0 else ("nan" if np.isnan(x) else "-inf")
