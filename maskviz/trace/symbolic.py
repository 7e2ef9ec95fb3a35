"""Call records read from a Functional model's symbolic graph, without running it."""

from __future__ import annotations

from typing import Any

from .records import CallKind, CallRecord, TensorInfo
from .values import (
    _dtype,
    _flatten_with_names,
    _param_names,
    _shape,
    classify_role,
    mask_info,
    masks_equal,
)


def symbolic_records(model: Any) -> list[CallRecord]:
    """Call records read from a Functional model's graph, without running it.

    The masks are those Keras attached to the symbolic tensors when the model was
    built; what `call` received is unknown (`received_mask=None`, `observed=False`).
    """
    from .. import _keras_internals as ki

    records: list[CallRecord] = []
    counts: dict[str, int] = {}
    inputs = ki.model_input_tensors(model) or []
    names = [getattr(t, "name", f"input_{i}") for i, t in enumerate(inputs)]
    sources = {id(t): (f"input:{n}", 0) for t, n in zip(inputs, names)}
    from .ops import graph_operations

    ops = graph_operations(model)
    _walk_functional(model, "", None, 0, sources, counts, records, ki, ops)
    return records


def _walk_functional(model, prefix, parent, depth, sources, counts, records, ki, ops):
    for node in ki.functional_nodes(model):
        op, args, kwargs, outs = ki.node_parts(node)
        is_op = not ki.is_layer(op)
        if is_op and id(op) not in ops:  # made by Keras inside compute_mask
            continue
        path = prefix + op.name
        idx = counts.get(path, 0)
        counts[path] = idx + 1
        call_id = path if idx == 0 else f"{path}#{idx}"
        names = _param_names(op)
        flat_in = _flatten_with_names(args, kwargs, names)
        in_sources = [sources.get(id(t), (None, 0)) for _, t in flat_in]
        in_masks = [ki.get_mask(t) for _, t in flat_in]
        out_masks = [ki.get_mask(t) for t in outs]
        explicit = "mask" in kwargs and kwargs["mask"] is not None
        inner = ki.functional_of(op)
        if inner is not None:
            inner_inputs = ki.model_input_tensors(inner) or []
            for t, (src, si) in zip(inner_inputs, in_sources):
                sources[id(t)] = (src, si)
        first = flat_in[0][1] if flat_in else None
        same = masks_equal(ki.get_mask(first), out_masks[0]) if out_masks else None
        in_masked = any(m is not None for m in in_masks) or explicit
        out_masked = any(m is not None for m in out_masks)
        role = classify_role(
            in_masked=in_masked, out_masked=out_masked, received=False, same_as_input=same
        )
        records.append(
            CallRecord(
                id=call_id,
                path=path,
                name=op.name,
                class_name=type(op).__name__,
                call_index=idx,
                parent=parent,
                depth=depth,
                inputs=tuple(
                    TensorInfo(
                        n, _shape(t), _dtype(t), mask_info(m), s, si, mask_like=_dtype(t) == "bool"
                    )
                    for (n, t), m, (s, si) in zip(flat_in, in_masks, in_sources)
                ),
                outputs=tuple(
                    TensorInfo(
                        "output" if len(outs) == 1 else f"output[{i}]",
                        _shape(t),
                        _dtype(t),
                        mask_info(m),
                        call_id,
                        i,
                    )
                    for i, (t, m) in enumerate(zip(outs, out_masks))
                ),
                received_mask=None,
                explicit_mask=explicit,
                explicit_mask_matches=None,
                supports_masking=not is_op and ki.supports_masking(op),
                compute_mask_overridden=not is_op and ki.compute_mask_overridden(op),
                call_accepts_mask=not is_op and ki.call_accepts_mask(op),
                computed_mask=None,
                computed_mask_matches=None,
                mask_weakened=False,
                role=role,
                observed=False,
                is_container=not is_op and bool(ki.direct_sublayers(op)),
                is_functional=inner is not None,
                kind=CallKind.OP if is_op else CallKind.LAYER,
            )
        )
        if inner is not None:
            _walk_functional(
                inner, path + "/", call_id, depth + 1, sources, counts, records, ki, ops
            )
        # Consumers of a nested model's outputs are fed by the container's call.
        for i, t in enumerate(outs):
            sources[id(t)] = (call_id, i)
