"""Trace: one frozen record per layer call, with the masks Keras attached and delivered.

Tracing instruments `Layer.__call__` (and each tracked layer's `call`) for the
duration of one forward pass on the probe batch, so Functional, Sequential, nested
and subclassed models all go through the same mechanism. The instrumentation is
removed afterwards, even when the forward pass fails.

For Functional models the symbolic graph is read too: when the forward pass
crashes, the calls it never reached still get a record (with the masks Keras
attached to the symbolic tensors when the model was built), and the crash is
recorded on the call where it happened.

The `keras.ops` nodes of Functional graphs (`ops.mean(x)`, `x * 2`, `x[:, 1:]`) are
traced as calls too (`CallRecord.kind == "op"`, see `maskviz.trace.ops`); the ops
inside a layer's own `call` are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..inputs import InputKind
from .records import (
    ROLES,
    CallKind,
    CallRecord,
    MaskInfo,
    ModelInput,
    ModelOutput,
    Role,
    TensorInfo,
    Trace,
    Via,
)
from .symbolic import symbolic_records
from .tracer import Tracer
from .values import (
    _dtype,
    _first_lines,
    _same_value,
    _shape,
    classify_role,
    mask_info,
    mask_weakens,
    masks_equal,
)

__all__ = [
    "ROLES",
    "CallKind",
    "CallRecord",
    "InputKind",
    "MaskInfo",
    "ModelInput",
    "ModelOutput",
    "Role",
    "TensorInfo",
    "Trace",
    "Tracer",
    "Via",
    "classify_role",
    "mask_info",
    "mask_weakens",
    "masks_equal",
    "run_trace",
    "symbolic_records",
]


def run_trace(model: Any, model_inputs: Sequence[ModelInput], feed: Any) -> Trace:
    """Runs `model` once on `feed` with instrumentation and returns the Trace.

    Args:
        model: a built Keras model.
        model_inputs: the inputs' descriptions (names in the order of `feed`).
        feed: what to pass to `model(...)`: an array, a list, or a dict.

    The model is left exactly as it was: every wrapper is removed and every variable
    restored, even on error or `KeyboardInterrupt`.

    Raises:
        MaskvizError: when called from inside a model that maskviz is running.
    """
    import keras

    from .. import _keras_internals as ki

    root_error = None
    # One run at a time (a lock), never nested, from and back to the model's own state
    # (weights, RNN states): see `ki.instrumented_run`.
    with ki.instrumented_run(model), ki.silence_mask_warnings():
        tracer = Tracer(
            model,
            [i.name for i in model_inputs],
            mask_inputs=[i.name for i in model_inputs if i.kind == InputKind.MASK],
        )
        with (
            ki.patched_instance_calls(tracer.layers, tracer.make_call),
            ki.patched_input_standardization(tracer.layers, tracer.on_standardized_inputs),
        ):
            with (
                ki.patched_layer_call(tracer.make_dunder),
                ki.patched_operation_call(tracer.make_op),
            ):
                try:
                    model(feed, training=False)
                except Exception as e:  # reported as a finding, not raised
                    root_error = f"{type(e).__name__}: {_first_lines(str(e))}"
    records = tracer.finish()
    error, error_call = tracer.error, tracer.error_call
    if root_error and not error:
        error = root_error
    if error:
        seen = {r.id for r in records}
        for rec in symbolic_records(model):
            if rec.id not in seen:
                records.append(rec)
        records = _topological(records)

    outputs = []
    out_names = _output_names(model, len(tracer.root_outputs))
    for i, t in enumerate(tracer.root_outputs):
        src = tracer.sources.get(id(t))
        if src is None:
            src = _find_by_value(tracer, t)
        outputs.append(
            ModelOutput(
                name=out_names[i],
                source=src[0] if src else None,
                source_index=src[1] if src else 0,
                shape=_shape(t),
                dtype=_dtype(t),
                mask=mask_info(ki.get_mask(t)),
            )
        )
    values: dict[str, tuple[Any, ...]] = dict(tracer.values)
    masks: dict[str, tuple[Any, ...]] = dict(tracer.out_masks)
    return Trace(
        model_name=model.name,
        model_class=type(model).__name__,
        keras_version=keras.__version__,
        backend=keras.backend.backend(),
        inputs=tuple(model_inputs),
        outputs=tuple(outputs),
        calls=tuple(records),
        error=error,
        error_call=error_call,
        values=values,
        masks=masks,
    )


def _find_by_value(tracer: Tracer, t: Any) -> tuple[str, int] | None:
    for seq_rec in reversed(tracer.records):
        rec = seq_rec[1]
        vals = tracer.values.get(rec.id, ())
        for i, v in enumerate(vals):
            if v is not None and _same_value(v, t):
                return rec.id, i
    return None


def _output_names(model: Any, n: int) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != n:
        names = [f"output_{i}" for i in range(n)] if n > 1 else ["output"]
    return names


def _topological(records: list[CallRecord]) -> list[CallRecord]:
    """Orders records so that every producer precedes its consumers and every container
    its inner calls; ties keep the order of the calls (a cycle keeps that order).

    This is the order calls are listed in, not the data flow the rules query
    (`maskviz.callgraph.CallGraph`, where what happens inside a container reaches
    the container's output)."""
    import networkx as nx

    index = {r.id: i for i, r in enumerate(records)}
    g = nx.DiGraph()
    g.add_nodes_from(index)
    for r in records:
        deps = {t.source for t in r.inputs if t.source in index} | {r.parent}
        g.add_edges_from((d, r.id) for d in deps if d in index and d != r.id)
    try:
        order = list(nx.lexicographical_topological_sort(g, key=index.__getitem__))
    except nx.NetworkXUnfeasible:
        return list(records)
    by_id = {r.id: r for r in records}
    return [by_id[n] for n in order]
