"""The styled `pygraphviz.AGraph`: clusters for nested calls, nodes, edges, legend, title."""

from __future__ import annotations

from typing import Any

from maskviz.errors import MaskvizError, cut
from maskviz.render.labels import (
    _e,
    _edge_attrs,
    _legend,
    _node_attrs,
    _out_attrs,
    _safe_ids,
)
from maskviz.render.style import FONT, NAME_LIMIT
from maskviz.render.view import _Edges, _edges, _View
from maskviz.trace.records import CallKind


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
    has_ops = any(
        view.data(n).get("call_kind") == CallKind.OP for n in view.calls if view.visible(n)
    )
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
