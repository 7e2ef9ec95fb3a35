"""The same real content, padded differently: more padding, padding on the other
side, no padding at all (truncated to its real length).

Padding positions come from the probe's `keep` (the data's own padding: token id 0,
steps equal to `Masking`'s `mask_value`, an explicit mask input, or a run of
constant steps found in `--data`). A variant is a new feed plus, per variant row,
the base row it came from and where each input's real steps went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Seq:
    """A padded sequence input: its keep pattern and its padding step."""

    name: str
    keep: np.ndarray  # (batch, time) bool
    pad: np.ndarray  # one padding step, shape value.shape[2:]
    open: bool  # the model leaves its time length open
    group: str = ""  # inputs with one time axis (a mask input and what it marks)

    @property
    def time(self) -> int:
        return int(self.keep.shape[1])


@dataclass
class Variant:
    """One way of re-padding the probe rows.

    Attributes:
        invariance: "length", "side" or "truncation".
        what: a phrase for reports ("4 more padding steps", ...).
        values: the feed (input name -> array).
        rows: per variant row, the base row it holds.
        positions: per variant row, per sequence input, (base positions, variant
            positions) of the real steps.
        time: per sequence input, its time length in this variant.
    """

    invariance: str
    what: str
    values: dict[str, np.ndarray]
    rows: list[int]
    positions: list[dict[str, tuple[np.ndarray, np.ndarray]]]
    time: dict[str, int]
    layouts: list[str] = field(default_factory=list)


def layout(row: np.ndarray) -> str:
    n = int(row.sum())
    if n == len(row):
        return "unpadded"
    if n == 0:
        return "fully padded"
    if row[:n].all():
        return "right-padded"
    if row[len(row) - n :].all():
        return "left-padded"
    return "gaps"


def sequences(model: Any, probe: Any) -> list[Seq]:
    """The probe's inputs that have a padding pattern on axis 1."""
    from .. import _keras_internals as ki
    from ..probe import _mask_value

    out = []
    # A subclassed model's input shapes are those of the call that built it, not a
    # contract: its time length is open until a run with another length fails.
    built_only = not ki.model_input_tensors(model)
    # An explicit mask input marks the padding of every input on its time axis
    # (BERT's `segment_ids` are 0 on real steps too: 0 is not padding there).
    marks = {
        i.name: np.asarray(probe.keep[i.name], bool)
        for i in probe.inputs
        if i.kind == "mask" and probe.keep.get(i.name) is not None
    }
    for inp in probe.inputs:
        keep = probe.keep.get(inp.name)
        v = np.asarray(probe.values[inp.name])
        shaped = [n for n, m in marks.items() if v.ndim >= 2 and m.shape == v.shape[:2]]
        group = inp.name if inp.name in marks else (inp.pairs_with or "")
        if len(shaped) == 1:
            keep, group = marks[shaped[0]], group or shaped[0]
        if keep is None or v.ndim < 2 or tuple(keep.shape) != tuple(v.shape[:2]):
            continue
        keep = np.asarray(keep, bool)
        pads = np.argwhere(~keep)
        if len(pads):
            r, t = pads[0]
            pad = np.array(v[r, t], copy=True)
        elif inp.kind == "masked-floats":
            pad = np.full(v.shape[2:], _mask_value(model, inp, ki), dtype=v.dtype)
        else:
            pad = np.zeros(v.shape[2:], dtype=v.dtype)
        open_time = len(inp.shape) >= 2 and (inp.shape[1] is None or built_only)
        out.append(Seq(inp.name, keep, pad, open_time, group or inp.name))
    return out


def row_layouts(seqs: list[Seq], batch: int) -> list[str]:
    """Per row: how the first sequence input padded in that row pads it."""
    out = []
    for r in range(batch):
        lays = [layout(s.keep[r]) for s in seqs]
        padded = [x for x in lays if x != "unpadded"]
        out.append(padded[0] if padded else "unpadded")
    return out


def _shared_open_time(probe: Any, seqs: list[Seq]) -> bool:
    """Another input shares the sequences' open time axis (we could not re-pad it)."""
    names = {s.name for s in seqs}
    times = {s.time for s in seqs}
    for inp in probe.inputs:
        v = np.asarray(probe.values[inp.name])
        if inp.name in names or v.ndim < 2:
            continue
        if len(inp.shape) >= 2 and inp.shape[1] is None and v.shape[1] in times:
            return True
    return False


def _real(keep_row: np.ndarray) -> np.ndarray:
    return np.nonzero(keep_row)[0]


