"""Trace + findings -> a networkx `DiGraph` of calls. Data only: no styling.

Nodes:

- one per call, keyed by `CallRecord.id` (the layer path, plus `#k` for the later
  calls of a shared layer), with `kind="call"` and `call_kind` "layer", or "op"
  for a `keras.ops` node of a Functional graph;
- one per model input, `input:NAME` (`kind="input"`);
- one per model output, `output:NAME` (`kind="output"`).

Edges go from the call (or model input) that produced a tensor to the call that
consumed it. Several tensors between the same two nodes (an LSTM's `h` and `c`
states) share one edge; each is listed in its `tensors` attribute. An edge's
`mask_state` is the worst of its tensors' states, in this order:

- `"not-delivered"`: the tensor carried a mask, the consumer's `call` accepts
  `mask`, and it received `None`;
- `"wrong-rank"`: the mask's shape is not the leading axes of the tensor's (axes
  of size 1 broadcast, as in an attention mask), or a
  mask of rank > 2 reaches a mask-accepting layer whose input has rank > 3, or the
  consumer has a `mask-rank-mismatch` finding;
- `"carried"`: the tensor has a mask;
- `"none"`: it has none.

Each tensor also says whether its mask changed between the call that produced
it and this one (`mask_changed`, `produced_mask`, `changed_by`).

Inputs whose producer maskviz did not see (an op inside a layer's own code, a
per-step slice inside an RNN) have no edge; they are listed on the consumer's
`unsourced` attribute, with their mask state.

The renderer (`maskviz.render`) decides how all this looks.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import networkx as nx

from maskviz._strenum import StrEnum


class MaskState(StrEnum):
    """The state of a tensor's mask on an edge (see the module docstring), worst first."""

    NOT_DELIVERED = "not-delivered"
    WRONG_RANK = "wrong-rank"
    CARRIED = "carried"
    NONE = "none"


MASK_STATES = tuple(MaskState)
"""Edge mask states, worst first."""


def worst_state(states: Iterable[str]) -> MaskState:
    """The worst of several mask states (`MaskState.NONE` for no states)."""
    ranked = sorted(states, key=MASK_STATES.index)
    return MaskState(ranked[0]) if ranked else MaskState.NONE


def _prefix(mask_shape: tuple, shape: tuple) -> bool:
    """Whether the mask lines up with the tensor's leading axes (size-1 axes broadcast)."""
    if len(mask_shape) > len(shape):
        return False
    return all(m is None or s is None or m == s or m == 1 for m, s in zip(mask_shape, shape))


def mask_state(tensor: Any, consumer: Any | None, *, rank_finding: bool = False) -> MaskState:
    """The mask state of `tensor` (a `TensorInfo`) going into `consumer` (a `CallRecord`).

    `consumer=None` is a model output. `rank_finding` says a rule found that the mask
    the consumer got does not fit it (a finding with the detail `mask_misfit`).
    """
    m = tensor.mask
    if m is None:
        return MaskState.NONE
    if consumer is None:
        return MaskState.WRONG_RANK if not _prefix(m.shape, tensor.shape) else MaskState.CARRIED
    if consumer.observed and consumer.call_accepts_mask and consumer.received_mask is None:
        return MaskState.NOT_DELIVERED
    # Drawn from what the rules observed (a finding marked `mask_misfit`) and from the
    # shapes, never from class names: a wrapper whose per-step mask is right is "carried".
    if rank_finding or not _prefix(m.shape, tensor.shape):
        return MaskState.WRONG_RANK
    return MaskState.CARRIED


def _mask_tuple(m: Any) -> tuple | None:
    return None if m is None else tuple(m.shape)


def _received_shape(received: Any) -> tuple | None:
    for m in received or ():
        if m is not None:
            return tuple(m.shape)
    return None


def time_steps(call: Any, by_id: dict[str, Any]) -> int | None:
    """The number of time steps a per-step call (an RNN's cell, `TimeDistributed`'s inner
    layer) runs for: its container's sequence length, when the call's input has one axis
    fewer than the container's. `None` for any other call. (How often the cell's Python
    `call` runs differs by backend: 9 on TensorFlow, 1 under JAX's scan, for 8 steps.)"""
    parent = by_id.get(call.parent) if call.parent else None
    if parent is None or not parent.inputs or not call.inputs:
        return None
    outer, inner = parent.inputs[0].shape, call.inputs[0].shape
    if len(outer) >= 3 and len(inner) == len(outer) - 1 and outer[1] is not None:
        return int(outer[1])
    return None


