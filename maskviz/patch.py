"""Applying the findings' fixes: a rebuilt model, saved, reloaded and re-checked.

The patcher is a `clone_function`, not a graph rewriter (keras `cloning.py`): the
findings' `Fix.replace` callables are combined into one `clone_function` for
`keras.models.clone_model`, and call-level fixes (`Fix.call_kwargs`, e.g. passing
the sequence's own mask with `mask=` to an RNN called with `initial_state=`) go
through its `call_function`. Every weight is copied from the original layer. The
rebuilt model is saved, reloaded, and inspected again from scratch; the result is
accepted only when

- the findings whose fixes were applied no longer fire, and no new error appears;
- on the probe rows that have no padding, every model output equals the original's;
- where the leak oracle saw padding leak in, it no longer does.

Fix safety follows ruff's `Applicability`: `SAFE` fixes are applied by default,
`UNSAFE` ones only with `unsafe_fixes=True` (`--unsafe-fixes`), `DISPLAY_ONLY` ones
are printed, never applied.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MaskvizError
from .findings import Applicability, Finding, Severity

# Tolerance of the unpadded-rows comparison (float32 outputs of rebuilt layers).
RTOL = 1e-4
ATOL = 1e-5

FIXED, LEFT, NEW = "fixed", "left", "new"


class PatchError(Exception):
    """A fix could not be applied while the model was rebuilt."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Row:
    """One line of the before/after table.

    Attributes:
        finding: the finding (from the report before patching, or after for `new`).
        status: `fixed` (fired before, not after), `left` (fires in both) or `new`
            (fires only after).
        applied: this finding's own fix was applied.
        note: why a fix was not applied, or what resolved the finding.
    """

    finding: Finding
    status: str
    applied: bool = False
    note: str = ""


@dataclass(frozen=True)
class Check:
    """One verification of the patched model. `passed` is `None` when skipped."""

    name: str
    passed: bool | None
    detail: str

    @property
    def label(self) -> str:
        return {True: "ok", False: "FAILED", None: "skipped"}[self.passed]


@dataclass(frozen=True)
class PatchResult:
    """What `patch_model` did.

    Attributes:
        before: the report the fixes came from.
        after: the report of the patched (saved and reloaded) model, or `None` when
            nothing was rebuilt.
        model: the patched model (reloaded from its saved file), or `None`.
        rows: the before/after table.
        checks: the verifications run on the patched model.
        status: `nothing to fix`, `no applicable fix`, `patched`, or `failed`.
        reason: one line saying why, when `status` is `failed`.
        saved_path: the verified `.keras` file of the patched model (temporary).
    """

    before: Any
    after: Any = None
    model: Any = field(default=None, repr=False)
    rows: tuple[Row, ...] = ()
    checks: tuple[Check, ...] = ()
    status: str = "nothing to fix"
    reason: str = ""
    saved_path: str | None = None

    @property
    def applied(self) -> list[Finding]:
        return [r.finding for r in self.rows if r.applied]

    @property
    def verified(self) -> bool:
        return self.status != "failed" and all(c.passed is not False for c in self.checks)

    @property
    def remaining_errors(self) -> list[Finding]:
        return [
            r.finding
            for r in self.rows
            if r.status in (LEFT, NEW) and r.finding.severity == Severity.ERROR
        ]

    @property
    def ok(self) -> bool:
        """Verified, and no error-severity finding is left."""
        return self.verified and not self.remaining_errors

    def to_text(self) -> str:
        return _render(self, out_path=None, written=False)


@dataclass(frozen=True)
class FixResult(PatchResult):
    """What `fix_model_file` did: a `PatchResult` plus where it was written."""

    path: str = ""
    written: bool = False

    def to_text(self) -> str:
        return _render(self, out_path=self.path, written=self.written)


# --------------------------------------------------------------------------- replacements
# `Fix.replace` callables: each takes the original layer and returns its
# replacement, carrying the original's name and weights, or `None` when it does
# not apply to that layer.


