"""The driver of the length/side and loss invariances (`run_invariances`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..callgraph import CallGraph
from .length import Violation, run_variants
from .localize import comparable_calls, localize
from .loss import check_loss
from .runs import call_model, output_names, preserved_state
from .variants import more_padding, other_side, row_layouts, sequences, truncated

MAX_LOCALISED = 3
"""At most this many violating variants are re-run under the trace to localise."""


@dataclass(frozen=True)
class InvarianceResult:
    """What the length/side and loss invariances measured.

    Attributes:
        violations: every measured violation.
        sequences: the padded inputs the variants were built from.
        checked: the checks that ran ("length", "side", "truncation", "loss").
        skipped: `(what, why)` for checks that could not run.
        detected: padding found in the data (`--data`), described.
        runs: extra forward passes (plain and traced).
    """

    violations: tuple[Violation, ...] = ()
    sequences: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    detected: tuple[str, ...] = ()
    runs: int = 0

    def of(self, *invariances: str) -> list[Violation]:
        return [v for v in self.violations if v.invariance in invariances]

    def summary_lines(self) -> list[str]:
        lines = [f"padding: detected in the data: {d}" for d in self.detected]
        if self.checked:
            head = f"invariances ({', '.join(self.checked)}) on {', '.join(self.sequences)}: "
            if not self.violations:
                lines.append(head + "hold")
            for v in self.violations:
                where = f" first at {', '.join(v.calls)}" if v.calls else ""
                lines.append(
                    head + f"{v.invariance} VIOLATED ({v.what}): {v.target} changed by "
                    f"{v.change:.2g} in rows {', '.join(map(str, v.rows))} "
                    f"({', '.join(v.layouts)}){where}"
                )
        for what, why in self.skipped:
            if what == "loss" and "not compiled" in why:
                continue  # the usual case; in the JSON report, not in the text
            lines.append(f"invariances: skipped {what}: {why}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequences": list(self.sequences),
            "checked": list(self.checked),
            "violations": [v.to_dict() for v in self.violations],
            "skipped": [{"what": w, "why": y} for w, y in self.skipped],
            "detected": list(self.detected),
            "runs": self.runs,
        }


def run_invariances(
    model: Any,
    probe: Any,
    trace: Any,
    *,
    seed: int = 0,
    loss: Any = None,
    targets: Any = None,
    sample_weight: Any = None,
    locate: bool = True,
) -> InvarianceResult:
    """Measures the length/side invariance and, when there is a loss, the loss and
    gradient invariance.

    Args:
        model: the model (its variables are restored after every run).
        probe: the probe the trace ran on; its `keep` says where the padding is.
        trace: the base trace (its values are the base of the localisation).
        seed: seed of the targets built for the loss check.
        loss: a loss name or object; default: the model's compiled loss, if any.
        targets, sample_weight: the user's (from `PaddingCheck`); default: built.
        locate: re-run violating variants under the trace to find the first calls.
    """
    detected = tuple(getattr(probe, "detected", ()) or ())
    skipped: list[tuple[str, str]] = []
    if trace.error:
        return InvarianceResult(skipped=(("invariances", "the probe run failed"),))
    seqs = sequences(model, probe)
    if not seqs:
        return InvarianceResult(
            skipped=(
                (
                    "invariances",
                    "no input has padding (no padding id, mask value, "
                    "explicit mask input or padding found in the data)",
                ),
            ),
            detected=detected,
        )
    batch = seqs[0].keep.shape[0]
    layouts = row_layouts(seqs, batch)
    variants = [v for v in (more_padding(probe, seqs), other_side(probe, seqs)) if v]
    variants += truncated(probe, seqs)
    if not any(s.open for s in seqs):
        skipped.append(("length", "the model's time length is fixed: only the side is varied"))
    checked = tuple(dict.fromkeys(v.invariance for v in variants))
    violations: list[Violation] = []
    runs = 0
    with preserved_state(model) as reset:
        reset()
        base_out = call_model(model, probe, probe.values)
        runs += 1
        names = output_names(trace, len(base_out))
        outcomes = run_variants(model, probe, seqs, base_out, variants, reset, skipped)
        runs += len(outcomes)
        merged: dict[tuple[str, int], list[Any]] = {}
        for oc in outcomes:
            for i, d in oc.changed.items():
                merged.setdefault((oc.variant.invariance, i), []).append((oc, d))
        located: dict[tuple[str, int], list[tuple[str, tuple[str, ...]]]] = {}
        if locate and merged:
            graph = CallGraph(trace)
            comparable = comparable_calls(trace, model)
            done = 0
            for oc in outcomes:
                if not oc.changed or done >= MAX_LOCALISED:
                    continue
                if all((oc.variant.invariance, i) in located for i in oc.changed):
                    continue
                reset()
                found = localize(
                    model, probe, trace, seqs, oc.variant, sorted(oc.changed), graph, comparable
                )
                runs += 1
                done += 1
                for i, firsts in found.items():
                    located.setdefault((oc.variant.invariance, i), firsts)
        for (inv, i), items in sorted(merged.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rows = tuple(sorted({r for _, d in items for r in d.rows}))
            best = max((d for _, d in items), key=lambda d: d.change)
            firsts = located.get((inv, i), [])
            violations.append(
                Violation(
                    invariance=inv,
                    what=items[0][0].variant.what,
                    target=names[i],
                    rows=rows,
                    layouts=tuple(sorted({layouts[r] for r in rows})),
                    change=best.change,
                    max_abs=best.max_abs,
                    scale=best.scale,
                    calls=tuple(f for f, _ in firsts),
                    paths=tuple(p for _, p in firsts),
                )
            )
        if loss is not None or getattr(model, "loss", None) is not None:
            lv, n = check_loss(
                model,
                probe,
                trace,
                seqs,
                variants,
                base_out,
                loss=loss,
                targets=targets,
                sample_weight=sample_weight,
                seed=seed,
                reset=reset,
                skipped=skipped,
            )
            violations.extend(lv)
            runs += n
            checked += ("loss",)
        else:
            skipped.append(
                ("loss", "the model is not compiled and no loss was given (`--loss`, `loss=`)")
            )
    return InvarianceResult(
        violations=tuple(violations),
        sequences=tuple(s.name for s in seqs),
        checked=checked,
        skipped=tuple(skipped),
        detected=detected,
        runs=runs,
    )
