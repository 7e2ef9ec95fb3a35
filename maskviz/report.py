"""`Report`: what maskviz found in one model, and its renderings: JSON (`Report.to_json`),
text (rich) and SARIF."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import cut, escape
from .findings import Finding, Severity
from .rules.queries import fmt_shape
from .trace.records import CallKind, Role

if TYPE_CHECKING:
    import keras
    import networkx as nx

    from .legacy import Keras2Comparison, Keras2Origin
    from .oracle.results import OracleResult
    from .probe import Probe
    from .trace import Trace

JSON_SCHEMA_VERSION = 1
LossSpec = str | Callable[..., Any] | None
"""A loss: a Keras loss name (`"mse"`), a loss object or function, or `None`."""

NAME_LIMIT = 60  # characters of a layer name or class shown in the text report
TEXT_LIMIT = 2000  # characters of a finding's message (names inside it are not cut)


def _name(text: Any, limit: int = NAME_LIMIT) -> str:
    """A name for the report: control characters escaped, cut in the middle when long.
    Cut before rich sees it: rich's table layout slows down badly on megabyte cells."""
    return cut(str(text), limit)


def _clip(text: Any, limit: int = TEXT_LIMIT) -> str:
    """A message for the report: control characters other than line feeds escaped, cut
    when longer than `limit`."""
    text = str(text)
    return cut(text, limit) if len(text) > limit else escape(text, keep_newlines=True)


SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
ROLE_STYLE = {
    Role.GENERATOR: "green",
    Role.PROPAGATOR: "",
    Role.MODIFIER: "magenta",
    Role.CONSUMER: "blue",
    Role.DESTROYER: "red",
    Role.NONE: "dim",
}


def _shape(s: Any) -> str:
    return "-" if s is None else fmt_shape(s)


def _mask(m: Any) -> str:
    if m is None:
        return "-"
    return _shape(m.shape) if m.kept is None else f"{_shape(m.shape)} {m.kept:.0%}"


def call_rows(report: Any) -> list[tuple[str, ...]]:
    """One row per call: path, class, input mask, mask received, output shape, output
    mask, role (plain strings, shared by the text and HTML reports)."""
    from .graph import time_steps

    rows = []
    by_id = report.trace.by_id()
    for c in report.trace.calls:
        seq = c.inputs[0] if c.inputs else None
        if c.received_mask is None:
            received = "n/a" if not c.call_accepts_mask else "None"
        else:
            got = [m for m in c.received_mask if m is not None]
            received = _mask(got[0]) + (f" +{len(got) - 1}" if len(got) > 1 else "")
        # A tree: each call under the container it ran in (listed just above it).
        path = "  " * c.depth + _name(c.id.rsplit("/", 1)[-1])
        per_step = time_steps(c, by_id)
        if per_step:
            path += f" ({per_step} steps)"
        elif c.steps > 1:
            path += f" (x{c.steps} calls)"
        if not c.observed:
            path += " *"
        in_mask = _mask(seq.mask) if seq else "-"
        if seq is not None and seq.mask_changed:
            was = _mask(seq.produced_mask) if seq.produced_mask else "-"
            in_mask += f" (was {was})"
        rows.append(
            (
                path,
                _name(f"ops.{c.class_name}" if c.kind == CallKind.OP else c.class_name),
                in_mask,
                received,
                _shape(c.outputs[0].shape) if c.outputs else ("failed" if c.error else "-"),
                _mask(c.outputs[0].mask) if c.outputs else "-",
                str(c.role),
            )
        )
    return rows


def render_text(report: Any, *, width: int = 120, color: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        emoji=False,
        markup=False,
        force_jupyter=False,
    )
    t = report.trace
    console.print(
        Text(
            f"maskviz: model '{_name(t.model_name)}' ({_name(t.model_class)}), "
            f"keras {t.keras_version} "
            f"({t.backend}), {len(t.calls)} calls",
            style="bold",
        )
    )
    probe = report.probe
    if probe is not None:
        desc = ", ".join(
            f"{_name(i.name)} {_shape(i.shape)} {i.dtype} [{i.kind}]" for i in probe.inputs
        )
        console.print(f"inputs: {desc}" + (" (from --data)" if probe.from_data else ""))
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    rows = call_rows(report)
    longest = max((len(r[0]) for r in rows), default=4)
    table.add_column("call", overflow="fold", min_width=min(longest, 36))
    table.add_column("class", no_wrap=True, overflow="ellipsis", max_width=26)
    for col in ("input mask", "received", "output", "output mask", "role"):
        table.add_column(col, no_wrap=col != "received", overflow="fold")
    for row in rows:
        style = ROLE_STYLE.get(row[-1], "") if color else ""
        table.add_row(*row[:-1], Text(row[-1], style=style))
    console.print(table)
    if any(not c.observed for c in t.calls):
        console.print("* from the symbolic graph only (the forward pass stopped before it)")
    for o in t.outputs:
        console.print(
            f"output '{_name(o.name)}' <- {_name(o.source)}: {_shape(o.shape)} mask {_mask(o.mask)}"
        )
    keras2 = getattr(report, "keras2", None)
    if keras2 is not None:  # a file saved by tf.keras 2
        from .legacy import section_lines

        for line in section_lines(*keras2):
            console.print(line)
    oracle = report.oracle
    if oracle is not None and hasattr(oracle, "summary_lines"):
        for line in oracle.summary_lines():
            console.print(_clip(line))
    console.print()
    if not report.findings:
        console.print(Text("No findings.", style="bold green" if color else ""))
    for f in report.findings:
        head = Text()
        head.append(f"{f.rule} ", style="bold")
        head.append(f"[{f.severity.value}]", style=SEVERITY_STYLE.get(f.severity.value, ""))
        head.append(f" {f.name} at {_name(f.path or f.layer or '<model>', 200)}")
        console.print(head)
        console.print(f"  {_clip(f.message)}")
        if f.suggestion:
            console.print(f"  suggestion: {_clip(f.suggestion)}")
        if f.fix is not None:
            console.print(f"  fix: {f.fix.applicability.value}: {_clip(f.fix.description)}")
    counts = {}
    for f in report.findings:
        counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
    if report.findings:
        console.print(
            "\n"
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("error", "warning", "info"))
            + ". Run `maskviz explain ID` for a rule's documentation."
        )
    return buf.getvalue().rstrip() + "\n"


