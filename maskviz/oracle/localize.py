"""Where does a violation appear first? Re-run the variant under the trace and
compare every call's output with the base trace at the positions that correspond
to real input (`length.compare_tensor`); the first calls are the changed calls none
of whose ancestors changed, among those connected through changed calls to a
changed model output (`CallGraph.first_of`)."""

from __future__ import annotations

from typing import Any

from ..callgraph import CallGraph
from .compare import _owner
from .length import compare_tensor
from .sources import _build_graph
from .variants import Seq, Variant


def comparable_calls(trace: Any, model: Any) -> set[str]:
    """Calls whose outputs can be compared between runs (not RNN step functions,
    not TimeDistributed's inner call: their records hold one step)."""
    return set(_build_graph(trace, model).comparable)


def localize(
    model: Any,
    probe: Any,
    trace: Any,
    seqs: list[Seq],
    variant: Variant,
    output_indices: list[int],
    graph: CallGraph,
    comparable: set[str],
) -> dict[int, list[tuple[str, tuple[str, ...]]]]:
    """Per changed output index: the first calls where `variant` changes real
    positions, each with its path to that output."""
    from ..trace import run_trace

    pert = run_trace(model, probe.inputs, probe.feed(variant.values))
    if pert.error:
        return {}
    changed: set[str] = set()
    for cid in comparable:
        base = trace.values.get(cid) or ()
        new = pert.values.get(cid) or ()
        if any(compare_tensor(b, p, variant, seqs) is not None for b, p in zip(base, new)):
            changed.add(cid)
    by_id = trace.by_id()
    out: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
    for i in output_indices:
        if i >= len(trace.outputs):
            continue
        oc = trace.outputs[i].source
        if oc not in changed:
            continue
        connected = {c for c in changed if c == oc or graph.path(c, oc, within=changed)}
        firsts = []
        for f in graph.first_of(connected):
            owner = _owner(by_id, f, changed)
            if owner in (x for x, _ in firsts):
                continue
            path = graph.path(f, oc, within=connected) or (f,)
            firsts.append((owner, path))
        out[i] = firsts
    return out
