"""Notebook display: `maskviz.show(model)` and the report's HTML.

IPython is optional: without it, `show` returns the report without displaying it,
and `import maskviz` never needs it.
"""

from __future__ import annotations

import html
from typing import Any

try:
    import IPython
    import IPython.display
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    IPython = None

MAX_DRAWN_CALLS = 80
"""Above this many calls, the notebook view collapses the graph by depth."""


def show(model: Any, **inspect_kwargs: Any) -> Any:
    """Inspects `model` and displays the report (graph, findings, calls) in a notebook.

    Args:
        model: a Keras model.
        **inspect_kwargs: passed to `maskviz.inspect` (`data=`, `seed=`, ...).

    Returns:
        The `maskviz.Report`. Assign it (`report = maskviz.show(model)`) so a
        notebook does not display it a second time.
    """
    from .api import inspect

    report = inspect(model, **inspect_kwargs)
    if IPython is not None:
        IPython.display.display(report)
    return report


_STYLE = (
    "<style>"
    ".maskviz table{border-collapse:collapse;font-size:12px;margin:4px 0 10px 0}"
    ".maskviz th,.maskviz td{border:1px solid #cfd8dc;padding:2px 6px;text-align:left;"
    "vertical-align:top}"
    ".maskviz th{background:#eceff1}"
    ".maskviz .sev-error{color:#c62828;font-weight:bold}"
    ".maskviz .sev-warning{color:#ef6c00;font-weight:bold}"
    ".maskviz .sev-info{color:#1565c0}"
    ".maskviz .graph{overflow:auto;max-height:900px;border:1px solid #eceff1}"
    "</style>"
)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], classes=None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            cls = classes(i, j) if classes else None
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def report_html(report: Any) -> str:
    """The report as HTML: the graph (inline SVG), the findings, and the calls table."""
    from .render import auto_depth, to_svg
    from .report import call_rows

    t = report.trace
    graph = report.graph
    depth = auto_depth(graph, max_nodes=MAX_DRAWN_CALLS)
    parts = ['<div class="maskviz">', _STYLE]
    summary = (
        f"maskviz: model '{t.model_name}' ({t.model_class}), keras {t.keras_version} "
        f"({t.backend}), {len(t.calls)} calls, {len(report.findings)} finding(s)"
    )
    parts.append(f"<p><b>{html.escape(summary)}</b></p>")
    if depth is not None:
        parts.append(
            f"<p>Drawn to depth {depth} (deeper calls are collapsed into their box); "
            "<code>report.render('model.svg', depth=None)</code> draws everything.</p>"
        )
    parts.append(f'<div class="graph">{to_svg(graph, depth=depth)}</div>')
    if report.findings:
        rows = [
            (
                f.rule,
                f.severity.value,
                f.path or f.layer or "<model>",
                f.message,
                f.suggestion,
            )
            for f in report.findings
        ]
        sev = [f.severity.value for f in report.findings]
        parts.append("<h4>Findings</h4>")
        parts.append(
            _table(
                ("rule", "severity", "layer", "message", "suggestion"),
                rows,
                classes=lambda i, j: f"sev-{sev[i]}" if j in (0, 1) else None,
            )
        )
        parts.append("<p>Run <code>maskviz explain ID</code> for a rule's documentation.</p>")
    else:
        parts.append("<p><b>No findings.</b></p>")
    parts.append("<details><summary>Calls</summary>")
    parts.append(
        _table(
            (
                "call",
                "class",
                "input mask",
                "mask received",
                "output",
                "output mask",
                "role",
            ),
            call_rows(report),
        )
    )
    parts.append("</details></div>")
    return "".join(parts)
