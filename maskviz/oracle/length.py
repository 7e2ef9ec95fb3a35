"""The length-and-side invariance, and the comparison shared by every invariance.

A padding-invariant model gives the same outputs at real positions, and the same
pooled or last-step outputs, whatever the amount and side of the padding. The
variants (`variants.py`) are run as plain model calls (no instrumentation: cheap);
only a variant that breaks the invariance is run again under the trace, to find the
first calls where its real positions move (`localize`).

How an output is compared between the base run and a variant run:

- it follows a sequence input's time axis when its axis 1 has that input's length
  in both runs (inputs get different amounts of extra padding, so this is
  observed, not assumed): compared at the real steps, mapped to where they went;
- else, when its shape did not change, it has no time axis (pooled, last step):
  compared row by row;
- else its time axis was resampled (pooling, a strided or `valid` convolution):
  compared on the output steps the truncated row produced (those are made of real
  input only), in rows whose real steps start at step 0; otherwise not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .results import ATOL, RTOL, _num
from .runs import call_model, compare
from .variants import Seq, Variant


@dataclass(frozen=True)
class Violation:
    """A measured violation of one invariance.

    Attributes:
        invariance: "values", "length", "side", "truncation", "loss-targets",
            "loss-padding" or "gradients".
        what: the change that was made ("4 more padding steps", ...).
        target: the model output (name), "loss", or "gradients".
        rows: the probe rows that changed.
        layouts: how those rows are padded ("right-padded", "left-padded",
            "fully padded", "unpadded", "gaps").
        change: `max |delta| / max |baseline|` over the compared positions.
        max_abs: `max |delta|`.
        scale: `max |baseline|`.
        calls: the first calls where the change appears (localised), if known.
        paths: per first call, the calls from it to the output.
        detail: more words (the weight whose gradient moved most, ...).
    """

    invariance: str
    what: str
    target: str
    rows: tuple[int, ...]
    layouts: tuple[str, ...]
    change: float
    max_abs: float
    scale: float
    calls: tuple[str, ...] = ()
    paths: tuple[tuple[str, ...], ...] = ()
    detail: str = ""

    @property
    def left_padding_only(self) -> bool:
        return bool(self.layouts) and set(self.layouts) == {"left-padded"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "invariance": self.invariance,
            "what": self.what,
            "target": self.target,
            "rows": list(self.rows),
            "layouts": list(self.layouts),
            "change": _num(self.change),
            "max_abs": _num(self.max_abs),
            "scale": _num(self.scale),
            "calls": list(self.calls),
            "paths": [list(p) for p in self.paths],
            "detail": self.detail,
        }


@dataclass
class Diff:
    """One tensor's comparison: rows that changed and by how much."""

    rows: tuple[int, ...]
    change: float
    max_abs: float
    scale: float


def compare_tensor(
    base: np.ndarray | None,
    var: np.ndarray | None,
    variant: Variant,
    seqs: list[Seq],
    prefix: dict[int, int] | None = None,
    timed: bool | None = None,
) -> Diff | None:
    """Compares one tensor between the base run and `variant` (module docstring).
    Returns a `Diff` when compared positions changed, else `None`. `timed` says
    whether the tensor has a time axis, when a run with another time length showed
    it (its shape changed); `None` when unknown."""
    if base is None or var is None or base.ndim == 0 or var.ndim == 0:
        return None
    if not (np.issubdtype(base.dtype, np.number) or base.dtype == bool):
        return None
    base_t = {s.name: s.time for s in seqs}
    pairs: list[tuple[int, np.ndarray, np.ndarray]] = []  # (base row, a, b)
    cands = [
        s.name
        for s in seqs
        if base.ndim >= 2
        and var.ndim == base.ndim
        and base.shape[1] == base_t[s.name]
        and var.shape[1] == variant.time.get(s.name)
    ]
    if cands:
        for j, r in enumerate(variant.rows):
            if j >= var.shape[0] or r >= base.shape[0]:
                continue
            for name in cands:
                bp, vp = variant.positions[j][name]
                a, b = base[r, bp], var[j, vp]
                # Other axes that follow the same time (an attention mask or scores
                # [B, T, S] over one sequence) take the same positions; an axis is known
                # to follow it only when its size changed with the time length (a
                # feature axis may have the time's size by chance).
                for k in range(2, base.ndim):
                    if (
                        base.shape[k] == base_t[name]
                        and var.shape[k] == variant.time.get(name)
                        and base.shape[k] != var.shape[k]
                    ):
                        a, b = np.take(a, bp, axis=k - 1), np.take(b, vp, axis=k - 1)
                pairs.append((r, a, b))
        by_row: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for r, a, b in pairs:
            by_row.setdefault(r, []).append((a, b))
        # Ambiguous alignment (two inputs of the same length): a row changed only
        # when it changed under every candidate alignment.
        aligned = _judge(by_row, all_must=len(cands) > 1)
        if aligned is None or base.shape[1:] != var.shape[1:]:
            return aligned
        # The variant kept the time length (padding moved to the other side): axis 1
        # may be features that happen to have the time length. A change counts only
        # if the row changed as a whole too (true for any real change of a tensor
        # that does follow time, since its real steps moved).
        whole = _judge(_rows_whole(base, var, variant), all_must=False)
        if whole is None:
            return None
        rows = tuple(r for r in aligned.rows if r in whole.rows)
        return Diff(rows, aligned.change, aligned.max_abs, aligned.scale) if rows else None
    if base.shape[1:] == var.shape[1:] and not timed:
        return _judge(_rows_whole(base, var, variant), all_must=False)
    if base.ndim >= 2 and var.ndim == base.ndim and base.shape[2:] == var.shape[2:]:
        by_row = {}
        for j, r in enumerate(variant.rows):
            if j >= var.shape[0] or r >= base.shape[0]:
                continue
            starts = [p for s in seqs for p in variant.positions[j][s.name]]
            if any(len(p) == 0 or p[0] != 0 for p in starts):
                continue  # real steps do not start at 0: resampled steps do not line up
            if variant.invariance == "truncation":
                m = var.shape[1]
            elif prefix and r in prefix:
                m = prefix[r]
            else:
                continue
            m = min(m, base.shape[1], var.shape[1])
            by_row.setdefault(r, []).append((base[r, :m], var[j, :m]))
        return _judge(by_row, all_must=False)
    return None