def masked_twin(layer: Any) -> Any:
    """`Conv1D` -> `MaskedConv1D`, `GlobalMaxPooling1D` -> `MaskedGlobalMaxPooling1D`,
    `LSTM`/`GRU`/`RNN` -> `MaskedLSTM`/`MaskedGRU`/`MaskedRNN` (same config and weights)."""
    import keras

    from . import layers as ml

    cls = type(layer)
    if cls is keras.layers.Conv1D:
        return ml.MaskedConv1D.from_layer(layer)
    if cls is keras.layers.GlobalMaxPooling1D:
        return ml.MaskedGlobalMaxPooling1D.from_config(layer.get_config())
    if cls in (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN, keras.layers.RNN):
        return ml.MaskedRNN.from_layer(layer)
    return None


def timestep_masking(layer: Any) -> Any:
    """`Masking` -> `TimestepMasking` with the same `mask_value`: one mask entry per
    step, whatever the input's rank."""
    import keras

    from . import layers as ml

    if type(layer) is not keras.layers.Masking:
        return None
    return ml.TimestepMasking(mask_value=float(layer.mask_value), name=layer.name)


def masked_time_distributed(layer: Any) -> Any:
    """`TimeDistributed(inner)` -> `MaskedTimeDistributed(inner)`, same inner weights."""
    import keras

    from . import layers as ml

    if type(layer) is not keras.layers.TimeDistributed:
        return None
    return ml.MaskedTimeDistributed(copy_layer(layer.layer), name=layer.name)


def mask_passthrough(layer: Any) -> Any:
    """A custom per-step layer -> `MaskPassthrough(layer)`, which hands the incoming
    mask on unchanged. Keras's own layers are left alone: whether they work per step
    is known, and their fixes are specific."""
    from . import layers as ml

    if type(layer).__module__.startswith("keras."):
        return None
    return ml.MaskPassthrough(copy_layer(layer), name=layer.name)


def copy_layer(layer: Any) -> Any:
    """A fresh layer with `layer`'s config, built the same way, with its weights."""
    new = type(layer).from_config(layer.get_config())
    if layer.built:
        build_config = layer.get_build_config()
        if build_config:
            new.build_from_config(build_config)
        if new.built:
            new.set_weights(layer.get_weights())
    return new


# --------------------------------------------------------------------------- planning


@dataclass
class _Planned:
    finding: Finding
    kind: str  # "replace" or "call"
    target: Any  # the original layer
    call_index: int = 0
    replacement: Any = None
    done: bool = False
    error: str = ""
    follow_up: bool = False
    target_path: str = ""


def _layers_by_path(model: Any) -> dict[str, Any]:
    """Every layer of `model` under the path the trace gives it (`encoder/lstm`)."""
    from . import _keras_internals as ki

    found: dict[str, Any] = {}

    def walk(layer: Any, prefix: str) -> None:
        for sub in ki.direct_sublayers(layer):
            if type(sub).__name__ == "InputLayer":
                continue
            path = prefix + sub.name
            found.setdefault(path, sub)
            walk(sub, path + "/")

    walk(model, "")
    return found


def _call_index(call_id: str) -> int:
    _, _, k = call_id.partition("#")
    return int(k) if k.isdigit() else 0


def _not_applied_reason(finding: Finding, unsafe_fixes: bool) -> str | None:
    """Why `finding`'s fix is not applied, or `None` when it is a candidate."""
    fix = finding.fix
    if fix is None:
        return "no fix"
    if fix.applicability == Applicability.DISPLAY_ONLY:
        return "display-only"
    if fix.applicability == Applicability.UNSAFE and not unsafe_fixes:
        return "unsafe fix: apply with --unsafe-fixes"
    if fix.replace is None and not fix.call_kwargs:
        return "no mechanical fix"
    return None