def render_sarif(report: Any) -> str:
    """SARIF 2.1.0, for code-scanning UIs in CI."""
    from . import __version__
    from .rules import all_rules

    rules = all_rules()
    level = {"error": "error", "warning": "warning", "info": "note"}
    doc = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "maskviz",
                        "version": __version__,
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.name,
                                "shortDescription": {"text": r.summary},
                                "fullDescription": {"text": r.doc},
                                "defaultConfiguration": {"level": level[r.severity.value]},
                            }
                            for r in rules
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": f.rule,
                        "level": level[f.severity.value],
                        "message": {
                            "text": f.message + (f" {f.suggestion}" if f.suggestion else "")
                        },
                        "locations": [
                            {
                                "logicalLocations": [
                                    {
                                        "name": f.layer,
                                        "fullyQualifiedName": f"{report.trace.model_name}/{f.path}",
                                        "kind": "object",
                                    }
                                ]
                            }
                        ],
                    }
                    for f in report.findings
                ],
            }
        ],
    }
    return json.dumps(doc, indent=2)


@dataclass(frozen=True)
class Report:
    """What maskviz found in one model.

    Attributes:
        trace: the instrumented forward pass (`maskviz.trace.Trace`).
        findings: the rules' findings, in trace order.
        probe: the inputs the model ran on.
        oracle: the leak oracle's result, or `None` when it was off.
        model: the model inspected (kept for `patch` and the tf.keras 2 comparison).
        seed: the seed of the probe and the oracle's noise.
        mask_inputs: the explicit mask inputs given, `{mask input: data input}`.
        loss: the loss the invariances used, as given (`None`: the compiled one).

    `repr(report)` is the text report; in a notebook the report displays as the
    annotated graph plus a findings table.
    """

    trace: Trace
    findings: tuple[Finding, ...]
    probe: Probe | None = field(default=None, repr=False, compare=False)
    oracle: OracleResult | None = field(default=None, repr=False, compare=False)
    model: keras.Model | None = field(default=None, repr=False, compare=False)
    seed: int = field(default=0, repr=False, compare=False)
    mask_inputs: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    loss: LossSpec = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------ queries
    @property
    def rule_ids(self) -> list[str]:
        return sorted({f.rule for f in self.findings})

    def at_or_above(self, severity: Severity | str) -> list[Finding]:
        sev = Severity(severity)
        return [f for f in self.findings if f.severity.rank >= sev.rank]

    # ------------------------------------------------------------ outputs
    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        t = self.trace
        out = {
            "maskviz": __version__,
            "schema": JSON_SCHEMA_VERSION,
            "keras": t.keras_version,
            "backend": t.backend,
            "model": t.model_name,
        }
        body = t.to_dict()
        body.pop("model", None)
        out.update(body)
        out["findings"] = [f.to_dict() for f in self.findings]
        if self.oracle is not None and hasattr(self.oracle, "to_dict"):
            out["oracle"] = self.oracle.to_dict()
        keras2 = self.keras2
        if keras2 is not None:  # the file was saved by tf.keras 2
            out["saved_by"] = keras2[0].to_dict()
            out["keras2_comparison"] = keras2[1].to_dict()
        return out

    @property
    def keras2(self) -> tuple[Keras2Origin, Keras2Comparison] | None:
        """`(Keras2Origin, Keras2Comparison)` when the model came from a tf.keras 2 file
        (see `maskviz.legacy`), else `None`."""
        from .legacy import keras2_section

        return keras2_section(self)

    def to_json(self, *, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=_jsonable)

    def to_text(self, *, width: int = 120, color: bool = False) -> str:
        return render_text(self, width=width, color=color)

    def to_sarif(self) -> str:
        return render_sarif(self)

    @property
    def graph(self) -> nx.DiGraph:
        """The call graph as a networkx DiGraph (data only, no styling)."""
        from .graph import build_graph

        return build_graph(self.trace, self.findings)

    def to_dot(self, *, depth: int | None = None) -> str:
        from .render import to_dot

        return to_dot(self.graph, depth=depth)

    def render(self, path: str, *, depth: int | None = None) -> str:
        """Draws the annotated graph to `path` (.svg, .png, .pdf or .dot)."""
        from .render import render_file

        return render_file(self.graph, path, depth=depth)

    def patch(self, **kwargs: Any) -> Any:
        """Searches verified repairs for the findings; see `maskviz.fixes.patch_model`."""
        from .fixes import patch_model

        return patch_model(self, **kwargs)

    def __repr__(self) -> str:
        return self.to_text(width=120, color=False)

    def _repr_html_(self) -> str:
        from .notebook import report_html

        return report_html(self)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    return str(x)
