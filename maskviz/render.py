"""The call graph, drawn: DOT, SVG, PNG and PDF through pygraphviz's bundled Graphviz.

This module only styles what `maskviz.graph.build_graph` built:

- a call is a box showing its layer name, class, output shape and mask; its fill
  colour (and the word under its name) is its mask role;
- an edge's colour is its mask state: carried, none, wrong rank, not delivered;
- a finding is a red badge with its rule id on its call's box;
- a nested model (or wrapper, or RNN with its cell) is a cluster: its own call is
  the box at the top, where its inputs come in, and `NAME out` at the bottom, where
  its outputs leave; `depth=N` collapses everything below depth N into one box
  that shows its mask in and out and the findings inside;
- inputs a layer got from code maskviz does not see (a `keras.ops` call) are drawn
  as a dotted edge from the previous call, so the flow still reads in order.

The DOT text is deterministic: nodes and edges come in trace order, ids are layer
paths, and no layout positions are written (Graphviz lays the graph out when it
draws a file).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from typing import Any

from .errors import MaskvizError, cut, escape
from .graph import MASK_STATES, worst_state

FORMATS = (".svg", ".png", ".pdf", ".dot")

FONT = "Helvetica,Arial,sans-serif"

ROLE_FILL = {
    "generator": "#c8e6c9",
    "propagator": "#ffffff",
    "modifier": "#e1bee7",
    "consumer": "#bbdefb",
    "destroyer": "#ffcdd2",
    "none": "#eeeeee",
}
ROLE_HELP = {
    "generator": "makes a mask",
    "propagator": "passes it on",
    "modifier": "changes it",
    "consumer": "uses it",
    "destroyer": "drops it",
    "none": "no mask in or out",
}
EDGE_STYLE = {
    "carried": {"color": "#1565c0", "penwidth": "2.2", "style": "solid"},
    "none": {"color": "#9e9e9e", "penwidth": "1", "style": "solid"},
    "wrong-rank": {"color": "#ef6c00", "penwidth": "2.6", "style": "bold"},
    "not-delivered": {"color": "#c62828", "penwidth": "2.6", "style": "dashed"},
}
EDGE_HELP = {
    "carried": "mask carried",
    "none": "no mask",
    "wrong-rank": "mask of the wrong rank/shape",
    "not-delivered": "mask not delivered to call",
}
SEVERITY_FILL = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}


# --------------------------------------------------------------------------- public


def to_dot(graph: Any, *, depth: int | None = None) -> str:
    """The styled graph as DOT text (deterministic, without layout positions).

    Args:
        graph: a `networkx.DiGraph` from `maskviz.graph.build_graph`.
        depth: draw calls down to this nesting depth; deeper calls are collapsed
            into their enclosing call's box. `None` draws everything.
    """
    return to_agraph(graph, depth=depth).string()


def render_file(graph: Any, path: str | os.PathLike, *, depth: int | None = None) -> str:
    """Draws `graph` to `path`, in the format its suffix names.

    Args:
        graph: a `networkx.DiGraph` from `maskviz.graph.build_graph`.
        path: where to write; ends in `.svg`, `.png`, `.pdf` or `.dot`.
        depth: as for `to_dot`.

    Returns:
        The written path, as a string.

    Raises:
        MaskvizError: the suffix is not one of the supported formats.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise MaskvizError(
            f"Cannot write graph '{path}': unknown format. "
            "Expected a path ending in .svg, .png, .pdf or .dot."
        )
    agraph = to_agraph(graph, depth=depth)
    if suffix == ".dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(agraph.string())
    else:
        agraph.draw(path, format=suffix[1:], prog="dot")
    return path


def to_svg(graph: Any, *, depth: int | None = None) -> str:
    """The drawn graph as an SVG document (a string), for inline HTML."""
    data = to_agraph(graph, depth=depth).draw(format="svg", prog="dot")
    text = data.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def auto_depth(graph: Any, *, max_nodes: int = 250) -> int | None:
    """The largest depth at which at most `max_nodes` calls are drawn (`None`: all fit)."""
    depths = [d["depth"] for _, d in graph.nodes(data=True) if d["kind"] == "call"]
    if len(depths) <= max_nodes:
        return None
    best = 0
    for level in range(max(depths) + 1):
        if sum(1 for x in depths if x <= level) <= max_nodes:
            best = level
    return best


# --------------------------------------------------------------------------- layout model


def _loop_body(d: dict[str, Any]) -> bool:
    """A per-step call (an RNN's cell) with nothing to flag."""
    repeated = d["steps"] > 1 or bool(d.get("time_steps"))
    return repeated and d["via"] == "__call__" and not d["findings"] and not d["error"]