def _plan(
    report: Any, model: Any, unsafe_fixes: bool
) -> tuple[list[_Planned], dict[int, str], list[_Planned]]:
    """The fixes to apply, the reasons others are not applied (by finding index),
    and the fixes that could not be planned."""
    by_path = _layers_by_path(model)
    planned: list[_Planned] = []
    skipped: dict[int, str] = {}
    failed: list[_Planned] = []
    replaced: dict[int, _Planned] = {}
    for i, f in enumerate(report.findings):
        reason = _not_applied_reason(f, unsafe_fixes)
        if reason is not None:
            skipped[i] = reason
            continue
        layer = by_path.get(f.path)
        if f.fix.call_kwargs:
            if layer is None:
                failed.append(_Planned(f, "call", None, error=f"no layer at `{f.path}`"))
                continue
            planned.append(_Planned(f, "call", layer, call_index=_call_index(f.call_id)))
            continue
        details = dict(f.details)
        named = [f.fix.target] if f.fix.target else []
        named += [details[k] for k in ("fix_target", "mask_source") if details.get(k)]
        candidates = [by_path.get(n) for n in named] + [layer]
        item = _Planned(f, "replace", None)
        for cand in candidates:
            if cand is None:
                continue
            if id(cand) in replaced:  # the same layer, fixed once for several findings
                item.target, item.replacement = cand, replaced[id(cand)].replacement
                break
            try:
                new = f.fix.replace(cand)
            except Exception as e:  # a layer the replacement cannot take
                item.error = f"{type(e).__name__}: {e}"
                continue
            if new is not None:
                item.target, item.replacement = cand, new
                item.target_path = next(p for p, lyr in by_path.items() if lyr is cand)
                replaced[id(cand)] = item
                break
        if item.target is None:
            item.error = item.error or "the replacement does not apply to this layer"
            failed.append(item)
        else:
            planned.append(item)
            planned.extend(_follow_ups(report, f, item, by_path, replaced))
    return planned, skipped, failed


def _follow_ups(
    report: Any, finding: Finding, item: _Planned, by_path: dict[str, Any], replaced: dict
) -> list[_Planned]:
    """Replacements a replacement entails.

    `MaskedTimeDistributed` hands on a `(batch, time, ...)` mask made by its inner
    layer; a plain `TimeDistributed` downstream would pass that mask on unchanged
    to a tensor it no longer fits, so each one downstream becomes a
    `MaskedTimeDistributed` too (same inner layer and weights, so equally safe).
    """
    from . import layers as ml
    from .rules import iter_downstream

    if not isinstance(item.replacement, ml.MaskedTimeDistributed):
        return []
    start = next((c for c in report.trace.calls if c.path == item.target_path), None)
    if start is None:
        return []
    out = []
    for call in iter_downstream(report.trace, start.id):
        layer = by_path.get(call.path)
        if call.class_name != "TimeDistributed" or layer is None or id(layer) in replaced:
            continue
        new = masked_time_distributed(layer)
        follow = _Planned(finding, "replace", layer, replacement=new, follow_up=True)
        replaced[id(layer)] = follow
        out.append(follow)
    return out


# --------------------------------------------------------------------------- rebuilding