def more_padding(probe: Any, seqs: list[Seq]) -> Variant | None:
    """Every row with extra padding steps on its padded side (right for unpadded
    rows). Inputs get different amounts, so an output's time axis tells which input
    it follows."""
    if not seqs or not all(s.open for s in seqs) or _shared_open_time(probe, seqs):
        return None
    batch = seqs[0].keep.shape[0]
    values = {k: np.asarray(v) for k, v in probe.values.items()}
    positions: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(batch)]
    time = {}
    extras = []
    groups: dict[str, int] = {}  # one amount per time axis: a mask input and its data
    for s in seqs:
        k = groups.setdefault(s.group or s.name, max(2, s.time // 2) + len(groups))
        extras.append(k)
        v = values[s.name]
        new = np.broadcast_to(s.pad, (batch, s.time + k) + v.shape[2:]).astype(v.dtype).copy()
        for r in range(batch):
            left = layout(s.keep[r]) == "left-padded"
            off = k if left else 0
            new[r, off : off + s.time] = v[r]
            idx = _real(s.keep[r])
            positions[r][s.name] = (idx, idx + off)
        values[s.name] = new
        time[s.name] = s.time + k
    what = f"{min(extras)} more padding steps" + (" (or more)" if len(set(extras)) > 1 else "")
    return Variant("length", what, values, list(range(batch)), positions, time)


def _side_order(keep_row: np.ndarray) -> np.ndarray:
    """For a right- or left-padded keep row: which base step each step of the row
    holds once its padding moves to the other side (order kept within the real steps
    and within the padding)."""
    real, pads = _real(keep_row), np.nonzero(~keep_row)[0]
    if layout(keep_row) == "right-padded":
        return np.concatenate([pads, real])
    return np.concatenate([real, pads])


def other_side(probe: Any, seqs: list[Seq]) -> Variant | None:
    """Right-padded rows padded on the left and left-padded rows on the right."""
    if not seqs:
        return None
    batch = seqs[0].keep.shape[0]
    values = {k: np.asarray(v) for k, v in probe.values.items()}
    positions: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(batch)]
    moved = False
    # Inputs that share a time axis hold the steps of one example: an input without a
    # padding pattern of its own (features given at every step) moves with the padded
    # input of the same length, so the pairs of steps stay together. (An input with its
    # own padding pattern is a sequence of its own, moved by its own padding.)
    leader: dict[tuple[int, int], np.ndarray] = {}  # (time, row) -> padded keep row
    for s in seqs:
        for r in range(batch):
            if layout(s.keep[r]) in ("right-padded", "left-padded"):
                leader.setdefault((s.time, r), s.keep[r])
    for s in seqs:
        v = values[s.name].copy()
        for r in range(batch):
            lay = layout(s.keep[r])
            idx = _real(s.keep[r])
            n = len(idx)
            if lay in ("right-padded", "left-padded"):
                new_idx = np.arange(s.time - n, s.time) if lay == "right-padded" else np.arange(n)
                row = np.broadcast_to(s.pad, v.shape[1:]).astype(v.dtype).copy()
                row[new_idx] = values[s.name][r, idx]
                v[r] = row
                moved = True
            else:
                new_idx = idx
            positions[r][s.name] = (idx, new_idx)
        values[s.name] = v
    names = {s.name for s in seqs}
    for name, arr in list(values.items()):
        if name in names or arr.ndim < 2 or arr.shape[0] != batch:
            continue
        v = arr.copy()
        for r in range(batch):
            lead = leader.get((int(arr.shape[1]), r))
            if lead is not None:
                v[r] = arr[r, _side_order(lead)]
        values[name] = v
    if not moved:
        return None
    return Variant(
        "side",
        "the padding moved to the other side",
        values,
        list(range(batch)),
        positions,
        {s.name: s.time for s in seqs},
    )


def truncated(probe: Any, seqs: list[Seq]) -> list[Variant]:
    """Padded rows with their padding removed, one run per combination of real
    lengths (rows of equal lengths share a run)."""
    if not seqs or not all(s.open for s in seqs) or _shared_open_time(probe, seqs):
        return []
    batch = seqs[0].keep.shape[0]
    groups: dict[tuple[int, ...], list[int]] = {}
    for r in range(batch):
        lays = [layout(s.keep[r]) for s in seqs]
        if any(x in ("gaps", "fully padded") for x in lays) or all(x == "unpadded" for x in lays):
            continue
        groups.setdefault(tuple(int(s.keep[r].sum()) for s in seqs), []).append(r)
    out = []
    for lengths, rows in sorted(groups.items(), key=lambda kv: kv[1][0]):
        values = {k: np.asarray(v)[rows] for k, v in probe.values.items()}
        positions: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in rows]
        for s, n in zip(seqs, lengths):
            v = np.asarray(probe.values[s.name])
            new = np.zeros((len(rows), n) + v.shape[2:], dtype=v.dtype)
            for j, r in enumerate(rows):
                idx = _real(s.keep[r])
                new[j] = v[r, idx]
                positions[j][s.name] = (idx, np.arange(n))
            values[s.name] = new
        out.append(
            Variant(
                "truncation",
                "the rows truncated to their real length",
                values,
                rows,
                positions,
                {s.name: n for s, n in zip(seqs, lengths)},
            )
        )
    return out