class _View:
    """Which calls are drawn, which are collapsed, and where edges attach."""

    def __init__(self, graph: Any, depth: int | None):
        self.g = graph
        self.depth = depth
        self.calls = sorted(
            (n for n, d in graph.nodes(data=True) if d["kind"] == "call"),
            key=lambda n: graph.nodes[n]["order"],
        )
        self.children: dict[str, list[str]] = {}
        for n in self.calls:
            parent = graph.nodes[n]["parent"]
            if parent is not None:
                self.children.setdefault(parent, []).append(n)
        # An RNN and its cell (one call per step) read best as one box; the cell
        # gets its own box only when something about it is worth showing.
        self.inline = {
            c
            for c, kids in self.children.items()
            if all(_loop_body(graph.nodes[k]) and k not in self.children for k in kids)
        }
        paths: dict[str, int] = {}
        for n in self.calls:
            paths[graph.nodes[n]["path"]] = paths.get(graph.nodes[n]["path"], 0) + 1
        self.shared = {p for p, k in paths.items() if k > 1}
        self._anc: dict[str, list[str]] = {}
        self._vis: dict[str, bool] = {}

    def data(self, n: str) -> dict[str, Any]:
        return self.g.nodes[n]

    def visible(self, n: str) -> bool:
        hit = self._vis.get(n)
        if hit is None:
            d = self.data(n)
            hit = d["kind"] != "call" or (
                (self.depth is None or d["depth"] <= self.depth)
                and not any(a in self.inline for a in self.ancestors(n))
            )
            self._vis[n] = hit
        return hit

    def expanded(self, n: str) -> bool:
        d = self.data(n)
        return (
            d["kind"] == "call"
            and d["container"]
            and n not in self.inline
            and self.visible(n)
            and (self.depth is None or d["depth"] < self.depth)
        )

    def collapsed(self, n: str) -> bool:
        d = self.data(n)
        return (
            d["kind"] == "call"
            and d["container"]
            and n not in self.inline
            and self.visible(n)
            and not self.expanded(n)
        )

    def ancestors(self, n: str) -> list[str]:
        """Enclosing calls, innermost first."""
        hit = self._anc.get(n)
        if hit is None:
            hit = []
            p = self.data(n).get("parent")
            while p is not None and p in self.g:
                hit.append(p)
                p = self.data(p).get("parent")
            self._anc[n] = hit
        return hit

    def descendants(self, n: str) -> list[str]:
        out = []
        for k in self.children.get(n, []):
            out.append(k)
            out.extend(self.descendants(k))
        return out

    def rep(self, n: str) -> str:
        """The drawn node that stands for `n` (itself, or its collapsed ancestor)."""
        if self.visible(n):
            return n
        for a in self.ancestors(n):
            if self.visible(a):
                return a
        return n

    def out_node(self, n: str) -> str:
        return f"{n}:out" if self.expanded(n) else n


class _Edges:
    """Drawn edges keyed by (tail, head), merged in insertion order."""

    def __init__(self):
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def add(
        self,
        u: str,
        v: str,
        kind: str,
        states: Iterable[str],
        args: Iterable[str] = (),
        primary: bool = False,
    ):
        key = (u, v)
        e = self.items.get(key)
        if e is None:
            e = self.items[key] = {"kind": kind, "states": [], "args": [], "primary": False}
        elif kind == "tensor":
            e["kind"] = "tensor"
        e["primary"] = e["primary"] or primary
        e["states"].extend(states)
        for a in args:
            if a not in e["args"]:
                e["args"].append(a)

    def has_in(self, v: str) -> bool:
        return any(h == v for _, h in self.items)

    def tails_from(self, u: str) -> list[str]:
        return [h for t, h in self.items if t == u]


