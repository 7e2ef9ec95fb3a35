"""One graph of calls over a trace: who feeds whom, with containment written once.

`CallGraph(trace)` is a networkx `DiGraph` whose nodes are call ids (plus one
`input:NAME` node per model input) and whose edges say "the output of u reaches
v":

- a *data* edge `u -> v` when a tensor `u` produced is an input of `v`;
- a *containment* edge `child -> container`: what happens inside a nested model or
  a wrapper reaches what the container returns. The edge carries
  `remasks=True` when the container's output carries a mask again (it restored
  the mask itself), which mask queries may choose to stop at
  (`descendants(..., through_remask=False)`);
- an *unseen* edge `sibling -> v` when `v` has an input made by an op maskviz does
  not see (a residual add, a slice): it may depend on anything computed before it
  in the same container.

Queries: `descendants`, `ancestors`, `path`, `topological_order`, `first_of`
(the members of a set none of whose ancestors are in the set).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

DATA = "data"
CONTAINS = "contains"
UNSEEN = "unseen"


class CallGraph:
    """The trace's calls as a directed graph (data only; see the module docstring)."""

    def __init__(self, trace: Any) -> None:
        g = nx.DiGraph()
        calls = list(trace.calls)
        self.order = {c.id: i for i, c in enumerate(calls)}
        by_id = {c.id: c for c in calls}
        for inp in getattr(trace, "inputs", ()) or ():
            g.add_node(f"input:{inp.name}", order=-1)
        for c in calls:
            g.add_node(c.id, order=self.order[c.id])
        children: dict[str | None, list[str]] = {}
        for c in calls:
            children.setdefault(c.parent if c.parent in by_id else None, []).append(c.id)
        for c in calls:
            unseen = False
            for t in c.inputs:
                if t.source is None:
                    unseen = True
                elif t.source != c.id and t.source in g:
                    _edge(g, t.source, c.id, DATA)
            if unseen:
                key = c.parent if c.parent in by_id else None
                for s in children.get(key, []):
                    if self.order[s] < self.order[c.id]:
                        _edge(g, s, c.id, UNSEEN)
            if c.parent in by_id:
                _edge(g, c.id, c.parent, CONTAINS, remasks=bool(by_id[c.parent].output_masked))
        self.graph = g
        self._by_id = by_id
        self.outputs = [
            (o.name, o.source, o.source_index)
            for o in getattr(trace, "outputs", ())
            if o.source is not None
        ]

    # ------------------------------------------------------------------ queries
    def __contains__(self, node: str) -> bool:
        return node in self.graph

    def _view(self, through_remask: bool) -> Any:
        if through_remask:
            return self.graph

        def keep(u: str, v: str) -> bool:
            return not self.graph.edges[u, v].get("remasks", False)

        return nx.subgraph_view(self.graph, filter_edge=keep)

    def descendants(self, node: str, *, through_remask: bool = True) -> set[str]:
        """Every node `node`'s outputs reach."""
        if node not in self.graph:
            return set()
        return set(nx.descendants(self._view(through_remask), node))

    def ancestors(self, node: str) -> set[str]:
        """Every node that reaches `node`."""
        if node not in self.graph:
            return set()
        return set(nx.ancestors(self.graph, node))

    def path(self, source: str, target: str, *, within: Iterable[str] | None = None):
        """The shortest path of calls from `source` to `target` (optionally through
        `within` only), or `None`."""
        g = self.graph if within is None else self.graph.subgraph(set(within))
        try:
            return tuple(nx.shortest_path(g, source, target))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None

    def topological_order(self) -> list[str]:
        """Calls (not inputs) in an order where every call comes after what feeds it;
        ties in trace order."""
        try:
            order = list(
                nx.lexicographical_topological_sort(self.graph, key=lambda n: self.order.get(n, -1))
            )
        except nx.NetworkXUnfeasible:  # a cycle (should not happen): trace order
            order = sorted(self.graph, key=lambda n: self.order.get(n, -1))
        return [n for n in order if n in self._by_id]

    def first_of(self, members: Iterable[str]) -> list[str]:
        """The members none of whose ancestors are members, in trace order."""
        members = set(members)
        sub = self.graph.subgraph(members)
        out = [
            m
            for m in members
            if m in self.graph
            and not (nx.ancestors(self.graph, m) & members)
            and sub.in_degree(m) == 0
        ]
        return sorted(out, key=lambda n: self.order.get(n, -1))


def _edge(g: Any, u: str, v: str, kind: str, **attrs: Any) -> None:
    if g.has_edge(u, v):
        return
    g.add_edge(u, v, kind=kind, **attrs)
