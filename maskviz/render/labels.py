"""Node and edge attributes: the HTML-like labels of calls, inputs and outputs, badges,
edge styles and the legend."""

from __future__ import annotations

import html
from typing import Any

from maskviz.errors import cut, escape
from maskviz.graph import MASK_STATES, MaskState, worst_state
from maskviz.render.style import (
    EDGE_HELP,
    EDGE_STYLE,
    NAME_LIMIT,
    ROLE_FILL,
    ROLE_HELP,
    SEVERITY_FILL,
)
from maskviz.render.view import _View
from maskviz.trace.records import CallKind, Role


def _fmt_shape(s: Any) -> str:
    if s is None:
        return "-"
    dims = ", ".join("None" if d is None else str(d) for d in s)
    return f"({dims}{',' if len(s) == 1 else ''})"


def _fmt_mask(shape: Any, kept: float | None = None) -> str:
    if shape is None:
        return "none"
    return _fmt_shape(shape) + ("" if kept is None else f" {kept:.0%} kept")


def _e(text: Any, limit: int = NAME_LIMIT) -> str:
    """`text` for an HTML-like label: cut to `limit` characters (a megabyte layer name
    must not reach graphviz), control characters escaped, HTML special characters too."""
    text = html.escape(cut(str(text), limit), quote=True)
    return text or "&#160;"  # graphviz rejects an empty <B></B>


def _safe_ids(graph: Any) -> Any:
    """`graph` with node ids graphviz can take: an id that is empty, very long or holds
    control characters (taken from a layer name) becomes its cut, escaped form plus a checksum,
    so that distinct ids stay distinct and the output stays deterministic."""
    import zlib

    def safe(n: Any) -> Any:
        if not isinstance(n, str) or (n and len(n) <= 200 and escape(n) == n):
            return n
        return f"{cut(n, 120) or '(unnamed)'}~{zlib.crc32(n.encode('utf-8', 'replace')):08x}"

    mapping = {n: safe(n) for n in graph.nodes if safe(n) != n}
    if not mapping:
        return graph
    import networkx as nx

    out = nx.relabel_nodes(graph, mapping, copy=True)
    for _, d in out.nodes(data=True):
        if d.get("parent") in mapping:
            d["parent"] = mapping[d["parent"]]
    out.graph = dict(graph.graph)
    out.graph["name"] = cut(str(graph.graph.get("name") or "model"), NAME_LIMIT)
    return out