def _edges(view: _View) -> _Edges:
    g = view.g
    edges = _Edges()
    boundary: list[tuple[str, str, list[str]]] = []
    for u, v, d in g.edges(data=True):
        ru, rv = view.rep(u), view.rep(v)
        if ru == rv:
            continue
        states = [t["mask_state"] for t in d["tensors"]]
        args = [t["arg"] for t in d["tensors"]]
        primary = any(t["position"] == 0 for t in d["tensors"])
        if rv != v:  # into a collapsed box: what happens inside shows as badges
            states = ["none" if s == "none" else "carried" for s in states]
            args = []
            primary = False
        anc_v = view.ancestors(rv)
        anc_u = view.ancestors(ru)
        if ru in anc_v:  # a container feeding its own inner call
            edges.add(ru, rv, "enter", states, args)
            continue
        if rv in anc_u:  # an inner call feeding its container's output
            edges.add(view.out_node(ru), view.out_node(rv), "sink", states)
            continue
        exiting = [a for a in anc_u if a not in anc_v]
        entering = [a for a in anc_v if a not in anc_u]
        tail = view.out_node(exiting[-1] if exiting else ru)
        if entering:
            # The tensor enters nested clusters: draw it from the innermost
            # container's box; the outer edges are drawn for the containers.
            edges.add(entering[0], rv, "enter", states, args, primary)
            outer_states = ["carried" if s != "none" else "none" for s in states]
            boundary.append((tail, entering[-1], outer_states))
            for inner, outer in zip(entering, entering[1:]):
                boundary.append((outer, inner, outer_states))
        else:
            edges.add(tail, rv, "tensor", states, args, primary)
            if any(t.get("mask_changed") for t in d["tensors"]):
                edges.items[(tail, rv)]["changed"] = True
    for u, v, states in boundary:
        if (u, v) not in edges.items:
            edges.add(u, v, "enter", states)

    # Inputs from unseen code: a dotted edge from the previous drawn sibling.
    siblings: dict[str | None, list[str]] = {}
    for n in view.calls:
        if view.visible(n):
            siblings.setdefault(view.data(n)["parent"], []).append(n)
    for parent, kids in siblings.items():
        for i, n in enumerate(kids):
            if edges.has_in(n):
                continue
            states = [t["mask_state"] for t in view.data(n)["unsourced"]] or ["none"]
            if i > 0:
                edges.add(view.out_node(kids[i - 1]), n, "order", states)
            elif parent is not None:
                edges.add(parent, n, "order", states)

    # Inside each drawn cluster: its box leads in, its `out` box collects the
    # inner calls whose outputs go nowhere else inside.
    expanded = [n for n in view.calls if view.expanded(n)]
    for c in sorted(expanded, key=lambda n: -view.data(n)["depth"]):
        kids = siblings.get(c, [])
        if kids and not edges.tails_from(c):
            edges.add(c, kids[0], "order", ["none"])
        inside = set(kids) | {f"{k}:out" for k in kids} | {f"{c}:out"}
        for k in kids:
            if not any(h in inside for h in edges.tails_from(view.out_node(k))):
                mask = view.data(k)["output_mask"]
                edges.add(view.out_node(k), f"{c}:out", "sink", ["carried" if mask else "none"])
    return edges


# --------------------------------------------------------------------------- labels


def _fmt_shape(s: Any) -> str:
    if s is None:
        return "-"
    dims = ", ".join("None" if d is None else str(d) for d in s)
    return f"({dims}{',' if len(s) == 1 else ''})"


def _fmt_mask(shape: Any, kept: float | None = None) -> str:
    if shape is None:
        return "none"
    return _fmt_shape(shape) + ("" if kept is None else f" {kept:.0%} kept")


NAME_LIMIT = 80  # characters of a name, class or message drawn in a label


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
    cls = f"ops.{d['class_name']}" if d.get("call_kind") == "op" else d["class_name"]
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
    fill = ROLE_FILL.get(d["role"], ROLE_FILL["none"])
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
    if d.get("call_kind") == "op":
        # A `keras.ops` call: square corners, dashed outline.
        attrs |= {"style": "filled,dashed"}
    if d["role"] == "destroyer":
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
        "fillcolor": ROLE_FILL.get(d["role"], ROLE_FILL["none"]),
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
    if state == "not-delivered":
        attrs["arrowhead"] = "tee"
    if e["primary"] or kind in ("order", "sink"):
        # Keep the main data path straight; side inputs (states, masks) bend.
        attrs["weight"] = "4"
    label = []
    args = [a for a in e["args"] if a and a != "inputs"]
    if args and (n_in > 1 or state in ("not-delivered", "wrong-rank")):
        label.append(", ".join(args) if len(args) <= 2 else f"{args[0]} +{len(args) - 1}")
    if state in ("not-delivered", "wrong-rank"):
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
        glyph = "- - &#9656;" if state == "not-delivered" else "&#9472;&#9472;&#9656;"
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


# --------------------------------------------------------------------------- agraph