def _sequence_mask(args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The mask the call's sequence input carries (a list for a list input)."""
    from . import _keras_internals as ki

    seq = args[0] if args else next(iter(kwargs.values()), None)
    if isinstance(seq, (list, tuple)):
        masks = [ki.get_mask(t) for t in seq]
        return None if all(m is None for m in masks) else masks
    return ki.get_mask(seq)


def _follows_input(call: Any) -> bool:
    """Whether the `mask=` this call got is the mask its input carried.

    A Functional graph records, on each node, the mask Keras filled in when the
    model was built (or loaded) as a `mask=` argument. Rebuilt, that argument would
    replay the old mask computation even when a fix upstream changed the mask, so
    such calls get the mask their (rebuilt) input carries instead. A `mask=` that
    differs from the input's (MV105) or that the input did not carry is the
    user's, and is kept.
    """
    if not call.explicit_mask or call.explicit_mask_matches is False:
        return False
    seq = next((t for t in call.inputs if not t.arg.startswith("mask")), None)
    return seq is not None and seq.mask is not None


def _rebuild(model: Any, planned: list[_Planned], report: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """Clones `model` with the planned fixes; returns it and (original, clone) pairs."""
    import keras

    from . import _keras_internals as ki

    replacements = {id(p.target): p for p in planned if p.kind == "replace"}
    calls: dict[tuple[int, int], list[_Planned]] = {}
    for p in planned:
        if p.kind == "call":
            calls.setdefault((id(p.target), p.call_index), []).append(p)
    path_of = {id(layer): path for path, layer in _layers_by_path(model).items()}
    records = report.trace.by_id()
    pairs: list[tuple[Any, Any]] = []
    original_of: dict[int, Any] = {}

    def clone_function(layer: Any) -> Any:
        hit = replacements.get(id(layer))
        if hit is not None:
            new = hit.replacement
            for p in planned:
                if p.kind == "replace" and p.target is layer:
                    p.done = True
        elif ki.is_layer(layer):
            try:
                new = type(layer).from_config(layer.get_config())
            except Exception as e:
                raise PatchError(
                    f"cannot rebuild layer `{layer.name}` ({type(layer).__name__}) from its "
                    f"config: {type(e).__name__}: {e}. Check its `get_config`/`from_config`."
                ) from None
        else:  # a keras op recorded in the graph (e.g. inside compute_mask): stateless
            new = layer
        pairs.append((layer, new))
        original_of[id(new)] = layer
        return new

    counts: dict[int, int] = {}

    def call_function(layer: Any, *args: Any, **kwargs: Any) -> Any:
        original = original_of.get(id(layer))
        if original is not None:
            k = counts.get(id(original), 0)
            counts[id(original)] = k + 1
            path = path_of.get(id(original))
            record = records.get(path if k == 0 else f"{path}#{k}") if path else None
            if ki.is_tensor(kwargs.get("mask")) and record is not None:
                if _follows_input(record):
                    kwargs["mask"] = _sequence_mask(args, kwargs)
            for p in calls.get((id(original), k), []):
                for key, value in p.finding.fix.call_kwargs:
                    if key == "mask" and isinstance(value, str):
                        value = _sequence_mask(args, kwargs)
                        if value is None:
                            p.error = "its sequence input carries no mask in the rebuilt graph"
                            break
                    kwargs[key] = value
                else:
                    p.done = True
        return layer(*args, **kwargs)

    functional = ki.is_functional(model)
    if not functional and not isinstance(model, keras.Sequential):
        raise PatchError(
            f"model '{model.name}' is a subclassed `{type(model).__name__}`: "
            "`keras.models.clone_model` rebuilds only Functional and Sequential models. "
            "Apply the suggestions to its code by hand."
        )
    if not functional and calls:
        raise PatchError("a call-level fix (`mask=`) needs a Functional model")
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
            raise PatchError(f"rebuilding the model failed: {type(e).__name__}: {e}") from None
    return clone, pairs


def _copy_weights(pairs: list[tuple[Any, Any]]) -> None:
    """Sets each rebuilt layer's weights from its original, checking every shape."""
    from . import _keras_internals as ki

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


def _custom_objects(model: Any) -> dict[str, Any]:
    import keras

    from . import _keras_internals as ki

    out = {}
    for layer in ki.flatten_layers(model):
        cls = type(layer)
        if cls.__module__.startswith("keras."):
            continue
        out[cls.__name__] = cls
        out[keras.saving.get_registered_name(cls)] = cls
    return out


def _save_and_reload(model: Any, folder: str) -> tuple[Any, str]:
    import keras

    from . import _keras_internals as ki

    path = os.path.join(folder, f"{model.name or 'model'}.keras")
    with ki.silence_mask_warnings():
        try:
            model.save(path)
        except Exception as e:
            raise PatchError(f"saving the patched model failed: {type(e).__name__}: {e}") from None
        has_lambda = any(type(lyr).__name__ == "Lambda" for lyr in ki.flatten_layers(model))
        try:
            # The file was written just now from a model already in memory: a Lambda
            # in it was loaded (or built) by the user, so reading it back runs no new code.
            reloaded = keras.saving.load_model(
                path, custom_objects=_custom_objects(model), safe_mode=not has_lambda
            )
        except Exception as e:
            raise PatchError(
                f"the patched model does not load back: {type(e).__name__}: {e}"
            ) from None
    return reloaded, path


# --------------------------------------------------------------------------- verifying


def _mask_inputs(probe: Any) -> dict[str, str] | None:
    pairs = {i.name: i.pairs_with for i in probe.inputs if i.kind == "mask" and i.pairs_with}
    return pairs or None


def _reinspect(model: Any, before: Any) -> Any:
    """Inspects `model` on the same probe values as `before`."""
    from .api import inspect

    probe = before.probe
    oracle = True  # the leak check needs it, even when `before` ran without it
    pairs = _mask_inputs(probe)
    if not probe.from_data:
        after = inspect(model, oracle=oracle, mask_inputs=pairs, seed=before.seed)
        same = [i.name for i in after.probe.inputs] == [i.name for i in probe.inputs] and all(
            np.array_equal(after.probe.values[k], v) for k, v in probe.values.items()
        )
        if same:
            return after
    # By position: a reloaded Sequential model may name its input differently.
    data = {f"arr_{i}": probe.values[inp.name] for i, inp in enumerate(probe.inputs)}
    return inspect(model, data=data, oracle=oracle, mask_inputs=pairs, seed=before.seed)


def _unpadded_feed(probe: Any) -> tuple[Any, int] | None:
    """The probe with its padding replaced by data, and its number of rows.

    Token inputs get id 1 where they had the padding id 0 (also inside steps, for
    nested sequences), float inputs fed to `Masking` get noise in their padded
    steps, explicit mask inputs keep every step. Every row is then a row without
    padding, on which a safe fix must not change any output. `None` when an input
    with padding is of a kind maskviz cannot fill.
    """
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


def _outputs(model: Any, feed: Any) -> list[np.ndarray]:
    import keras

    from . import _keras_internals as ki

    with ki.silence_mask_warnings():
        out = model(feed, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(out)]


def _check_outputs(original: Any, patched: Any, probe: Any) -> Check:
    """The patched model's outputs equal the original's on rows without padding."""
    name = "outputs unchanged on unpadded rows"
    unpadded = _unpadded_feed(probe)
    if unpadded is None:
        return Check(name, None, "maskviz cannot fill the padding of an input of the probe")
    feed, n = unpadded
    try:
        a = _outputs(original, feed)
    except Exception as e:
        return Check(
            name,
            None,
            f"the original model fails on them ({type(e).__name__}), so there is nothing "
            "to compare with",
        )
    try:
        b = _outputs(patched, feed)
    except Exception as e:
        return Check(name, False, f"the patched model fails on them: {type(e).__name__}: {e}")
    if len(a) != len(b):
        return Check(name, False, f"the models have {len(a)} and {len(b)} outputs")
    worst = 0.0
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            return Check(name, False, f"output {i} has shape {x.shape}, then {y.shape}")
        diff = np.abs(x.astype("float64") - y.astype("float64"))
        if not np.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True):
            return Check(
                name,
                False,
                f"output {i} differs on rows without padding: max |diff| "
                f"{float(np.nanmax(diff)):.3g} (tolerance rtol={RTOL}, atol={ATOL})",
            )
        if diff.size:
            worst = max(worst, float(np.nanmax(diff)))
    return Check(name, True, f"{n} probe rows with their padding filled in, max |diff| {worst:.2g}")


def _check_runs(after: Any) -> Check:
    name = "the patched model runs on the probe"
    if after.trace.error:
        return Check(name, False, after.trace.error)
    return Check(name, True, "forward pass completed")


def _key(f: Finding) -> tuple[str, str]:
    return (f.rule, f.path)


def _check_findings(applied: list[Finding], before: Any, after: Any) -> tuple[Check, Check]:
    after_keys = {_key(f) for f in after.findings}
    still = [f for f in applied if _key(f) in after_keys]
    fixed = Check(
        "fixed findings no longer fire",
        not still,
        (
            "still firing: " + ", ".join(f"{f.rule} at `{f.path}`" for f in still)
            if still
            else ", ".join(f"{f.rule} at `{f.path}`" for f in applied)
        ),
    )
    before_keys = {_key(f) for f in before.findings}
    new_errors = [
        f for f in after.findings if f.severity == Severity.ERROR and _key(f) not in before_keys
    ]
    new = Check(
        "no new error",
        not new_errors,
        "; ".join(f"{f.rule} at `{f.path}`: {f.message}" for f in new_errors) or "none",
    )
    return fixed, new


def _check_leaks(before: Any, after: Any, left: list[Finding]) -> Check:
    """Where the oracle saw padding leak in, it must not any more, and no new leak
    may appear, unless a (non-leak) finding left unfixed lies at or upstream of it."""
    from .rules import iter_downstream

    name = "padding no longer leaks"
    if after.oracle is None:
        return Check(name, None, "the leak oracle did not run on the patched model")
    leaks_before = {f.path for f in before.findings if f.rule == "MV107"}
    leaks_after = [f for f in after.findings if f.rule == "MV107"]
    if not leaks_after:
        if before.oracle is None:
            return Check(name, True, "the oracle sees no leak (it could not run before)")
        if not leaks_before:
            return Check(name, True, "the oracle saw no leak before and sees none after")
    by_path = {c.path: c for c in after.trace.calls}
    explained: set[str] = set()
    for f in left:
        if f.rule in ("MV107", "MV113"):  # a leak does not explain itself
            continue
        call = by_path.get(f.path)
        if call is not None:
            explained.add(call.path)
            explained.update(c.path for c in iter_downstream(after.trace, call.id))
    bad = [f for f in leaks_after if f.path not in explained]
    if bad:
        return Check(
            name,
            False,
            "the oracle still sees padding leak in at " + ", ".join(f"`{f.path}`" for f in bad),
        )
    kept = [f for f in leaks_after if f.path in explained]
    detail = f"leaks before at {', '.join(sorted(leaks_before)) or 'none'}; none after"
    if kept:
        detail = (
            f"leaks left at {', '.join(f.path for f in kept)}, downstream of findings not fixed"
        )
    return Check(name, True, detail)


def _rows(
    before: Any,
    after: Any,
    applied: list[Finding],
    notes: dict[int, str],
) -> tuple[Row, ...]:
    after_keys = {_key(f) for f in after.findings} if after is not None else None
    applied_ids = {id(f) for f in applied}
    rows = []
    for i, f in enumerate(before.findings):
        is_applied = id(f) in applied_ids
        if after_keys is None:
            status = LEFT
        else:
            status = LEFT if _key(f) in after_keys else FIXED
        note = notes.get(i, "")
        if status == FIXED and not is_applied:
            note = "resolved by the other fixes"
        rows.append(Row(f, status, applied=is_applied, note=note))
    if after is not None:
        before_keys = {_key(f) for f in before.findings}
        rows.extend(Row(f, NEW) for f in after.findings if _key(f) not in before_keys)
    return tuple(rows)


# --------------------------------------------------------------------------- entry points


def patch_model(report: Any, *, unsafe_fixes: bool = False) -> PatchResult:
    """Applies the fixes of `report`'s findings to its model and verifies the result.

    The model is rebuilt with `keras.models.clone_model`: the findings' `Fix.replace`
    callables form its `clone_function`, their `Fix.call_kwargs` its `call_function`.
    Every weight is copied from the original. The patched model is saved to a
    temporary `.keras` file, reloaded, and inspected again on the same probe.

    Args:
        report: a `maskviz.inspect(model)` report of a Functional or Sequential model.
        unsafe_fixes: also apply `UNSAFE` fixes (they may change outputs on rows
            without padding). `DISPLAY_ONLY` fixes are never applied.

    Returns:
        A `PatchResult`: the before/after table, the checks, and the patched model
        (`result.model`, `None` when nothing was rebuilt or a check failed).
        The original model is not changed.
    """
    if not report.findings:
        return PatchResult(before=report, status="nothing to fix")
    model = report.model
    if model is None:
        raise MaskvizError("The report has no model to patch. Received: report.model=None.")
    planned, skipped, failed = _plan(report, model, unsafe_fixes)
    notes = dict(skipped)
    index = {id(f): i for i, f in enumerate(report.findings)}
    for p in failed:
        notes[index[id(p.finding)]] = f"not applied: {p.error}"
    if not planned:
        return PatchResult(
            before=report, rows=_rows(report, None, [], notes), status="no applicable fix"
        )

    def failure(reason: str, after: Any = None, checks: tuple[Check, ...] = ()) -> PatchResult:
        return PatchResult(
            before=report,
            after=after,
            rows=_rows(report, after, [], notes),
            checks=checks,
            status="failed",
            reason=reason,
        )

    try:
        clone, pairs = _rebuild(model, planned, report)
        for p in planned:
            if p.kind == "replace" and not p.done:
                raise PatchError(
                    f"the {p.finding.rule} fix at `{p.finding.path}` was not applied: "
                    "the rebuilt model never called that layer"
                )
    except PatchError as e:
        return failure(str(e))
    # A call-level fix whose mask does not exist in the rebuilt graph (the input
    # carries none, e.g. a layer upstream drops it) is left, with the reason.
    for p in planned:
        if p.kind == "call" and not p.done:
            notes[index[id(p.finding)]] = "not applied: " + (
                p.error or "the rebuilt model never made that call"
            )
    done = [p for p in planned if p.done]
    if not done:
        return PatchResult(
            before=report, rows=_rows(report, None, [], notes), status="no applicable fix"
        )
    try:
        _copy_weights(pairs)
        folder = tempfile.mkdtemp(prefix="maskviz-fix-")
        patched, saved = _save_and_reload(clone, folder)
    except PatchError as e:
        return failure(str(e))
    applied = list({id(p.finding): p.finding for p in done}.values())
    try:
        after = _reinspect(patched, report)
    except MaskvizError as e:
        return failure(f"inspecting the patched model failed: {e}")
    left = [
        f
        for f in report.findings
        if id(f) not in {id(a) for a in applied} and _key(f) in {_key(g) for g in after.findings}
    ]
    fixed_check, new_check = _check_findings(applied, report, after)
    checks = (
        _check_runs(after),
        fixed_check,
        new_check,
        _check_outputs(model, patched, report.probe),
        _check_leaks(report, after, left),
    )
    rows = _rows(report, after, applied, notes)
    if not all(c.passed is not False for c in checks):
        bad = next(c for c in checks if c.passed is False)
        return PatchResult(
            before=report,
            after=after,
            rows=rows,
            checks=checks,
            status="failed",
            reason=f"{bad.name}: {bad.detail}",
        )
    return PatchResult(
        before=report,
        after=after,
        model=patched,
        rows=rows,
        checks=checks,
        status="patched",
        saved_path=saved,
    )


def fix_model_file(
    model: Any,
    out_path: str,
    *,
    unsafe_fixes: bool = False,
    force: bool = False,
) -> FixResult:
    """Inspects `model`, applies its fixes, and writes the verified model to `out_path`.

    Nothing is written when a check fails. A model with nothing to fix is written
    (unchanged) only with `force=True`.

    Args:
        model: a Functional or Sequential Keras model.
        out_path: where to write the model; must end in `.keras`.
        unsafe_fixes: also apply `UNSAFE` fixes.
        force: write the model even when no fix was applied.

    Returns:
        A `FixResult`; `result.ok` is False when a check failed or an error-severity
        finding is left.

    Raises:
        MaskvizError: `out_path` does not end in `.keras` or its folder does not exist.
    """
    from .api import inspect

    out_path = os.fspath(out_path)
    if not out_path.endswith(".keras"):
        raise MaskvizError(
            f"The output must be a `.keras` file. Received: -o {out_path!r}. "
            "Use e.g. `-o fixed.keras`."
        )
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise MaskvizError(
            f"The output folder does not exist. Received: -o {out_path!r}. Create {folder!r} first."
        )
    report = inspect(model)
    result = patch_model(report, unsafe_fixes=unsafe_fixes)
    written = False
    if result.status == "patched" and result.saved_path:
        shutil.copyfile(result.saved_path, out_path)
        written = True
    elif force and result.status in ("nothing to fix", "no applicable fix"):
        from . import _keras_internals as ki

        with ki.silence_mask_warnings():
            model.save(out_path)
        written = True
    if result.saved_path:
        shutil.rmtree(os.path.dirname(result.saved_path), ignore_errors=True)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(PatchResult)}
    fields["saved_path"] = None
    return FixResult(**fields, path=out_path, written=written)