def build_graph(trace: Any, findings: Iterable[Any] = ()) -> nx.DiGraph:
    """Builds the call graph of `trace`, annotated with `findings`.

    Args:
        trace: a `maskviz.trace.Trace`.
        findings: the report's findings; each is attached to the node of its
            `call_id` (findings without a known call go to `graph.graph["findings"]`).

    Returns:
        A `networkx.DiGraph`. Node, edge and graph attributes are plain data
        (strings, numbers, tuples, lists, dicts); see the module docstring.
    """
    findings = list(findings)
    calls = list(trace.calls)
    ids = {c.id for c in calls}
    by_call: dict[str, list[dict[str, str]]] = {}
    loose: list[dict[str, str]] = []
    misfit: set[str] = set()
    for f in findings:
        entry = {"rule": f.rule, "name": f.name, "severity": f.severity.value}
        if dict(f.details).get("mask_misfit"):
            misfit.add(f.call_id)
        if f.call_id in ids:
            by_call.setdefault(f.call_id, []).append(entry)
        else:
            loose.append(entry | {"call_id": f.call_id or ""})

    parents = {c.parent for c in calls if c.parent is not None}
    g = nx.DiGraph()
    # (Set after construction: `nx.DiGraph(backend=...)` selects a networkx backend.)
    g.graph.update(
        name=trace.model_name,
        model_class=trace.model_class,
        keras_version=trace.keras_version,
        backend=trace.backend,
        error=trace.error,
        error_call=trace.error_call,
        findings=loose,
    )

    for inp in trace.inputs:
        g.add_node(
            f"input:{inp.name}",
            kind="input",
            name=inp.name,
            shape=tuple(inp.shape),
            dtype=inp.dtype,
            input_kind=inp.kind,
            pairs_with=inp.pairs_with,
            depth=0,
            parent=None,
            findings=[],
        )

    by_id_all = {c.id: c for c in trace.calls}
    for order, c in enumerate(calls):
        out = c.outputs[0] if c.outputs else None
        first = c.first_input
        g.add_node(
            c.id,
            kind="call",
            call_kind=c.kind,
            order=order,
            name=c.name,
            path=c.path,
            class_name=c.class_name,
            role=c.role,
            depth=c.depth,
            parent=c.parent,
            container=c.id in parents,
            steps=c.steps,
            time_steps=time_steps(c, by_id_all),
            via=c.via,
            observed=c.observed,
            error=c.error,
            output_shape=None if out is None else tuple(out.shape),
            output_mask=None if out is None else _mask_tuple(out.mask),
            kept=None if out is None or out.mask is None else out.mask.kept,
            n_outputs=len(c.outputs),
            input_mask=None if first is None else _mask_tuple(first.mask),
            call_accepts_mask=c.call_accepts_mask,
            received=c.received,
            received_mask=_received_shape(c.received_mask),
            explicit_mask=c.explicit_mask,
            findings=list(by_call.get(c.id, [])),
            unsourced=[],
        )

    for c in calls:
        rank_finding = c.id in misfit
        for pos, t in enumerate(c.inputs):
            state = mask_state(t, c, rank_finding=rank_finding)
            tensor = {
                "arg": t.arg,
                "position": pos,
                "source_index": t.source_index,
                "shape": tuple(t.shape),
                "dtype": t.dtype,
                "mask": _mask_tuple(t.mask),
                "kept": None if t.mask is None else t.mask.kept,
                "mask_state": state,
                "mask_changed": t.mask_changed,
                "produced_mask": _mask_tuple(t.produced_mask),
                "changed_by": t.changed_by,
            }
            if t.source is None or t.source not in g or t.source == c.id:
                g.nodes[c.id]["unsourced"].append(tensor)
                continue
            _add_tensor_edge(g, t.source, c.id, tensor)

    for o in trace.outputs:
        node = f"output:{o.name}"
        g.add_node(
            node,
            kind="output",
            name=o.name,
            shape=tuple(o.shape),
            dtype=o.dtype,
            mask=_mask_tuple(o.mask),
            kept=None if o.mask is None else o.mask.kept,
            depth=0,
            parent=None,
            findings=[],
        )
        if o.source is not None and o.source in g:
            t = SimpleNamespace(mask=o.mask, shape=tuple(o.shape))
            tensor = {
                "arg": o.name,
                "position": 0,
                "source_index": o.source_index,
                "shape": tuple(o.shape),
                "dtype": o.dtype,
                "mask": _mask_tuple(o.mask),
                "kept": None if o.mask is None else o.mask.kept,
                "mask_state": mask_state(t, None),
            }
            _add_tensor_edge(g, o.source, node, tensor)
    return g


def _add_tensor_edge(g: nx.DiGraph, u: str, v: str, tensor: dict[str, Any]) -> None:
    if g.has_edge(u, v):
        data = g.edges[u, v]
        data["tensors"].append(tensor)
        data["arg"] = ", ".join(t["arg"] for t in data["tensors"])
        data["mask_state"] = worst_state(t["mask_state"] for t in data["tensors"])
        return
    g.add_edge(
        u,
        v,
        arg=tensor["arg"],
        shape=tensor["shape"],
        mask=tensor["mask"],
        mask_state=tensor["mask_state"],
        tensors=[tensor],
    )


def descendants_by_parent(g: nx.DiGraph) -> dict[str | None, list[str]]:
    """Call ids grouped by parent id, in trace order."""
    out: dict[str | None, list[str]] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] == "call":
            out.setdefault(d["parent"], []).append(n)
    return out