def _badges(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return ""
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        key = (f["rule"], f["severity"])
        counts[key] = counts.get(key, 0) + 1
    cells = []
    for (rule, sev), n in sorted(counts.items()):
        text = rule + (f" x{n}" if n > 1 else "")
        cells.append(
            f'<TD BGCOLOR="{SEVERITY_FILL.get(sev, SEVERITY_FILL["error"])}">'
            f'<FONT COLOR="white" POINT-SIZE="9"><B> {_e(text)} </B></FONT></TD>'
        )
    return (
        '<TR><TD ALIGN="LEFT"><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" '
        f'CELLPADDING="1"><TR>{"".join(cells)}</TR></TABLE></TD></TR>'
    )


def _rows_label(rows: list[str], badges: str = "") -> str:
    body = "".join(f'<TR><TD ALIGN="LEFT">{r}</TD></TR>' for r in rows)
    return (
        f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{badges}{body}</TABLE>>'
    )


def _small(text: str, color: str | None = None) -> str:
    font = f'<FONT POINT-SIZE="9"{f" COLOR={chr(34)}{color}{chr(34)}" if color else ""}>'
    return f"{font}{text}</FONT>"


def _repeats(d: dict[str, Any]) -> str:
    """ " · 8 steps" for a per-step call (its container's time axis), " x3 calls" for
    another repeated call, "" otherwise."""
    if d.get("time_steps"):
        return f" &#183; {d['time_steps']} steps"
    return f" x{d['steps']} calls" if d["steps"] > 1 else ""


def _call_rows(
    d: dict[str, Any], *, out_rows: bool = True, mask_row: bool = True, call: int | None = None
) -> list[str]:
    steps = _repeats(d)
    nth = "" if call is None else " " + _small(f"call {call + 1}")
    cls = f"ops.{d['class_name']}" if d.get("call_kind") == CallKind.OP else d["class_name"]
    rows = [
        f"<B>{_e(d['name'])}</B>{nth}",
        _small(f"{_e(cls)}{steps} &#183; {_e(d['role'])}"),
    ]
    if d["call_accepts_mask"] and d["input_mask"] is not None:
        if d["received"]:
            rows.append(_small("mask received"))
        elif d["observed"]:
            rows.append(_small("<B>mask NOT received</B>", "#c62828"))
    if out_rows:
        if d["output_shape"] is not None:
            rows.append(_small(f"out {_e(_fmt_shape(d['output_shape']))}"))
        if mask_row:
            rows.append(_small(f"mask {_e(_fmt_mask(d['output_mask'], d['kept']))}"))
    if d["error"]:
        err = d["error"] if len(d["error"]) <= 60 else d["error"][:57] + "..."
        rows.append(_small(f"failed: {_e(err)}", "#c62828"))
    elif not d["observed"]:
        rows.append(_small("<I>not run (symbolic graph)</I>", "#616161"))
    return rows


def _call_index(n: str) -> int:
    """k for a call id `path#k` (0 for the first call)."""
    head, sep, tail = n.rpartition("#")
    return int(tail) if sep and tail.isdigit() else 0


def _node_attrs(view: _View, n: str) -> dict[str, str]:
    d = view.data(n)
    base = {"shape": "box", "style": "rounded,filled", "color": "#546e7a"}
    if d["kind"] == "input":
        rows = [
            f"<B>{_e(d['name'])}</B>",
            _small(f"input {_e(_fmt_shape(d['shape']))} {_e(d['dtype'])}"),
            _small(_e(d["input_kind"])),
        ]
        return base | {"label": _rows_label(rows), "fillcolor": "#fff9c4"}
    if d["kind"] == "output":
        rows = [
            f"<B>{_e(d['name'])}</B>",
            _small(f"output {_e(_fmt_shape(d['shape']))}"),
            _small(f"mask {_e(_fmt_mask(d['mask'], d['kept']))}"),
        ]
        return base | {"label": _rows_label(rows), "fillcolor": "#fff9c4"}
    fill = ROLE_FILL.get(d["role"], ROLE_FILL[Role.NONE])
    findings = list(d["findings"])
    call = _call_index(n) if d["path"] in view.shared else None
    if view.expanded(n):
        rows = _call_rows(d, out_rows=False, call=call)
        rows.append(_small(f"mask in {_e(_fmt_mask(d['input_mask']))}"))
        return base | {"label": _rows_label(rows, _badges(findings)), "fillcolor": fill}
    rows = _call_rows(d, call=call)
    attrs = base | {"fillcolor": fill}
    if n in view.inline:
        for k in view.children[n]:
            kd = view.data(k)
            rows.insert(2, _small(f"cell {_e(kd['class_name'])}{_repeats(kd)}"))
    if view.collapsed(n):
        inner = view.descendants(n)
        for m in inner:
            findings.extend(view.data(m)["findings"])
        rows = _call_rows(d, mask_row=False, call=call)
        rows.insert(
            2,
            _small(
                f"mask in {_e(_fmt_mask(d['input_mask']))} &#8594; "
                f"out {_e(_fmt_mask(d['output_mask']))}"
            ),
        )
        rows.append(_small(f"{len(inner)} calls inside (collapsed)", "#616161"))
        attrs |= {"shape": "box3d", "style": "filled"}
    if d.get("call_kind") == CallKind.OP:
        # A `keras.ops` call: square corners, dashed outline.
        attrs |= {"style": "filled,dashed"}
    if d["role"] == Role.DESTROYER:
        attrs |= {"color": "#c62828", "penwidth": "2"}
    return attrs | {"label": _rows_label(rows, _badges(findings))}


def _out_attrs(view: _View, n: str) -> dict[str, str]:
    d = view.data(n)
    rows = [
        f"<B>{_e(d['name'])}</B> {_small('out')}",
        _small(f"out {_e(_fmt_shape(d['output_shape']))}"),
        _small(f"mask {_e(_fmt_mask(d['output_mask'], d['kept']))}"),
    ]
    return {
        "shape": "box",
        "style": "rounded,filled",
        "color": "#546e7a",
        "fillcolor": ROLE_FILL.get(d["role"], ROLE_FILL[Role.NONE]),
        "label": _rows_label(rows),
    }


def _edge_attrs(view: _View, v: str, e: dict[str, Any], n_in: int) -> dict[str, str]:
    state = worst_state(e["states"])
    attrs = dict(EDGE_STYLE[state])
    kind = e["kind"]
    if kind == "order":
        attrs |= {"style": "dotted", "penwidth": "1.2", "arrowsize": "0.6"}
    elif kind in ("enter", "sink"):
        attrs |= {"arrowsize": "0.6"}
    if state == MaskState.NOT_DELIVERED:
        attrs["arrowhead"] = "tee"
    if e["primary"] or kind in ("order", "sink"):
        # Keep the main data path straight; side inputs (states, masks) bend.
        attrs["weight"] = "4"
    label = []
    args = [a for a in e["args"] if a and a != "inputs"]
    if args and (n_in > 1 or state in (MaskState.NOT_DELIVERED, MaskState.WRONG_RANK)):
        label.append(", ".join(args) if len(args) <= 2 else f"{args[0]} +{len(args) - 1}")
    if state in (MaskState.NOT_DELIVERED, MaskState.WRONG_RANK):
        label.append(EDGE_HELP[state])
    if e.get("changed"):
        label.append("mask changed since made")
    if label:
        attrs |= {
            "label": "\n".join(label),
            "fontsize": "8",
            "fontcolor": attrs["color"],
        }
    return attrs


def _legend(has_ops: bool = False) -> str:
    rows = ['<TR><TD COLSPAN="2" ALIGN="LEFT"><B>mask role (fill)</B></TD></TR>']
    for role, fill in ROLE_FILL.items():
        rows.append(
            f'<TR><TD BGCOLOR="{fill}" BORDER="1" COLOR="#546e7a">{role}</TD>'
            f'<TD ALIGN="LEFT">{_e(ROLE_HELP[role])}</TD></TR>'
        )
    if has_ops:
        rows.append(
            '<TR><TD BORDER="1" STYLE="dashed" COLOR="#546e7a">ops.Name</TD>'
            '<TD ALIGN="LEFT">a keras.ops call in the graph</TD></TR>'
        )
    rows.append('<TR><TD COLSPAN="2" ALIGN="LEFT"><B>edge (mask state)</B></TD></TR>')
    for state in reversed(MASK_STATES):
        color = EDGE_STYLE[state]["color"]
        glyph = "- - &#9656;" if state == MaskState.NOT_DELIVERED else "&#9472;&#9472;&#9656;"
        rows.append(
            f'<TR><TD><FONT COLOR="{color}"><B>{glyph}</B></FONT></TD>'
            f'<TD ALIGN="LEFT">{_e(EDGE_HELP[state])}</TD></TR>'
        )
    rows.append(
        '<TR><TD><FONT COLOR="#9e9e9e">&#183;&#183;&#183;&#9656;</FONT></TD>'
        '<TD ALIGN="LEFT">via code maskviz does not see</TD></TR>'
    )
    rows.append(
        f'<TR><TD BGCOLOR="{SEVERITY_FILL["error"]}"><FONT COLOR="white"><B>MV1xx</B></FONT></TD>'
        '<TD ALIGN="LEFT">finding (maskviz explain ID)</TD></TR>'
    )
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="2">'
        + "".join(rows)
        + "</TABLE>>"
    )
