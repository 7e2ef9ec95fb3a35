"""Where candidates apply: the call sites of a model (layers and op nodes by path)
and the candidates proposed for a finding at its call, and upstream or downstream
of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .candidates import (
    UPSTREAM_SITES,
    Candidate,
    MaskedReduction,
    MergeMask,
    PackReal,
    PassMask,
    PerTimestepMask,
    Remask,
    UseTwin,
    ZeroThenRemask,
    _tensors,
)


@dataclass(frozen=True)
class Site:
    """What is known about one place a repair can go.

    Attributes:
        path: the layer path or op name.
        layer: the original layer or op object.
        call: the trace's record of its call (`None` for an op the trace did not see).
        is_op: a `keras.ops` node rather than a layer.
    """

    path: str
    layer: Any
    call: Any = None
    is_op: bool = False


def propose(site: Site) -> list[Candidate]:
    """The candidates for one site, most specific first. Facts from the trace
    narrow the list; where the trace has none (an op), verification decides."""
    from .. import _keras_internals as ki
    from .twins import twin_for

    out: list[Candidate] = []
    call = site.call
    index = call.call_index if call is not None else 0
    seq = next((t for t in call.inputs if not t.arg.startswith("mask")), None) if call else None
    masked_in = seq is not None and seq.mask is not None
    out_mask = bool(call and call.outputs and call.outputs[0].mask is not None)
    if not site.is_op:
        row = twin_for(site.layer)
        if row is not None:
            if row.kind == "timestep-mask":
                made = call.outputs[0].mask if call and call.outputs else None
                if made is not None and made.rank > 2:
                    out.append(PerTimestepMask(site.path, index, twin=row.twin))
            else:
                out.append(UseTwin(site.path, index, twin=row.twin))
        if call is not None and call.call_accepts_mask and masked_in and not call.received:
            out.append(PassMask(site.path, index))
    reduction = ki.reduction_of(site.layer) if site.is_op else None
    if reduction is not None:
        kind, axis, keepdims = reduction
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        if axes == (1,):
            out.append(MaskedReduction(site.path, index, reduction=kind, keepdims=keepdims))
    weakened = bool(
        call
        and out_mask
        and masked_in
        and (call.mask_weakened or (call.outputs[0].mask.kept or 0) > (seq.mask.kept or 0))
    )
    merged = [t for t in call.inputs if not t.arg.startswith("mask")] if call else []
    if (
        len(merged) > 1
        and all(t.arg.startswith("inputs[") for t in merged)
        and any(t.mask is not None for t in merged)
        and any(t.mask is None for t in merged)
    ):
        out.append(MergeMask(site.path, index))
    if call is None or (masked_in and (not out_mask or weakened)):
        keeps_time = call is None or (
            call.outputs
            and seq is not None
            and len(call.outputs[0].shape) >= 2
            and len(seq.shape) >= 2
            and call.outputs[0].shape[1] == seq.shape[1]
        )
        out.append(ZeroThenRemask(site.path, index, remask=True))
        if keeps_time:
            out.append(Remask(site.path, index))
            if not site.is_op and not site.layer.weights:
                # A weightless layer that moves steps (a reversal, a shift): the mask
                # goes through the same layer, so it stays aligned with its steps.
                out.append(ZeroThenRemask(site.path, index, remask=True, carry=True))
        else:  # the time axis is gone or changed: zero the padding, mask what is left
            out.append(ZeroThenRemask(site.path, index, remask=False))
    return out


def layers_by_path(model: Any) -> dict[str, Any]:
    """Every layer of `model` under the path the trace gives it (`encoder/lstm`)."""
    from .. import _keras_internals as ki

    found: dict[str, Any] = {}

    def walk(layer: Any, prefix: str) -> None:
        for sub in ki.direct_sublayers(layer):
            if type(sub).__name__ == "InputLayer":
                continue
            path = prefix + sub.name
            found.setdefault(path, sub)
            walk(sub, path + "/")

    walk(model, "")
    return found


def sites_by_path(model: Any) -> dict[str, Any]:
    """Every place a repair can go, under the path the trace gives its call: the
    layers of `layers_by_path`, and the `keras.ops` nodes of the model's Functional
    graphs (and of its nested Functional models), which the trace records as calls
    of their own (`CallRecord.kind == "op"`, path `encoder/mean`)."""
    from .. import _keras_internals as ki

    found = layers_by_path(model)
    graphs = [("", model)] + [(path + "/", layer) for path, layer in found.items()]
    seen: set[int] = set()
    for prefix, owner in graphs:
        fn = ki.functional_of(owner)
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        for node in ki.functional_nodes(fn):
            op = ki.node_parts(node)[0]
            if not ki.is_layer(op) and ki.is_operation(op):
                found.setdefault(prefix + op.name, op)
    return found


def _upstream(model: Any, start: Any) -> list[Any]:
    """The operations (layers and ops) of `model`'s own graph upstream of `start`,
    nearest first (breadth-first), input layers excluded."""
    from .. import _keras_internals as ki

    feeds: dict[int, list[Any]] = {}
    for node in ki.functional_nodes(model):
        op, args, kwargs, _ = ki.node_parts(node)
        srcs = feeds.setdefault(id(op), [])
        for t in _tensors([list(args), dict(kwargs)]):
            hist = ki.tensor_history(t)
            if hist is not None and hist[0] is not op and hist[0] not in srcs:
                srcs.append(hist[0])
    out: list[Any] = []
    frontier = [start]
    seen = {id(start)}
    while frontier:
        nxt = []
        for op in frontier:
            for src in feeds.get(id(op), []):
                if id(src) in seen or type(src).__name__ == "InputLayer":
                    continue
                seen.add(id(src))
                out.append(src)
                nxt.append(src)
        frontier = nxt
    return out


def candidates_for(finding: Any, model: Any, trace: Any) -> list[Candidate]:
    """The candidates for `finding`: at its own call first, then at the sites
    upstream of it in the model's graph (nearest first), without duplicates."""
    from .. import _keras_internals as ki

    by_path = sites_by_path(model)
    calls = trace.by_id()
    first_call = {}
    for c in trace.calls:
        first_call.setdefault(c.path, c)
    sites: list[Site] = []
    own = by_path.get(finding.path)
    if own is not None:
        sites.append(
            Site(finding.path, own, calls.get(finding.call_id), is_op=not ki.is_layer(own))
        )
    top = by_path.get(finding.path.split("/")[0])
    if top is not None:
        for op in _upstream(model, top)[:UPSTREAM_SITES]:
            path = op.name
            if path not in by_path or by_path[path] is not op:
                continue
            call = first_call.get(path)
            if call is None and not ki.is_layer(op):
                # An op the trace does not record only computes a layer's mask
                # (`maskviz.trace.ops`): not a step of the data.
                continue
            sites.append(Site(path, op, call, is_op=not ki.is_layer(op)))
    seen: set[Candidate] = set()
    out: list[Candidate] = []
    if finding.rule == "MV113" and sites and sites[0].path == finding.path:
        # Real outputs move with where the padding sits, first at this call: the call
        # sees its real steps where right padding puts them (verification decides).
        own_site = sites[0]
        index = own_site.call.call_index if own_site.call is not None else 0
        out.append(PackReal(own_site.path, index))
        seen.add(out[0])
    for site in sites:
        for cand in propose(site):
            if cand not in seen:
                seen.add(cand)
                out.append(cand)
    return out


def downstream_candidates(model: Any, site: str, trace: Any, limit: int = UPSTREAM_SITES) -> list:
    """Candidates at the calls downstream of `site` in `trace` (nearest first): where
    a repair's new mask goes next, for a repair that needs a partner (a wrapper
    downstream that hands the repaired mask on unchanged)."""
    from .. import _keras_internals as ki
    from ..callgraph import CallGraph

    by_path = sites_by_path(model)
    start = next((c for c in trace.calls if c.path == site), None)
    if start is None:
        return []
    out: list[Candidate] = []
    seen = 0
    graph = CallGraph(trace)
    for call in map(graph.record, graph.downstream(start.id)):
        layer = by_path.get(call.path)
        if layer is None or call.call_index:
            continue
        seen += 1
        if seen > limit:
            break
        site_ = Site(call.path, layer, call, is_op=not ki.is_layer(layer))
        out.extend(c for c in propose(site_) if c not in out)
    return out