def to_agraph(graph: Any, *, depth: int | None = None) -> Any:
    """The styled `pygraphviz.AGraph` (not laid out)."""
    import pygraphviz

    if depth is not None and depth < 0:
        raise MaskvizError(f"`depth` must be >= 0 or None. Received: depth={depth}")
    graph = _safe_ids(graph)
    view = _View(graph, depth)
    name = cut(str(graph.graph.get("name") or "model"), NAME_LIMIT)
    a = pygraphviz.AGraph(directed=True, strict=False, name=name)
    a.graph_attr.update(
        rankdir="TB",
        ordering="out",
        newrank="true",
        nodesep="0.25",
        ranksep="0.35",
        fontname=FONT,
        fontsize="10",
        labeljust="l",
        label=_e(_title(graph, depth), 400),
        labelloc="t",
    )
    a.node_attr.update(fontname=FONT, fontsize="11", margin="0.08,0.04")
    a.edge_attr.update(fontname=FONT, arrowsize="0.8")

    # Clusters, outermost first (trace order puts a container before its calls).
    clusters: dict[str | None, Any] = {None: a}
    for n in view.calls:
        if view.expanded(n):
            parent = view.data(n)["parent"]
            host = clusters.get(parent, a)
            d = view.data(n)
            sg = host.add_subgraph(name=f"cluster_{n}")
            sg.graph_attr.update(
                label=f"{cut(d['path'], NAME_LIMIT)} ({cut(d['class_name'], NAME_LIMIT)})",
                style="rounded,filled",
                fillcolor="#f7f9fa" if d["depth"] % 2 == 0 else "#eceff1",
                color="#90a4ae",
                fontcolor="#546e7a",
                fontsize="9",
            )
            clusters[n] = sg

    inputs = [n for n, d in graph.nodes(data=True) if d["kind"] == "input"]
    outputs = [n for n, d in graph.nodes(data=True) if d["kind"] == "output"]
    if inputs:
        src = a.add_subgraph(name="inputs", rank="source")
        for n in inputs:
            src.add_node(n, **_node_attrs(view, n))
    for n in view.calls:
        if not view.visible(n):
            continue
        host = clusters.get(n) if view.expanded(n) else clusters.get(view.data(n)["parent"], a)
        host.add_node(n, **_node_attrs(view, n))
        if view.expanded(n):
            host.add_node(f"{n}:out", **_out_attrs(view, n))
    for n in outputs:
        a.add_node(n, **_node_attrs(view, n))
    has_ops = any(view.data(n).get("call_kind") == "op" for n in view.calls if view.visible(n))
    a.add_node("legend", shape="plaintext", style="", label=_legend(has_ops), fontsize="9")
    # Below the outputs: invisible edges place it (a lone node would go to the top).
    for n in outputs or [view.out_node(c) for c in view.calls[-1:] if view.visible(c)]:
        a.add_edge(n, "legend", style="invis")

    edges = _edges(view)
    _proxy_fanout(a, view, edges)
    n_in: dict[str, int] = {}
    for (_u, v), e in edges.items.items():
        if e["kind"] != "order":
            n_in[v] = n_in.get(v, 0) + 1
    for (u, v), e in edges.items.items():
        a.add_edge(u, v, **_edge_attrs(view, v, e, n_in.get(v, 0)))
    return a


FANOUT_PROXY = 3


def _proxy_fanout(a: Any, view: _View, edges: _Edges) -> None:
    """A model input feeding many calls (a padding mask into every encoder layer)
    is drawn once more beside each later consumer, as a small dashed copy, instead
    of as long edges across the whole graph."""
    by_tail: dict[str, list[str]] = {}
    for u, v in edges.items:
        if view.g.has_node(u) and view.data(u)["kind"] == "input":
            by_tail.setdefault(u, []).append(v)
    renamed: dict[tuple[str, str], tuple[str, str]] = {}
    for u, heads in by_tail.items():
        if len(heads) <= FANOUT_PROXY:
            continue
        for v in heads[1:]:
            proxy = f"{u}@{v}"
            a.add_node(
                proxy,
                shape="box",
                style="rounded,dashed,filled",
                fillcolor="#fffde7",
                color="#9e9e9e",
                fontsize="9",
                label=cut(view.data(u)["name"], NAME_LIMIT),
            )
            renamed[(u, v)] = (proxy, v)
    if renamed:
        edges.items = {renamed.get(k, k): e for k, e in edges.items.items()}


def _title(graph: Any, depth: int | None) -> str:
    gd = graph.graph
    n_calls = sum(1 for _, d in graph.nodes(data=True) if d["kind"] == "call")
    title = f"{gd.get('name')} ({gd.get('model_class')}): {n_calls} calls"
    if depth is not None:
        title += f", drawn to depth {depth}"
    loose = gd.get("findings") or []
    if loose:
        title += "; model findings: " + ", ".join(sorted({f["rule"] for f in loose}))
    return title
