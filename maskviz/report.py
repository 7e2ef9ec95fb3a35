"""Text (rich) and SARIF renderings of a Report. JSON lives on `Report.to_json`."""

from __future__ import annotations

import io
import json
from typing import Any

from .errors import cut, escape
from .rules.queries import fmt_shape

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
    "generator": "green",
    "propagator": "",
    "modifier": "magenta",
    "consumer": "blue",
    "destroyer": "red",
    "none": "dim",
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
                _name(f"ops.{c.class_name}" if c.kind == "op" else c.class_name),
                in_mask,
                received,
                _shape(c.outputs[0].shape) if c.outputs else ("failed" if c.error else "-"),
                _mask(c.outputs[0].mask) if c.outputs else "-",
                c.role,
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