# --------------------------------------------------------------------------- text


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths[:-1])) + "  " + r[-1]
        for r in rows
    ]


def _fix_cell(row: Row) -> str:
    fix = row.finding.fix
    if row.status == NEW:
        return "-"
    if row.applied:
        return f"applied ({fix.applicability.value}): {fix.description}"
    if row.note:
        return row.note
    return "-" if fix is None else f"{fix.applicability.value}: {fix.description}"


def _render(result: PatchResult, *, out_path: str | None, written: bool) -> str:
    before = result.before
    name = before.trace.model_name
    lines = [f"maskviz fix: model '{name}' ({before.trace.model_class})"]
    if result.status == "nothing to fix":
        lines.append("  nothing to fix: no finding.")
    else:
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
        n_applied = len(result.applied)
        n_fixed = sum(r.status == FIXED for r in result.rows)
        n_left = sum(r.status == LEFT for r in result.rows)
        n_new = sum(r.status == NEW for r in result.rows)
        lines.append("")
        lines.append(
            f"  {n_applied} fix(es) applied; {n_fixed} finding(s) fixed, {n_left} left, "
            f"{n_new} new."
        )
        unsafe = [r for r in result.rows if r.note.startswith("unsafe fix")]
        if unsafe:
            lines.append(f"  {len(unsafe)} more fix(es) available with --unsafe-fixes.")
        if result.checks:
            lines.append("")
            lines.append("checks:")
            for c in result.checks:
                lines.append(f"  [{c.label}] {c.name}: {c.detail}")
        if result.status == "failed":
            lines.append("")
            lines.append(f"not fixed: {result.reason}")
    if out_path is not None:
        if written:
            lines.append(f"written to {out_path}")
        elif result.status == "nothing to fix" or result.status == "no applicable fix":
            lines.append("nothing written (use --force to write the model anyway)")
        else:
            lines.append("nothing written")
    return "\n".join(lines) + "\n"


__all__ = [
    "Check",
    "FixResult",
    "PatchResult",
    "Row",
    "fix_model_file",
    "mask_passthrough",
    "masked_time_distributed",
    "masked_twin",
    "patch_model",
    "timestep_masking",
]
