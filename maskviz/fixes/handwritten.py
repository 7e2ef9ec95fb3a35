"""Subclassed models: `clone_model` cannot rebuild them, so their repairs are code.

Each candidate that can be applied to a layer attribute (a twin of the layer) is
applied *in place on a copy* of the model (`from_config`, same weights; never the
user's model) and verified the same way as for a Functional model. A candidate
that passes becomes a `CodeChange`: a unified diff against the source of the
class that creates the layer, when `inspect.getsource` finds the assignment, and
otherwise a snippet to run on the model.
"""

from __future__ import annotations

import difflib
import inspect as pyinspect
import re
from dataclasses import dataclass
from typing import Any

from ..errors import MaskvizError
from ..findings import Severity
from .candidates import UseTwin
from .measure import padding_invariance
from .sites import candidates_for
from .verify import evaluate, still_fires


@dataclass(frozen=True)
class CodeChange:
    """A verified repair to make by hand.

    Attributes:
        finding: the finding it repairs (`rule at path`).
        description: what the change does.
        diff: a unified diff against the source file, or `""`.
        snippet: code to run instead when no diff could be made, or `""`.
        max_diff: max |diff| of the outputs on unpadded rows, measured on the copy.
    """

    finding: str
    description: str
    diff: str = ""
    snippet: str = ""
    max_diff: float | None = None

    def to_text(self) -> str:
        head = f"code change for {self.finding} (verified on a copy of the model): "
        body = self.diff or self.snippet
        return head + self.description + "\n" + body.rstrip("\n")


def _copy_model(model: Any, probe: Any, chain: list[str], twin: Any) -> Any:
    """A fresh instance of the model's class, with `twin` in place of the layer at
    attribute `chain`, and every other layer's weights copied from `model`."""

    try:
        copy = type(model).from_config(model.get_config())
        owner, attr = _follow(copy, chain)
        setattr(owner, attr, twin)  # before the copy is built: Keras locks state then
        copy(probe.feed(), training=False)
        _copy_nested(model, copy, chain, twin)
    except Exception as e:
        raise MaskvizError(
            f"cannot copy subclassed model '{model.name}' to verify a repair on it: "
            f"{type(e).__name__}: {e}. Check its `get_config`/`from_config`."
        ) from None
    return copy


def _copy_nested(original: Any, copy: Any, chain: list[str], twin: Any) -> None:
    from .. import _keras_internals as ki

    for name, layer in ki.instance_attributes(original):
        if not ki.is_layer(layer) or (len(chain) == 1 and name == chain[0]):
            continue
        mine = getattr(copy, name, None)
        if ki.is_layer(mine) and mine is not twin:
            if len(chain) > 1 and name == chain[0]:
                _copy_nested(layer, mine, chain[1:], twin)
            else:
                mine.set_weights(layer.get_weights())


def _attr_chain(model: Any, path: str) -> list[str] | None:
    """The attribute names that lead from `model` to the layer at `path`
    (`["decoder"]` for `model.decoder`), or `None`."""
    from .. import _keras_internals as ki

    owner = model
    chain: list[str] = []
    for part in path.split("/"):
        found = None
        for attr, value in ki.instance_attributes(owner):
            if ki.is_layer(value) and getattr(value, "name", None) == part:
                found = (attr, value)
                break
        if found is None:
            return None
        chain.append(found[0])
        owner = found[1]
    return chain


def _follow(model: Any, chain: list[str]) -> tuple[Any, str]:
    owner = model
    for attr in chain[:-1]:
        owner = getattr(owner, attr)
    return owner, chain[-1]


def _diff_for(owner: Any, attr: str, twin: str) -> str:
    """A unified diff of the assignment `self.<attr> = X(...)` -> the twin."""
    cls = type(owner)
    try:
        lines, _ = pyinspect.getsourcelines(cls)
        filename = pyinspect.getsourcefile(cls) or "<source>"
    except (OSError, TypeError):
        return ""
    pattern = re.compile(rf"^(\s*self\.{re.escape(attr)}\s*=\s*)([\w\.]+)(\s*\()")
    new = list(lines)
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if m:
            new[i] = line[: m.start(2)] + f"maskviz.layers.{twin}" + line[m.end(2) :]
            return "".join(
                difflib.unified_diff(lines, new, fromfile=filename, tofile=filename, n=2)
            )
    return ""


def patch_subclassed(report: Any, *, unsafe_fixes: bool = False) -> Any:
    """Searches twin repairs for a subclassed model and returns them as code."""
    from .results import Attempt, Outcome, PatchResult, PatchStatus
    from .search import _rows, _State

    model = report.model
    state = _State()
    changes: list[CodeChange] = []
    invariance = padding_invariance(model, report.probe)
    repaired: Any = None  # the report of the copy with the last kept change
    for finding in [f for f in report.findings if f.severity == Severity.ERROR]:
        if any(k == (finding.rule, finding.path) for k in state.targets):
            continue
        if repaired is not None and not still_fires(finding, repaired):
            continue  # resolved by a change already kept (one change per layer)
        for cand in candidates_for(finding, model, report.trace):
            if not isinstance(cand, UseTwin):
                state.attempts.append(
                    Attempt(
                        finding,
                        cand,
                        Outcome.NOT_APPLICABLE,
                        "a call-level change of a subclassed model's `call` is not "
                        "verified in place; see the finding's suggestion",
                    )
                )
                continue
            chain = _attr_chain(model, cand.site)
            if chain is None:
                state.attempts.append(
                    Attempt(finding, cand, Outcome.NOT_APPLICABLE, "no attribute holds that layer")
                )
                continue
            original_owner, attr = _follow(model, chain)
            twin = cand.replace(getattr(original_owner, attr))
            try:
                copy = _copy_model(model, report.probe, chain, twin)
            except MaskvizError as e:
                state.attempts.append(Attempt(finding, cand, Outcome.NOT_APPLICABLE, str(e)))
                continue
            owner = _follow(copy, chain)[0]
            verdict = evaluate(model, copy, report, [finding], invariance)
            if verdict.passed or (verdict.unsafe and unsafe_fixes):
                state.attempts.append(Attempt(finding, cand, Outcome.KEPT, "", verdict.max_diff))
                state.kept.append(cand)
                state.targets[(finding.rule, finding.path)] = cand
                repaired = verdict.after
                diff = _diff_for(original_owner, attr, cand.twin)
                snippet = (
                    ""
                    if diff
                    else f"{type(owner).__name__}.{attr} = maskviz.layers.{cand.twin}.from_layer("
                    f"<the {type(getattr(original_owner, attr)).__name__} layer>)  # keeps weights"
                )
                changes.append(
                    CodeChange(
                        f"{finding.rule} at `{finding.path}`",
                        cand.describe(),
                        diff=diff,
                        snippet=snippet,
                        max_diff=verdict.max_diff,
                    )
                )
                break
            state.attempts.append(
                Attempt(
                    finding,
                    cand,
                    Outcome.UNSAFE if verdict.unsafe else Outcome.FAILED,
                    verdict.reason,
                    verdict.max_diff,
                )
            )
    reason = (
        f"model '{model.name}' is a subclassed `{type(model).__name__}`: "
        "`keras.models.clone_model` rebuilds only Functional and Sequential models"
    )
    if changes:
        reason += f"; {len(changes)} verified code change(s) to make by hand are shown"
    return PatchResult(
        before=report,
        rows=_rows(report, None, state),
        status=PatchStatus.FAILED,
        reason=reason,
        attempts=tuple(state.attempts),
        kept=tuple(state.kept),
        code_changes=tuple(changes),
    )
