"""Which `keras.ops` calls are traced as calls: the operations of Functional graphs.

In a Functional model, `keras.ops` calls and tensor operators on symbolic tensors
(`ops.mean(x, axis=1)`, `x * 2`, `x[:, :-1]`, `ops.where(...)`) become graph nodes,
and the model runs each one through `Operation.__call__`, between its layers. Those
are traced and recorded like layer calls (`CallRecord.kind == "op"`).

Not traced:

- ops inside a layer's own `call` (a subclassed layer or model): they run eagerly,
  as plain backend functions, and recording them would bury the layer calls;
- the ops Keras records while it computes a layer's mask at build time (the
  `not_equal` behind `Embedding(mask_zero=True)`, the `any` behind `Masking`): they
  only make masks that Keras attaches to layer outputs, and the layer that made the
  mask is already the call that owns it.
"""

from __future__ import annotations

from typing import Any


def graph_operations(model: Any) -> set[int]:
    """The `id()`s of the operations to trace in `model` and its nested models."""
    from .. import _keras_internals as ki

    chosen: set[int] = set()
    seen_graphs: set[int] = set()
    for layer in ki.flatten_layers(model):
        fn = ki.functional_of(layer)
        if fn is None or id(fn) in seen_graphs:
            continue
        seen_graphs.add(id(fn))
        chosen |= _user_operations(fn, ki)
    return chosen


def _tensors(value: Any, ki: Any) -> list[Any]:
    import keras

    try:
        leaves = keras.tree.flatten(value)
    except Exception:
        return []
    return [t for t in leaves if ki.is_tensor(t)]


def _user_operations(fn: Any, ki: Any) -> set[int]:
    nodes = [ki.node_parts(n) for n in ki.functional_nodes(fn)]
    mask_ids: set[int] = set()
    consumers: dict[int, list[Any]] = {}
    for op, args, kwargs, outs in nodes:
        for t in outs:
            m = ki.get_mask(t)
            if m is not None:
                mask_ids.add(id(m))
        for t in _tensors((args, kwargs), ki):
            consumers.setdefault(id(t), []).append(op)
    for t in ki.model_input_tensors(fn) or []:
        m = ki.get_mask(t)
        if m is not None:
            mask_ids.add(id(m))
    internal: set[int] = set()
    for op, _args, _kwargs, outs in reversed(nodes):
        if not ki.is_operation(op):
            continue

        def mask_only(t: Any) -> bool:
            if id(t) in mask_ids:
                return True
            users = consumers.get(id(t), [])
            return bool(users) and all(id(u) in internal for u in users)

        if outs and all(mask_only(t) for t in outs):
            internal.add(id(op))
    return {id(op) for op, *_ in nodes if ki.is_operation(op) and id(op) not in internal}
