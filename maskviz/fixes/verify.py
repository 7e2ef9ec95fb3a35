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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..findings import Finding, Severity
from .candidates import Candidate, NotApplicable
from .measure import (
    ATOL,
    RTOL,
    Check,
    Invariance,
    candidate_sensitivity,
    compare_invariance,
    compare_sensitivity,
    outputs,
    padding_invariance,
    reference_sensitivity,
)
from .sites import sites_by_path


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