def _rows_whole(base: np.ndarray, var: np.ndarray, variant: Variant):
    by_row: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for j, r in enumerate(variant.rows):
        if j < var.shape[0] and r < base.shape[0]:
            by_row.setdefault(r, []).append((base[r], var[j]))
    return by_row


def _judge(by_row: dict[int, list[tuple[np.ndarray, np.ndarray]]], *, all_must: bool):
    if not by_row:
        return None
    scale = 0.0
    diffs: dict[int, list[float]] = {}
    for r, items in by_row.items():
        for a, b in items:
            if np.shape(a) != np.shape(b):  # positions that do not line up: not compared
                continue
            d, s = compare(a, b)
            scale = max(scale, s)
            diffs.setdefault(r, []).append(d)
    tol = ATOL + RTOL * scale
    rows = []
    max_abs = 0.0
    for r, ds in diffs.items():
        hit = all(d > tol for d in ds) if all_must else any(d > tol for d in ds)
        if hit:
            rows.append(r)
            max_abs = max(max_abs, min(ds) if all_must else max(ds))
    if not rows:
        return None
    change = max_abs / scale if scale > 0 else float("inf")
    return Diff(tuple(sorted(rows)), change, max_abs, scale)


@dataclass
class Outcome:
    """A variant's run: which outputs changed."""

    variant: Variant
    changed: dict[int, Diff]  # output index -> diff
    outputs: list[Any]


def run_variants(
    model: Any,
    probe: Any,
    seqs: list[Seq],
    base_out: list[Any],
    variants: list[Variant],
    reset: Any,
    skipped: list[tuple[str, str]],
) -> list[Outcome]:
    """Runs each variant as a plain call and compares the outputs with `base_out`.
    Truncation runs go first: they tell how many resampled steps are real."""
    outcomes = []
    prefixes: dict[int, dict[int, int]] = {}  # output index -> base row -> steps
    timed: dict[int, bool] = {}  # output index -> its shape follows the time length
    rank = {"truncation": 0, "length": 1}
    order = sorted(variants, key=lambda v: rank.get(v.invariance, 2))
    for v in order:
        reset()
        try:
            out = call_model(model, probe, v.values)
        except Exception as e:  # the model refuses this length or side
            skipped.append((v.invariance, f"the model did not run on {v.what}: {_short(e)}"))
            continue
        if v.invariance == "length" and _lost_finiteness(base_out, out):
            # JAX looks up an index past an embedding's rows (a position embedding of
            # a fixed length) as NaN where TensorFlow raises: refused all the same.
            skipped.append(
                (
                    v.invariance,
                    f"the model did not run on {v.what}: its outputs are NaN or infinite "
                    "where they were finite (an index past a fixed length?)",
                )
            )
            continue
        changed = {}
        for i, (b, o) in enumerate(zip(base_out, out)):
            if b is not None and o is not None and v.invariance in rank:
                moved = b.shape[1:] != o.shape[1:]
                timed[i] = timed.get(i, False) or moved
                if v.invariance == "truncation" and moved and b.ndim >= 2:
                    for r in v.rows:
                        prefixes.setdefault(i, {})[r] = int(o.shape[1])
            d = compare_tensor(b, o, v, seqs, prefixes.get(i), timed.get(i))
            if d is not None:
                changed[i] = d
        outcomes.append(Outcome(v, changed, out))
    return outcomes


def _lost_finiteness(base: list[Any], out: list[Any]) -> bool:
    """Whether every output that was finite became wholly non-finite in `out` (a
    run that fails silently, not a leak into some positions)."""
    pairs = [
        (b, o)
        for b, o in zip(base, out)
        if b is not None and o is not None and np.issubdtype(np.asarray(b).dtype, np.floating)
    ]
    pairs = [(b, o) for b, o in pairs if np.isfinite(b).all() and np.asarray(o).size]
    return bool(pairs) and all(not np.isfinite(o).any() for _, o in pairs)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}"
