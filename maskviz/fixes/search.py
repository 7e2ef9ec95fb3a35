"""The fix search: propose candidates per finding, verify each, keep what works.

For each error-level finding, in trace order, the candidates of
`maskviz.fixes.candidates` are tried from the most specific to the most generic.
Each is applied (with the candidates kept so far) to a clone of the model, and
`maskviz.fixes.verify.evaluate` measures it. The first that passes is kept; the
search then re-reads the findings of the repaired clone and goes on. Every
attempt is recorded with why it failed.

Safety is measured, not declared: a candidate that changes outputs on rows
without padding is *unsafe* and is kept only with `unsafe_fixes=True`.

When the search kept something, the model with every kept candidate is built
once more, saved to `.keras`, loaded back and verified again (what is verified is
what is written).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..errors import MaskvizError
from ..findings import Finding, Severity
from .candidates import Candidate
from .measure import Check, Invariance, padding_invariance
from .results import FIXED, LEFT, NEW, Attempt, FixResult, Outcome, PatchResult, PatchStatus, Row
from .sites import candidates_for, downstream_candidates
from .verify import (
    PatchError,
    build_candidate_model,
    compare_unpadded,
    evaluate,
    new_errors,
    reinspect,
    still_fires,
)

# Safety cap on search rounds (each round keeps a candidate or gives up a finding).
MAX_ROUNDS = 24
# Budget of candidate attempts per search (each is a rebuild plus an inspection).
MAX_ATTEMPTS = 80


# --------------------------------------------------------------------------- the search


def _key(f: Finding) -> tuple[str, str]:
    return (f.rule, f.path)


def _errors(report: Any) -> list[Finding]:
    return [f for f in report.findings if f.severity == Severity.ERROR]


@dataclass
class _State:
    kept: list[Candidate] = field(default_factory=list)
    targets: dict[tuple[str, str], Candidate] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    budget_spent: bool = False


def search(report: Any, *, unsafe_fixes: bool = False) -> tuple[_State, Any]:
    """Runs the search on `report.model`; returns what it kept and the report of
    the model with every kept candidate (in memory, not yet saved)."""
    model = report.model
    state = _State()
    current = report
    invariance: tuple[Invariance, ...] = padding_invariance(model, report.probe)
    given_up: set[tuple[str, str]] = set()
    for _ in range(MAX_ROUNDS):
        pending = [f for f in _errors(current) if _key(f) not in given_up]
        if not pending:
            break
        finding = pending[0]
        if len(state.attempts) >= MAX_ATTEMPTS:
            state.budget_spent = True
            break
        changed = {(c.site, c.call_index) for c in state.kept}
        won = False
        for cand in candidates_for(finding, model, current.trace):
            replaced = _replaced(state, cand)
            if (cand.site, cand.call_index) in changed and (
                replaced is None or cand in state.kept or not _replaces(finding, cand)
            ):
                continue
            kept = [c for c in state.kept if c is not replaced]
            # A candidate that takes the place of a kept one must fix what that one fixed.
            owed = [
                f
                for f in _errors(report)
                if replaced is not None and state.targets.get(_key(f)) is replaced
            ]
            try:
                trial = build_candidate_model(model, [*kept, cand], report.trace)
            except PatchError as e:
                state.attempts.append(Attempt(finding, cand, Outcome.NOT_APPLICABLE, str(e)))
                continue
            try:
                verdict = evaluate(model, trial, current, [finding, *owed], invariance)
            except MaskvizError as e:
                state.attempts.append(
                    Attempt(finding, cand, Outcome.FAILED, f"inspect failed: {e}")
                )
                continue
            if verdict.passed or (verdict.unsafe and unsafe_fixes):
                note = "kept" + (
                    " (unsafe: changes unpadded outputs)" if not verdict.passed else ""
                )
                state.attempts.append(
                    Attempt(finding, cand, Outcome.KEPT, note, max_diff=verdict.max_diff)
                )
                if replaced is not None and replaced in state.kept:
                    state.kept = kept
                    for k, c in list(state.targets.items()):
                        if c is replaced:
                            state.targets[k] = cand
                    for i, a in enumerate(state.attempts):
                        if a.candidate is replaced and a.outcome == Outcome.KEPT:
                            state.attempts[i] = dataclasses.replace(
                                a, outcome=Outcome.REPLACED, reason=f"replaced by {cand.kind}"
                            )
                state.kept.append(cand)
                state.targets[_key(finding)] = cand
                current = verdict.after
                invariance = verdict.invariance
                won = True
                break
            state.attempts.append(
                Attempt(
                    finding,
                    cand,
                    Outcome.UNSAFE if verdict.unsafe else Outcome.FAILED,
                    verdict.reason,
                    max_diff=verdict.max_diff,
                )
            )
            follow = _follow_up(report, state, current, finding, cand, verdict, invariance)
            if follow is not None:
                pair, verdict2, second = follow
                state.attempts[-1] = Attempt(
                    finding, cand, Outcome.KEPT, "kept with the next candidate", verdict2.max_diff
                )
                state.attempts.append(
                    Attempt(
                        second,
                        pair[1],
                        Outcome.KEPT,
                        "together with the previous candidate",
                        max_diff=verdict2.max_diff,
                    )
                )
                state.kept.extend(pair)
                state.targets[_key(finding)] = pair[0]
                if second is not finding:
                    state.targets.setdefault(_key(second), pair[1])
                current = verdict2.after
                invariance = verdict2.invariance
                won = True
                break
        if not won:
            given_up.add(_key(finding))
    return state, current


def _replaced(state: _State, cand: Candidate) -> Candidate | None:
    """The kept candidate at `cand`'s site (one repair per call), if any."""
    return next(
        (c for c in state.kept if (c.site, c.call_index) == (cand.site, cand.call_index)), None
    )


