"""The layout model: which calls are drawn, which are collapsed into their container's box,
and the edges between the drawn nodes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maskviz.graph import MaskState
from maskviz.trace.records import Via


def _loop_body(d: dict[str, Any]) -> bool:
    """A per-step call (an RNN's cell) with nothing to flag."""
    repeated = d["steps"] > 1 or bool(d.get("time_steps"))
    return repeated and d["via"] == Via.DUNDER_CALL and not d["findings"] and not d["error"]


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
            states = [MaskState.NONE if s == MaskState.NONE else MaskState.CARRIED for s in states]
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
            outer_states = [
                MaskState.CARRIED if s != MaskState.NONE else MaskState.NONE for s in states
            ]
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
                state = MaskState.CARRIED if mask else MaskState.NONE
                edges.add(view.out_node(k), f"{c}:out", "sink", [state])
    return edges
