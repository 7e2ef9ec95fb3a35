"""Applying candidates to a clone and measuring what they change.

`rebuild` turns candidates into one `clone_function` and one `call_function` for
`keras.models.clone_model` (weights copied from the original, layer by layer).
`evaluate` then measures the clone against the model it came from:

- the trace and every rule and oracle of `maskviz.inspect` run again on the same
  probe (so whatever invariances the oracle measures are measured here too);
- the finding the candidate is for must be gone, and no new error may appear;
- outputs on rows without padding must be unchanged (the max |diff| is kept);
  a candidate that changes them is *unsafe*;
- the padding invariances measured here (`padding_invariance`: the same content
  with its padding moved to the other side, with more padding, and truncated to
  its real length): one that held before may not break (one already violated,
  as by a positional model, is reported, not judged);
- every real step of a padded row that reached an output before must still
  reach one (a mask put back on misaligned steps silences real data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..findings import Finding, Severity
from .candidates import Candidate, NotApplicable, sites_by_path

# Tolerance of output comparisons (float32 outputs of rebuilt layers).
RTOL = 1e-4
ATOL = 1e-5

# A real step reaches an output when changing it moves the output by more than
# `REACH_RTOL * max |output|` (plus `REACH_ATOL`). A step a mask silences moves it by
# exactly 0 (same ops, same values), float32 round-off is ~1e-7 of the output's own
# scale, and a floor of fixed size would misjudge small outputs: an untrained
# model's can be ~1e-2, its token steps moving them by ~1e-5 (the initial weights
# differ per backend).
REACH_RTOL = 1e-6
REACH_ATOL = 1e-9


class PatchError(Exception):
    """A candidate could not be applied while the model was rebuilt."""


def _first_line(text: str, limit: int = 240) -> str:
    """The first meaningful line of an error text (Keras messages span many)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    informative = [ln for ln in lines if not ln.startswith("Exception encountered")]
    line = (informative or lines or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def short_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {_first_line(str(e))}"


@dataclass(frozen=True)
class Check:
    """One verification. `passed` is `None` when it could not be measured."""

    name: str
    passed: bool | None
    detail: str

    @property
    def label(self) -> str:
        return {True: "ok", False: "FAILED", None: "skipped"}[self.passed]


# --------------------------------------------------------------------------- rebuilding


def _call_index(call_id: str) -> int:
    _, _, k = call_id.partition("#")
    return int(k) if k.isdigit() else 0


def _follows_input(call: Any) -> bool:
    """Whether the `mask=` this call got in the Functional graph is the mask its
    input carried (Keras records the mask it filled in as a `mask=` argument):
    rebuilt, such calls get the mask their rebuilt input carries, so a repair
    upstream reaches them. A `mask=` that the user chose is kept."""
    if not call.explicit_mask or call.explicit_mask_matches is False:
        return False
    seq = next((t for t in call.inputs if not t.arg.startswith("mask")), None)
    return seq is not None and seq.mask is not None


def _sequence_mask(args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    from .. import _keras_internals as ki

    seq = args[0] if args else next(iter(kwargs.values()), None)
    if isinstance(seq, (list, tuple)):
        masks = [ki.get_mask(t) for t in seq]
        return None if all(m is None for m in masks) else masks
    return ki.get_mask(seq)


def rebuild(
    model: Any, candidates: Sequence[Candidate], trace: Any
) -> tuple[Any, list[tuple[Any, Any]]]:
    """Clones `model` with `candidates` applied; returns it and (original, clone)
    layer pairs for `copy_weights`.

    Raises:
        PatchError: the model cannot be cloned, or a candidate does not apply
            (its site was never rebuilt, or `NotApplicable` says why).
    """
    import keras

    from .. import _keras_internals as ki

    by_path = sites_by_path(model)
    path_of = {id(layer): path for path, layer in by_path.items()}
    replacing = {c.site: c for c in candidates if type(c).replace is not Candidate.replace}
    hooks: dict[tuple[str, int], list[Candidate]] = {}
    for c in candidates:
        if type(c).call is not Candidate.call:
            hooks.setdefault((c.site, c.call_index), []).append(c)
    functional = ki.is_functional(model)
    if hooks and isinstance(model, keras.Sequential) and ki.functional_of(model) is not None:
        # A call-level change needs `call_function`, which only Functional graphs
        # take: the Sequential model's own graph is rebuilt (the result is Functional).
        model, functional = ki.functional_of(model), True
    if not functional and not isinstance(model, keras.Sequential):
        raise PatchError(
            f"model '{model.name}' is a subclassed `{type(model).__name__}`: "
            "`keras.models.clone_model` rebuilds only Functional and Sequential models"
        )
    if hooks and not functional:
        raise PatchError(
            "a call-level change (" + ", ".join(c.label for v in hooks.values() for c in v) + ") "
            "needs a Functional model"
        )
    records = trace.by_id() if trace is not None else {}
    pairs: list[tuple[Any, Any]] = []
    original_of: dict[int, Any] = {}
    done: set[Candidate] = set()

    def clone_function(layer: Any) -> Any:
        site = path_of.get(id(layer))
        cand = replacing.get(site) if site is not None else None
        new = cand.replace(layer) if cand is not None else None
        if new is not None:
            done.add(cand)
        elif ki.is_layer(layer):
            try:
                new = type(layer).from_config(layer.get_config())
            except Exception as e:
                raise PatchError(
                    f"cannot rebuild layer `{layer.name}` ({type(layer).__name__}) from its "
                    f"config: {type(e).__name__}: {e}. Check its `get_config`/`from_config`."
                ) from None
        else:  # a keras op node: stateless, kept
            new = layer
        pairs.append((layer, new))
        original_of[id(new)] = layer
        return new

    counts: dict[int, int] = {}

    def call_function(layer: Any, *args: Any, **kwargs: Any) -> Any:
        original = original_of.get(id(layer))
        if original is None:
            return layer(*args, **kwargs)
        k = counts.get(id(original), 0)
        counts[id(original)] = k + 1
        site = path_of.get(id(original)) or getattr(original, "name", None)
        record = records.get(site if k == 0 else f"{site}#{k}") if site else None
        if ki.is_tensor(kwargs.get("mask")) and record is not None and _follows_input(record):
            kwargs["mask"] = _sequence_mask(args, kwargs)

        def invoke(a: tuple, kw: dict) -> Any:
            return layer(*a, **kw)

        invoke.layer = layer  # type: ignore[attr-defined]

        for cand in hooks.get((site, k), []):
            previous = invoke

            def invoke(a: tuple, kw: dict, _c: Candidate = cand, _p: Any = previous) -> Any:
                try:
                    out = _c.call(_p, a, kw)
                except NotApplicable as e:
                    raise PatchError(f"{_c.label}: {e}") from None
                done.add(_c)
                return out

            invoke.layer = layer  # type: ignore[attr-defined]

        return invoke(args, kwargs)

    with ki.silence_mask_warnings():
        try:
            clone = keras.models.clone_model(
                model,
                clone_function=clone_function,
                call_function=call_function if functional else None,
                recursive=True,
            )
        except PatchError:
            raise
        except Exception as e:
            raise PatchError(f"rebuilding the model failed: {short_error(e)}") from None
    missing = [c for c in candidates if c not in done]
    if missing:
        raise PatchError(
            "; ".join(f"{c.label}: the rebuilt model never reached that site" for c in missing)
        )
    return clone, pairs


def copy_weights(pairs: list[tuple[Any, Any]]) -> None:
    """Sets each rebuilt layer's weights from its original, checking every shape."""
    from .. import _keras_internals as ki

    for old, new in pairs:
        if not ki.is_layer(old) or new is old:
            continue
        src = old.get_weights()
        dst = new.get_weights()
        if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
            raise PatchError(
                f"cannot copy the weights of `{old.name}` ({type(old).__name__}) into its "
                f"replacement ({type(new).__name__}). Received: "
                f"{[a.shape for a in src]} vs {[b.shape for b in dst]}."
            )
        new.set_weights(src)


def build_candidate_model(model: Any, candidates: Sequence[Candidate], trace: Any) -> Any:
    """`model` rebuilt with `candidates`, every weight copied from the original."""
    clone, pairs = rebuild(model, candidates, trace)
    copy_weights(pairs)
    return clone


# --------------------------------------------------------------------------- measuring


def outputs(model: Any, feed: Any) -> list[np.ndarray]:
    import keras

    from .. import _keras_internals as ki

    with ki.silence_mask_warnings():
        out = model(feed, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(out)]


def unpadded_feed(probe: Any) -> tuple[Any, int] | None:
    """The probe with its padding replaced by data: token id 0 -> 1, padded frames
    of `Masking` inputs -> noise, explicit mask inputs all ones. Every row is then a
    row without padding. `None` when an input with padding is of a kind maskviz
    cannot fill."""
    rng = np.random.default_rng(0)
    values = {}
    for inp in probe.inputs:
        v = np.asarray(probe.values[inp.name])
        keep = probe.keep.get(inp.name)
        if inp.kind == "tokens":
            v = np.where(v == 0, np.ones_like(v), v)
        elif inp.kind == "mask":
            v = np.ones_like(v)
        elif keep is not None:
            if inp.kind != "masked-floats":
                return None
            k = np.asarray(keep, dtype=bool).reshape(keep.shape + (1,) * (v.ndim - keep.ndim))
            v = np.where(k, v, rng.standard_normal(v.shape).astype(v.dtype))
        values[inp.name] = v
    return probe.feed(values), len(next(iter(values.values())))


def compare_unpadded(original: Any, patched: Any, probe: Any) -> tuple[Check, float | None]:
    """Whether `patched` gives `original`'s outputs on rows without padding, and
    the max |diff| (`None` when it could not be measured)."""
    name = "outputs unchanged on unpadded rows"
    unpadded = unpadded_feed(probe)
    if unpadded is None:
        return Check(name, None, "maskviz cannot fill the padding of an input of the probe"), None
    feed, n = unpadded
    try:
        a = outputs(original, feed)
    except Exception as e:
        return (
            Check(
                name,
                None,
                f"the original model fails on them ({type(e).__name__}), so there is "
                "nothing to compare with",
            ),
            None,
        )
    try:
        b = outputs(patched, feed)
    except Exception as e:
        return Check(name, False, f"the patched model fails on them: {short_error(e)}"), None
    if len(a) != len(b):
        return Check(name, False, f"the models have {len(a)} and {len(b)} outputs"), None
    worst = 0.0
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            return Check(name, False, f"output {i} has shape {x.shape}, then {y.shape}"), None
        diff = np.abs(x.astype("float64") - y.astype("float64"))
        if diff.size:
            worst = max(worst, float(np.nanmax(diff)))
        if not np.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True):
            return (
                Check(
                    name,
                    False,
                    f"output {i} differs on rows without padding: max |diff| {worst:.3g} "
                    f"(tolerance rtol={RTOL}, atol={ATOL})",
                ),
                worst,
            )
    return Check(
        name, True, f"{n} rows with their padding filled in, max |diff| {worst:.2g}"
    ), worst


@dataclass(frozen=True)
class Invariance:
    """How much a model's outputs at real positions move under one change of the
    padding alone. `change` is the max |diff|, `None` when not measurable."""

    variant: str
    change: float | None
    note: str = ""

    @property
    def holds(self) -> bool | None:
        return None if self.change is None else self.change <= ATOL + RTOL


def _layout(keep: np.ndarray) -> list[tuple[int, int] | None]:
    """Per row: (start, length) of its contiguous real steps, or None."""
    out = []
    for row in keep:
        idx = np.flatnonzero(row)
        if idx.size == 0 or idx[-1] - idx[0] + 1 != idx.size:
            out.append(None)
        else:
            out.append((int(idx[0]), int(idx.size)))
    return out


def _pad_value(v: np.ndarray, keep: np.ndarray) -> Any:
    padded = ~keep
    if padded.any():
        return v[padded][0]
    return np.zeros(v.shape[2:], v.dtype)


def padding_invariance(model: Any, probe: Any) -> tuple[Invariance, ...]:
    """Measures three invariances on the probe's padded rows, computed from the
    probe's padding pattern only (no rule, no oracle):

    - `side`: the same real steps, with the padding moved to the other side;
    - `longer`: the same real steps with more padding (time left open only);
    - `truncated`: each padded row alone, cut to its real steps (time open only).

    Outputs with the input's time axis are compared at the real steps; other
    outputs whole.
    """
    keeps = {k: np.asarray(v, bool) for k, v in probe.keep.items() if v is not None}
    if not keeps:
        return (Invariance("side", None, "the probe has no padding pattern"),)
    keep = next(iter(keeps.values()))
    batch, time = keep.shape
    layout = _layout(keep)
    if any(lay is None for lay in layout) or any(
        not np.array_equal(k, keep) for k in keeps.values()
    ):
        return (Invariance("side", None, "padding is not one run at one end of each row"),)
    values = {i.name: np.asarray(probe.values[i.name]) for i in probe.inputs}
    timed = [n for n, v in values.items() if v.ndim >= 2 and v.shape[1] == time]
    pad_of = {n: _pad_value(values[n], keeps[n]) if n in keeps else None for n in timed}
    try:
        base = outputs(model, probe.feed(values))
    except Exception as e:
        return (Invariance("side", None, f"the model fails on the probe ({type(e).__name__})"),)

    def moved(extra: int, flip: bool) -> tuple[dict[str, np.ndarray], list[int]]:
        new_time = time + extra
        starts = []
        out = {n: v for n, v in values.items() if n not in timed}
        for n in timed:
            v = values[n]
            fill = pad_of[n] if pad_of[n] is not None else np.zeros(v.shape[2:], v.dtype)
            arr = np.empty((batch, new_time, *v.shape[2:]), v.dtype)
            arr[...] = fill
            out[n] = arr
        for r, (start, n_real) in enumerate(layout):
            right = start == 0
            if n_real == time:
                new_start = 0 if extra == 0 or right else extra
            elif flip:
                new_start = new_time - n_real if right else 0
            else:
                new_start = 0 if right else new_time - n_real
            starts.append(new_start)
            for n in timed:
                out[n][r, new_start : new_start + n_real] = values[n][r, start : start + n_real]
        return out, starts

    def compare(
        a: list[np.ndarray], b: list[np.ndarray], starts_a: list[int], starts_b: list[int], rows
    ) -> float:
        worst = 0.0
        for x, y in zip(a, b):
            for r_a, r_b in rows:
                n_real = layout[r_a][1]
                xa, yb = x[r_a], y[r_b]
                if x.ndim >= 2 and x.shape[1] == time and y.ndim >= 2:
                    sa, sb = starts_a[r_a], starts_b[r_b]
                    xa = xa[sa : sa + n_real]
                    yb = yb[sb : sb + n_real]
                if xa.shape != yb.shape:
                    return float("inf")
                diff = np.abs(xa.astype("float64") - yb.astype("float64"))
                if diff.size:
                    worst = max(worst, float(np.nanmax(diff)))
        return worst

    own = [lay[0] for lay in layout]
    padded_rows = [(r, r) for r, lay in enumerate(layout) if lay[1] < time]
    results = []
    try:
        feed, starts = moved(0, flip=True)
        results.append(
            Invariance(
                "side", compare(base, outputs(model, probe.feed(feed)), own, starts, padded_rows)
            )
        )
    except Exception as e:
        results.append(Invariance("side", None, f"{type(e).__name__}"))
    if probe.open_time:
        try:
            feed, starts = moved(max(2, time // 2), flip=False)
            results.append(
                Invariance(
                    "longer",
                    compare(base, outputs(model, probe.feed(feed)), own, starts, padded_rows),
                )
            )
        except Exception as e:
            results.append(Invariance("longer", None, f"{type(e).__name__}"))
        worst = 0.0
        try:
            for r, _ in padded_rows:
                start, n_real = layout[r]
                one = {
                    n: (v[r : r + 1, start : start + n_real] if n in timed else v[r : r + 1])
                    for n, v in values.items()
                }
                got = outputs(model, probe.feed(one))
                worst = max(worst, _compare_row(base, got, r, start, n_real, time))
            results.append(Invariance("truncated", worst))
        except Exception as e:
            results.append(Invariance("truncated", None, f"{type(e).__name__}"))
    return tuple(results)


def _compare_row(
    base: list[np.ndarray], got: list[np.ndarray], r: int, start: int, n_real: int, time: int
) -> float:
    worst = 0.0
    for x, y in zip(base, got):
        xa, yb = x[r], y[0]
        if x.ndim >= 2 and x.shape[1] == time and y.ndim >= 2:
            xa = xa[start : start + n_real]
        if xa.shape != yb.shape:
            return float("inf")
        diff = np.abs(xa.astype("float64") - yb.astype("float64"))
        if diff.size:
            worst = max(worst, float(np.nanmax(diff)))
    return worst


def content_sensitivity(model: Any, probe: Any) -> frozenset[tuple[int, int]] | None:
    """The (row, step) pairs of real steps in padded rows whose value reaches an
    output: each is perturbed alone (a token id moved to another id, a frame
    shifted) in one batched run, and kept when an output at a real position
    changes. A repair may remove what padding does, never what real data does;
    a mask put back on misaligned steps (a layer that reverses or shifts time)
    silences real steps. `None` when not measurable."""
    keeps = {k: np.asarray(v, bool) for k, v in probe.keep.items() if v is not None}
    if not keeps:
        return None
    name, keep = next(iter(keeps.items()))
    values = {i.name: np.asarray(probe.values[i.name]) for i in probe.inputs}
    kind = {i.name: i.kind for i in probe.inputs}[name]
    x = values[name]
    pairs = [
        (r, t) for r in range(keep.shape[0]) if not keep[r].all() for t in np.flatnonzero(keep[r])
    ]
    if not pairs or kind == "mask":
        return None
    rows = [r for r, _ in pairs]
    batch = {n: v[rows] if v.shape[:1] == x.shape[:1] else v for n, v in values.items()}
    perturbed = batch[name].copy()
    for i, (_, t) in enumerate(pairs):
        if kind == "tokens":
            high = max(int(x.max()), 2)
            step = perturbed[i, t]
            perturbed[i, t] = np.where(step != 0, 1 + (step % high), step)
        else:
            perturbed[i, t] = perturbed[i, t] + 1.5
    batch[name] = perturbed
    base_rows = {n: v[rows] if v.shape[:1] == x.shape[:1] else v for n, v in values.items()}
    try:
        a = outputs(model, probe.feed(base_rows))
        b = outputs(model, probe.feed(batch))
    except Exception:
        return None
    time = keep.shape[1]
    found = set()
    for i, (r, t) in enumerate(pairs):
        for xa, xb in zip(a, b):
            ya, yb = xa[i], xb[i]
            if xa.ndim >= 2 and xa.shape[1] == time:
                ya, yb = ya[keep[r]], yb[keep[r]]
            ya, yb = ya.astype("float64"), yb.astype("float64")
            scale = max(
                float(np.max(np.abs(ya), initial=0.0)), float(np.max(np.abs(yb), initial=0.0))
            )
            if ya.size and np.max(np.abs(ya - yb)) > REACH_ATOL + REACH_RTOL * scale:
                found.add((int(r), int(t)))
                break
    return frozenset(found)


def _ranks(found: frozenset | None, keep: Any) -> frozenset | None:
    """(row, step) pairs as (row, which real step of the row: 0 for the first)."""
    if found is None:
        return None
    return frozenset((r, int(np.searchsorted(np.flatnonzero(keep[r]), t))) for r, t in found)


def _packed_probe(probe: Any) -> Any:
    """`probe` with each row's real steps first (as right padding has them), every
    input of the padded input's time length moved the same way; `None` when nothing
    moves."""
    keeps = {k: np.asarray(v, bool) for k, v in probe.keep.items() if v is not None}
    if not keeps:
        return None
    name, keep = next(iter(keeps.items()))
    time = keep.shape[1]
    order = np.stack([np.concatenate([np.flatnonzero(k), np.flatnonzero(~k)]) for k in keep])
    if np.array_equal(order, np.broadcast_to(np.arange(time), order.shape)):
        return None
    rows = np.arange(keep.shape[0])[:, None]
    values = {}
    for n, v in probe.values.items():
        v = np.asarray(v)
        moves = v.ndim >= 2 and v.shape[:2] == keep.shape
        values[n] = v[rows, order] if moves else v
    new_keep = {
        n: (np.asarray(k, bool)[rows, order] if np.shape(k) == keep.shape else k)
        for n, k in probe.keep.items()
    }
    return dataclasses.replace(probe, values=values, keep=new_keep)


def reference_sensitivity(model: Any, probe: Any) -> frozenset | None:
    """The real steps of padded rows that reach the outputs of the *original* model,
    as (row, which real step of the row). Where the original's outputs move with the
    side of the padding (MV113), which real steps reach depends on that side too: a
    step counts when it reaches with the padding where the probe has it and with the
    row's real steps first (as right padding has them). On rows already so, that is
    the plain measurement."""
    keeps = [np.asarray(v, bool) for v in probe.keep.values() if v is not None]
    if not keeps:
        return None
    here = _ranks(content_sensitivity(model, probe), keeps[0])
    packed = _packed_probe(probe)
    if packed is None or here is None:
        return here
    first = next(np.asarray(v, bool) for v in packed.keep.values() if v is not None)
    there = _ranks(content_sensitivity(model, packed), first)
    return here if there is None else here & there


def candidate_sensitivity(model: Any, probe: Any) -> frozenset | None:
    """`content_sensitivity` as (row, which real step of the row)."""
    keeps = [np.asarray(v, bool) for v in probe.keep.values() if v is not None]
    return _ranks(content_sensitivity(model, probe), keeps[0]) if keeps else None


def compare_sensitivity(before: frozenset | None, after: frozenset | None) -> Check:
    name = "real steps still reach the outputs"
    if before is None or after is None:
        return Check(name, None, "not measurable on this probe")
    lost = sorted(before - after)
    if lost:
        shown = ", ".join(f"row {r} real step {t + 1}" for r, t in lost[:4])
        return Check(
            name,
            False,
            f"{len(lost)} real step(s) no longer reach any output ({shown}): the mask is "
            "not aligned with the steps it masks",
        )
    return Check(name, True, f"{len(after)} real steps of padded rows reach the outputs")


def compare_invariance(
    before: Sequence[Invariance], after: Sequence[Invariance]
) -> tuple[Check, tuple[Invariance, ...]]:
    """The candidate may not break an invariance that held before it (as a repair
    may not add an error). Invariances violated before are reported, not judged:
    a positional model (`Flatten` then `Dense`) can never hold the side one."""
    name = "no padding invariance broken"
    prior = {i.variant: i for i in before}
    broken = []
    parts = []
    for inv in after:
        old = prior.get(inv.variant)
        if inv.change is None:
            parts.append(f"{inv.variant}: not measured")
            continue
        old_change = old.change if old is not None else None
        parts.append(
            f"{inv.variant}: {inv.change:.2g}"
            + (f" (was {old_change:.2g})" if old_change is not None else "")
        )
        if old is not None and old.holds and not inv.holds:
            broken.append(inv.variant)
    if broken:
        detail = "broken: " + ", ".join(broken) + "; " + "; ".join(parts)
        return Check(name, False, detail), tuple(after)
    measured = any(i.change is not None for i in after)
    return Check(name, True if measured else None, "; ".join(parts) or "not measured"), tuple(after)


# --------------------------------------------------------------------------- re-inspecting


def mask_pairs(probe: Any) -> dict[str, str] | None:
    pairs = {i.name: i.pairs_with for i in probe.inputs if i.kind == "mask" and i.pairs_with}
    return pairs or None


def reinspect(model: Any, before: Any) -> Any:
    """`maskviz.inspect(model)` on the same probe values as the report `before`."""
    from ..api import inspect

    probe = before.probe
    pairs = mask_pairs(probe)
    loss = getattr(before, "loss", None)
    if not probe.from_data:
        after = inspect(model, mask_inputs=pairs, seed=before.seed, loss=loss)
        same = [i.name for i in after.probe.inputs] == [i.name for i in probe.inputs] and all(
            np.array_equal(after.probe.values[k], v) for k, v in probe.values.items()
        )
        if same:
            return after
    # By position: a reloaded Sequential model may name its input differently.
    data = {f"arr_{i}": probe.values[inp.name] for i, inp in enumerate(probe.inputs)}
    return inspect(model, data=data, mask_inputs=pairs, seed=before.seed, loss=loss)


def _key(f: Finding) -> tuple[str, str]:
    return (f.rule, f.path)


def still_fires(finding: Finding, report: Any) -> bool:
    """`finding` (same rule, same place) is in `report` at its severity or above;
    a finding downgraded (an error that became a warning) no longer counts."""
    return any(
        _key(g) == _key(finding) and g.severity.rank >= finding.severity.rank
        for g in report.findings
    )


def new_errors(current: Any, after: Any) -> list[Finding]:
    """Error findings of `after` that `current` does not have as errors."""
    known = {_key(f) for f in current.findings if f.severity == Severity.ERROR}
    return [f for f in after.findings if f.severity == Severity.ERROR and _key(f) not in known]


@dataclass(frozen=True)
class Verdict:
    """What one attempt measured.

    Attributes:
        passed: every check passed (or was not measurable).
        unsafe: the only failed check is the unpadded-rows comparison.
        checks: the checks, in order.
        after: the report of the candidate model.
        max_diff: max |diff| of the outputs on unpadded rows (`None`: not measured).
    """

    passed: bool
    checks: tuple[Check, ...]
    after: Any = field(default=None, repr=False)
    max_diff: float | None = None
    unsafe: bool = False
    invariance: tuple[Invariance, ...] = ()

    @property
    def reason(self) -> str:
        bad = [c for c in self.checks if c.passed is False]
        return "; ".join(f"{c.name}: {c.detail}" for c in bad)


def evaluate(
    original: Any,
    candidate_model: Any,
    current: Any,
    targets: Sequence[Finding],
    baseline_invariance: Sequence[Invariance],
) -> Verdict:
    """Measures `candidate_model` (the original with some candidates applied)
    against `current` (the report of the model before this attempt).

    `targets` are the findings the attempt must remove.
    """
    after = reinspect(candidate_model, current)
    runs = Check(
        "runs on the probe",
        after.trace.error is None,
        _first_line(after.trace.error) if after.trace.error else "forward pass completed",
    )
    still = [f for f in targets if still_fires(f, after)]
    gone = Check(
        "finding gone",
        not still,
        ", ".join(f"{f.rule} at `{f.path}`" for f in (still or targets))
        + (" still fires" if still else ""),
    )
    appeared = new_errors(current, after)
    new = Check(
        "no new error",
        not appeared,
        "; ".join(f"{f.rule} at `{f.path}`" for f in appeared) or "none",
    )
    same, diff = compare_unpadded(original, candidate_model, current.probe)
    inv_check, inv = compare_invariance(
        baseline_invariance, padding_invariance(candidate_model, current.probe)
    )
    sensitive = compare_sensitivity(
        reference_sensitivity(original, current.probe),
        candidate_sensitivity(candidate_model, current.probe),
    )
    checks = (runs, gone, new, same, inv_check, sensitive)
    failed = [c for c in checks if c.passed is False]
    return Verdict(
        passed=not failed,
        checks=checks,
        after=after,
        max_diff=diff,
        unsafe=bool(failed) and all(c is same for c in failed),
        invariance=inv,
    )