def _replaces(finding: Finding, cand: Candidate) -> bool:
    """A candidate may take the place of the one kept at its site when it is a repair
    of where the padding sits (MV113 at that call): it does what the kept one did
    (zero the padding, keep the mask) and more, and must verify for both findings."""
    return cand.kind == "pack-real" and finding.path == cand.site


def _follow_up(
    report: Any,
    state: _State,
    current: Any,
    finding: Finding,
    cand: Candidate,
    verdict: Any,
    invariance: Any,
) -> tuple[tuple[Candidate, Candidate], Any, Finding] | None:
    """A candidate that moved the problem: the error it raised downstream (the
    next layer dropping the same mask, a wrapper downstream that cannot take the
    repaired mask) is searched once more, with both candidates applied. The pair
    is kept only when it passes every check for both findings."""
    if verdict.after is None:
        return None
    model = report.model
    appeared = new_errors(current, verdict.after)
    if appeared:
        second = appeared[0]
        partners = candidates_for(second, model, verdict.after.trace)
    elif next(c for c in verdict.checks if c.name == "finding gone").passed:
        # It repaired its finding but broke something downstream of it.
        second = finding
        partners = downstream_candidates(model, cand.site, verdict.after.trace)
    else:
        return None
    changed = {(c.site, c.call_index) for c in [*state.kept, cand]}
    for cand2 in partners:
        if (cand2.site, cand2.call_index) in changed:
            continue
        try:
            trial = build_candidate_model(model, [*state.kept, cand, cand2], report.trace)
            targets = [finding] if second is finding else [finding, second]
            verdict2 = evaluate(model, trial, current, targets, invariance)
        except (PatchError, MaskvizError):
            continue
        if verdict2.passed:
            return (cand, cand2), verdict2, second
    return None


# --------------------------------------------------------------------------- saving


def _custom_objects(model: Any) -> dict[str, Any]:
    import keras

    from .. import _keras_internals as ki

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

    from .. import _keras_internals as ki

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


# --------------------------------------------------------------------------- rows


def _rows(before: Any, after: Any, state: _State) -> tuple[Row, ...]:
    rows = []
    for f in before.findings:
        cand = state.targets.get(_key(f))
        status = LEFT if after is None or still_fires(f, after) else FIXED
        if cand is not None:
            note = cand.describe()
        elif status == FIXED:
            note = "resolved by the other fixes"
        elif f.severity != Severity.ERROR:
            note = f"{f.severity.value}: not searched"
        else:
            tried = [a for a in state.attempts if _key(a.finding) == _key(f)]
            unsafe = [a for a in tried if a.outcome == Outcome.UNSAFE]
            if unsafe:
                note = f"unsafe fix: apply with --unsafe-fixes ({unsafe[0].candidate.describe()})"
            elif tried:
                note = f"no candidate passed ({len(tried)} tried)"
            else:
                note = "no candidate for this finding"
        rows.append(Row(f, status, applied=cand is not None and status == FIXED, note=note))
    if after is not None:
        before_keys = {_key(f) for f in before.findings}
        rows.extend(Row(f, NEW) for f in after.findings if _key(f) not in before_keys)
    return tuple(rows)


# --------------------------------------------------------------------------- entry points


