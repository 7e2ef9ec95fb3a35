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
(the members of a set none of whose ancestors are in the set); for the rules,
`children` and `container` (containment), `consumers` (data edges), `downstream`
(where a call's outputs go, breadth first), `mask_consumers` (where the mask a
call's output carries goes) and `walk` (a search over any of these steps).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
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
        self._children = children
        self.outputs = [
            (o.name, o.source, o.source_index)
            for o in getattr(trace, "outputs", ())
            if o.source is not None
        ]

    # ------------------------------------------------------------------ queries
    def __contains__(self, node: str) -> bool:
        return node in self.graph

    def record(self, node: str) -> Any:
        """The call record of a call id (`None` for an input node or an unknown id)."""
        return self._by_id.get(node)

    def children(self, node: str) -> list[str]:
        """The calls directly inside `node` (a nested model, a wrapper, an RNN's cell),
        in trace order."""
        return list(self._children.get(node, ())) if node in self._by_id else []

    def container(self, node: str) -> str | None:
        """The call `node` runs inside, or `None` at the top level."""
        for v in self.graph.succ.get(node, {}):
            if self.graph.edges[node, v]["kind"] == CONTAINS:
                return v
        return None

    def consumers(self, node: str) -> list[str]:
        """The calls that take an output of `node` as an input (data edges), in trace
        order."""
        succ = self.graph.succ.get(node, {})
        return [v for v, e in succ.items() if e["kind"] == DATA]

    def _reach(self, node: str, through_remask: bool) -> list[str]:
        """Data edges and containment edges out of `node` (not unseen ones), in the
        order they were added: where `node`'s outputs go next."""
        return [
            v
            for v, e in self.graph.succ.get(node, {}).items()
            if e["kind"] == DATA
            or (e["kind"] == CONTAINS and (through_remask or not e.get("remasks", False)))
        ]

    def downstream(self, node: str, *, through_remask: bool = False) -> list[str]:
        """Every call that depends on `node`'s outputs through data or containment
        (not through unseen ops), breadth first, once each. By default a container
        whose output carries a mask again (it restored the mask itself) is not
        reached from inside it."""
        return list(self.walk(node, lambda n: self._reach(n, through_remask)))

    def mask_consumers(self, node: str) -> list[str]:
        """Where the mask on `node`'s output goes next: its data consumers, then its
        container when the container's output carries a mask again (it passed the mask
        on) or when nothing inside the container consumes `node` (it leaves through
        the container's output)."""
        out = self.consumers(node)
        parent = self.container(node)
        if parent is not None and (self.graph.edges[node, parent].get("remasks") or not out):
            out.append(parent)
        return out

    def walk(
        self,
        start: str,
        step: Callable[[str], Iterable[str]],
        *,
        expand: Callable[[str], bool] | None = None,
        depth_first: bool = False,
    ) -> Iterator[str]:
        """The nodes reached from `start`, each once, in the order found: `step(node)`
        gives a node's next nodes; a found node is walked on from only when `expand`
        (default: always) says so. Breadth first, or depth first (last found, first
        walked on)."""
        seen = {start}
        frontier = deque([start])
        while frontier:
            cur = frontier.pop() if depth_first else frontier.popleft()
            for n in step(cur):
                if n in seen:
                    continue
                seen.add(n)
                yield n
                if expand is None or expand(n):
                    frontier.append(n)

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