def patch_model(report: Any, *, unsafe_fixes: bool = False) -> PatchResult:
    """Searches verified repairs for `report`'s error findings and applies them.

    Args:
        report: a `maskviz.inspect(model)` report.
        unsafe_fixes: also keep candidates that change outputs on rows without
            padding.

    Returns:
        A `PatchResult`: the before/after table, every attempt, the final checks,
        and the repaired model (`result.model`; `None` when nothing was kept). For
        a subclassed model, `result.code_changes` holds the verified changes to
        make by hand. The original model is not changed.
    """
    model = report.model
    if model is None:
        raise MaskvizError("The report has no model to patch. Received: report.model=None.")
    if not _errors(report):
        return PatchResult(
            before=report, rows=_rows(report, None, _State()), status=PatchStatus.NOTHING
        )
    from .. import _keras_internals as ki

    if not ki.is_functional(model) and not _is_sequential(model):
        from .handwritten import patch_subclassed

        return patch_subclassed(report, unsafe_fixes=unsafe_fixes)
    state, _ = search(report, unsafe_fixes=unsafe_fixes)
    if not state.kept:
        status = PatchStatus.FAILED if state.attempts else PatchStatus.NO_FIX
        reasons = _reasons(state)
        if state.budget_spent:
            reasons = f"search stopped after {MAX_ATTEMPTS} attempts; " + reasons
        return PatchResult(
            before=report,
            rows=_rows(report, None, state),
            status=status,
            reason=reasons or "no candidate for any error finding",
            attempts=tuple(state.attempts),
        )

    def failure(reason: str, after: Any = None, checks: tuple[Check, ...] = ()) -> PatchResult:
        return PatchResult(
            before=report,
            after=after,
            rows=_rows(report, after, state),
            checks=checks,
            status=PatchStatus.FAILED,
            reason=reason,
            attempts=tuple(state.attempts),
            kept=tuple(state.kept),
        )

    try:
        clone = build_candidate_model(model, state.kept, report.trace)
        folder = tempfile.mkdtemp(prefix="maskviz-fix-")
        patched, saved = _save_and_reload(clone, folder)
    except PatchError as e:
        return failure(str(e))
    try:
        after = reinspect(patched, report)
    except MaskvizError as e:
        return failure(f"inspecting the patched model failed: {e}")
    checks = _final_checks(model, patched, report, after, state)
    if any(c.passed is False for c in checks):
        bad = next(c for c in checks if c.passed is False)
        shutil.rmtree(folder, ignore_errors=True)
        return failure(f"{bad.name}: {bad.detail}", after, checks)
    return PatchResult(
        before=report,
        after=after,
        model=patched,
        rows=_rows(report, after, state),
        checks=checks,
        status=PatchStatus.PATCHED,
        saved_path=saved,
        attempts=tuple(state.attempts),
        kept=tuple(state.kept),
    )


def _is_sequential(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Sequential)


def _reasons(state: _State) -> str:
    """One line per finding for which nothing passed: the first failure."""
    seen: dict[tuple[str, str], Attempt] = {}
    for a in state.attempts:
        seen.setdefault(_key(a.finding), a)
    return "; ".join(
        f"{a.finding.rule} at `{a.finding.path}`: {a.candidate.label} {a.outcome}: {a.reason}"
        for a in seen.values()
    )


def _final_checks(model: Any, patched: Any, before: Any, after: Any, state: _State) -> tuple:
    runs = Check(
        "the patched model runs on the probe",
        after.trace.error is None,
        after.trace.error or "forward pass completed",
    )
    by_key = {_key(f): f for f in before.findings}
    targets = [k for k in state.targets if k in by_key]
    still = [k for k in targets if still_fires(by_key[k], after)]
    fixed = Check(
        "fixed findings no longer fire",
        not still,
        ", ".join(f"{r} at `{p}`" for r, p in (still or targets))
        + (" still firing" if still else ""),
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
    same, _ = compare_unpadded(model, patched, before.probe)
    unsafe_kept = [a for a in state.attempts if a.outcome == Outcome.KEPT and "unsafe" in a.reason]
    if same.passed is False and unsafe_kept:
        same = Check(same.name, True, f"changed, as --unsafe-fixes allows: {same.detail}")
    return (runs, fixed, new, same)


def fix_model_file(
    model: Any,
    out_path: str,
    *,
    unsafe_fixes: bool = False,
    force: bool = False,
    data: Any = None,
    mask_inputs: Any = None,
    loss: Any = None,
) -> FixResult:
    """Inspects `model`, searches verified repairs, and writes the repaired model.

    Nothing is written when no candidate passed or a final check failed. A model
    with no error finding is written (unchanged) only with `force=True`.

    Args:
        model: a Keras model. A subclassed model is not written: its verified
            repairs are returned as code changes to make by hand.
        out_path: where to write the model; must end in `.keras`.
        unsafe_fixes: also keep candidates that change outputs on unpadded rows.
        force: write the model even when nothing was fixed.
        data, mask_inputs, loss: as for `maskviz.inspect`.

    Returns:
        A `FixResult`; `result.ok` is False when a check failed or an error
        finding is left.

    Raises:
        MaskvizError: `out_path` does not end in `.keras` or its folder does not
            exist, or `data` does not fit the model.
    """
    from ..api import inspect

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
    report = inspect(model, data=data, mask_inputs=mask_inputs, loss=loss)
    result = patch_model(report, unsafe_fixes=unsafe_fixes)
    written = False
    if result.status == PatchStatus.PATCHED and result.saved_path:
        shutil.copyfile(result.saved_path, out_path)
        written = True
    elif force and result.status in (PatchStatus.NOTHING, PatchStatus.NO_FIX):
        from .. import _keras_internals as ki

        with ki.silence_mask_warnings():
            model.save(out_path)
        written = True
    if result.saved_path:
        shutil.rmtree(os.path.dirname(result.saved_path), ignore_errors=True)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(PatchResult)}
    fields["saved_path"] = None
    return FixResult(**fields, path=out_path, written=written)
