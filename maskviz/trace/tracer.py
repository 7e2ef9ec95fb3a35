"""The instrumented forward pass: one frame per traced call, one record per frame."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from .frames import _UNSET, _Frame, _is_loop_body, _received_masks
from .records import CallKind, CallRecord, TensorInfo, Via
from .values import (
    _binary,
    _dtype,
    _first_lines,
    _flat,
    _flat_masks,
    _flatten_with_names,
    _param_names,
    _replace,
    _same_value,
    _shape,
    _to_numpy,
    classify_role,
    mask_info,
    mask_weakens,
    masks_equal,
)


class Tracer:
    """Instruments a model's layers for one forward pass and collects call records."""

    def __init__(self, model: Any, input_names: Sequence[str], mask_inputs: Sequence[str] = ()):
        from .. import _keras_internals as ki
        from .ops import graph_operations

        self.ki = ki
        self.model = model
        self.input_names = list(input_names)
        layers = ki.flatten_layers(model)
        skip = set()
        for lyr in layers:
            inner = ki.wrapped_functional(lyr)
            if inner is not None:
                skip.add(id(inner))
        self.layers = [lyr for lyr in layers if id(lyr) not in skip]
        self.tracked = {id(lyr) for lyr in self.layers}
        self.stack: list[_Frame] = []
        self.counts: dict[str, int] = {}
        self.sources: dict[int, tuple[str, int]] = {}
        self.keep: list[Any] = []
        self.records: list[tuple[int, CallRecord]] = []
        self.values: dict[str, tuple[Any, ...]] = {}
        self.out_masks: dict[str, tuple[Any, ...]] = {}
        self.direct: dict[tuple[str, int], _Frame] = {}
        self.suppress = 0
        self.seq = 0
        self.error: str | None = None
        self.error_call: str | None = None
        self.root_outputs: list[Any] = []
        self.root_inputs: list[Any] = []
        self.mask_inputs = set(mask_inputs)
        self.op_ids = graph_operations(model)
        # id(tensor) -> the mask it carried when its call returned it; the call that
        # changed its mask since; tensors holding mask values.
        self.produced: dict[int, Any] = {}
        self.changers: dict[int, str] = {}
        self.mask_like: set[int] = set()

    # ----------------------------------------------------------------- frames
    def _new_frame(self, layer, via: Via) -> _Frame:
        parent = self.stack[-1] if self.stack else None
        if parent is None:
            f = _Frame(layer, "", "", None, -1, 0, self.seq, via)
            f.root = True
            return f
        prefix = "" if parent.root else parent.call_id + "/"
        path = prefix + layer.name
        idx = self.counts.get(path, 0)
        self.counts[path] = idx + 1
        call_id = path if idx == 0 else f"{path}#{idx}"
        self.seq += 1
        return _Frame(
            layer,
            call_id,
            path,
            None if parent.root else parent,
            parent.depth + 1,
            idx,
            self.seq,
            via,
        )

    def _source_of(self, frame: _Frame, x: Any) -> tuple[str | None, int]:
        hit = self.sources.get(id(x))
        if hit is not None:
            return hit
        # Not produced by a traced call: it may be an enclosing call's input,
        # converted on the way in (Functional standardises its inputs).
        for enclosing in reversed(self.stack):
            for (_, t), src in zip(enclosing.inputs, enclosing.input_sources):
                if _same_value(t, x):
                    return src
        return (None, 0)

    def on_standardized_inputs(self, layer: Any, flat: list[Any]) -> None:
        """A Functional model converted its inputs: they come from where the model's
        own inputs came from (by position)."""
        frame = self.stack[-1] if self.stack else None
        if frame is None or frame.layer is not layer:
            return
        for i, t in enumerate(flat):
            if i < len(frame.input_sources) and frame.input_sources[i][0] is not None:
                self.sources[id(t)] = frame.input_sources[i]
                self.keep.append(t)

    def _register_outputs(self, call_id: str, outputs: list[Any]) -> None:
        for i, t in enumerate(outputs):
            self.sources[id(t)] = (call_id, i)
            self.produced[id(t)] = self.ki.get_mask(t)
            self.changers.pop(id(t), None)
            self.keep.append(t)

    def _is_mask_like(self, t: Any) -> bool:
        if id(t) in self.mask_like or _dtype(t) == "bool":
            return True
        src = self.sources.get(id(t))
        return bool(src and src[0] and src[0][6:] in self.mask_inputs and _binary(t))

    # ----------------------------------------------------------------- wrappers
    def _run(self, frame: _Frame, run: Any) -> Any:
        """Runs one traced call (its frame already entered) and records it."""
        try:
            out = run()
        except BaseException as e:
            self._fail(frame, e)
            raise
        finally:
            self.stack.pop()
        self._exit(frame, out)
        return out

    def _repeat(self, key: tuple[str, int], run: Any) -> Any:
        """A per-step repeat of a call already recorded: counted, not traced."""
        self.direct[key].steps += 1
        self.suppress += 1
        try:
            return run()
        finally:
            self.suppress -= 1

    def make_dunder(self, original):
        tracer = self

        def __call__(layer, *args, **kwargs):
            if tracer.suppress or id(layer) not in tracer.tracked:
                return original(layer, *args, **kwargs)

            def run():
                return original(layer, *args, **kwargs)

            top = tracer.stack[-1] if tracer.stack else None
            per_step = top is not None and not top.root and _is_loop_body(top.layer, layer)
            key = (top.call_id, id(layer)) if per_step else None
            if key is not None and key in tracer.direct:
                return tracer._repeat(key, run)
            frame = tracer._enter(layer, args, kwargs, via=Via.DUNDER_CALL)
            if key is not None:
                # An RNN cell called once per step: one record, `steps` counts them.
                tracer.direct[key] = frame
            return tracer._run(frame, run)

        return __call__

    def make_op(self, original):
        """The `Operation.__call__` wrapper: traces the Functional graph's ops."""
        tracer = self

        def __call__(op, *args, **kwargs):
            if tracer.suppress or id(op) not in tracer.op_ids or not tracer.stack:
                return original(op, *args, **kwargs)

            def run():
                return original(op, *args, **kwargs)

            frame = tracer._enter(op, args, kwargs, via=Via.DUNDER_CALL)
            frame.is_op = True
            return tracer._run(frame, run)

        return __call__

    def make_call(self, layer, original):
        tracer = self

        # `functools.wraps` keeps `inspect.signature(layer.call)` the original's: code
        # that asks whether `call` takes `mask` must get the same answer as without us.
        @functools.wraps(original)
        def call(*args, **kwargs):
            def run():
                return original(*args, **kwargs)

            top = tracer.stack[-1] if tracer.stack else None
            if tracer.suppress or top is None:
                return run()
            if top.layer is layer and not top.call_seen:
                top.call_seen = True
                top.received = _received_masks(layer, kwargs)
                return run()
            # A direct `layer.call(...)` from an enclosing layer (TimeDistributed).
            key = (top.call_id, id(layer))
            if key in tracer.direct:
                return tracer._repeat(key, run)
            frame = tracer._enter(layer, args, kwargs, via=Via.CALL)
            frame.call_seen = True
            frame.received = _received_masks(layer, kwargs)
            tracer.direct[key] = frame
            return tracer._run(frame, run)

        return call

    # ----------------------------------------------------------------- events
    def _enter(self, layer, args, kwargs, via: Via) -> _Frame:
        frame = self._new_frame(layer, via)
        names = _param_names(layer)
        frame.inputs = _flatten_with_names(args, kwargs, names)
        if not frame.root:
            # An explicit `mask=` is an input edge only when maskviz knows who made it
            # (Functional models replay the masks Keras populated at build time).
            frame.inputs = [
                (n, t)
                for n, t in frame.inputs
                if not (n == "mask" or n.startswith("mask[")) or id(t) in self.sources
            ]
        if frame.root:
            self.root_inputs = [t for _, t in frame.inputs]
            frame.input_sources = [
                (f"input:{self.input_names[i]}" if i < len(self.input_names) else None, 0)
                for i in range(len(frame.inputs))
            ]
        else:
            frame.input_sources = [self._source_of(frame, t) for _, t in frame.inputs]
        frame.first_arg = args[0] if args else (kwargs.get(names[0]) if names else None)
        # Read masks now: some layers (MultiHeadAttention) remove them during the call.
        frame.in_masks = [self.ki.get_mask(t) for _, t in frame.inputs]
        frame.first_masks = [self.ki.get_mask(t) for t in _flat(frame.first_arg)]
        # The mask each input carried when it was produced, if it changed since.
        frame.transit = []
        # Only between calls of one graph: inside a layer's own code, what it does to
        # its inputs' masks is its business (recorded on it as `changed_masks`).
        graph_call = frame.parent is None or self.ki.functional_of(frame.parent.layer) is not None
        for (_, t), m in zip(frame.inputs, frame.in_masks):
            produced = self.produced.get(id(t), _UNSET) if graph_call else _UNSET
            if produced is not _UNSET and (produced is m or masks_equal(produced, m) is True):
                produced = _UNSET
            frame.transit.append((produced, self.changers.get(id(t))))
        if "mask" in kwargs and kwargs["mask"] is not None and via == Via.DUNDER_CALL:
            frame.explicit = True
            frame.explicit_mask = kwargs["mask"]
        self.stack.append(frame)
        return frame

    def _note_changed_masks(self, frame: _Frame) -> tuple[str, ...]:
        """The inputs whose attached mask this call changed while it ran."""
        changed = []
        for (name, t), before in zip(frame.inputs, frame.in_masks):
            after = self.ki.get_mask(t)
            if after is before:
                continue
            changed.append(name)
            self.changers[id(t)] = frame.call_id
        return tuple(changed)

    def _fail(self, frame: _Frame, exc: BaseException) -> None:
        if frame.root:
            return
        msg = f"{type(exc).__name__}: {_first_lines(str(exc))}"
        first_failure = self.error is None
        if first_failure:
            self.error = msg
            self.error_call = frame.call_id
        self.records.append(
            (frame.seq, self._record(frame, [], error=msg if first_failure else None))
        )

    def _exit(self, frame: _Frame, out: Any) -> None:
        outputs = _flat(out)
        if frame.root:
            self.root_outputs = outputs
            return
        self._register_outputs(frame.call_id, outputs)
        self.records.append((frame.seq, self._record(frame, outputs)))

    def _record(self, frame: _Frame, outputs: list[Any], error: str | None = None) -> CallRecord:
        ki = self.ki
        layer = frame.layer
        changed_masks = self._note_changed_masks(frame)
        first_tensors = _flat(frame.first_arg)
        first_masks = frame.first_masks
        first_mask = first_masks[0] if first_masks else None
        received = None if frame.received is _UNSET else frame.received
        received_flat = None if received is None else _flat_masks(received)
        if received_flat is not None and all(m is None for m in received_flat):
            received_flat = None

        # What the layer's own compute_mask says for these inputs.
        computed_flat = None
        computed_matches = None
        wants_compute = not frame.is_op and (
            ki.supports_masking(layer) or ki.compute_mask_overridden(layer)
        )
        if outputs and wants_compute and error is None:
            if frame.explicit:
                previous = frame.explicit_mask
            elif received is not None:
                previous = received
            else:
                previous = (
                    first_masks[0]
                    if len(first_masks) == 1 and not isinstance(frame.first_arg, (list, tuple))
                    else [ki.get_mask(t) for t in first_tensors]
                )
            try:
                computed = layer.compute_mask(frame.first_arg, previous)
            except Exception:
                computed = _UNSET
            if computed is not _UNSET:
                computed_flat = _flat_masks(computed)
                computed_flat = computed_flat + [None] * (len(outputs) - len(computed_flat))
                if all(m is None for m in computed_flat):
                    computed_flat_cmp = [None] * len(outputs)
                else:
                    computed_flat_cmp = computed_flat[: len(outputs)]
                attached = [ki.get_mask(t) for t in outputs]
                if frame.via == Via.CALL:
                    computed_matches = None
                else:
                    computed_matches = all(
                        masks_equal(a, c) is not False for a, c in zip(attached, computed_flat_cmp)
                    )

        out_masks = [ki.get_mask(t) for t in outputs]
        if frame.via == Via.CALL and computed_flat is not None:
            # A direct `call` attaches nothing; show the mask the layer makes.
            out_masks = [
                m if m is not None else (computed_flat[i] if i < len(computed_flat) else None)
                for i, m in enumerate(out_masks)
            ]

        in_tensors = [t for _, t in frame.inputs]
        in_masks = frame.in_masks
        in_masked = any(m is not None for m in in_masks) or frame.explicit
        out_masked = any(m is not None for m in out_masks)
        ref_in = (
            frame.explicit_mask
            if frame.explicit
            else (received_flat[0] if received_flat else first_mask)
        )
        same = None
        weakened = False
        if ref_in is not None and out_masks and out_masks[0] is not None:
            same = masks_equal(ref_in, out_masks[0])
            weakened = mask_weakens(ref_in, out_masks[0])
        role = classify_role(
            in_masked=in_masked,
            out_masked=out_masked,
            received=received_flat is not None,
            same_as_input=same,
        )
        explicit_matches = None
        if frame.explicit and first_mask is not None:
            explicit_matches = masks_equal(frame.explicit_mask, first_mask)

        transit = frame.transit or [(_UNSET, None)] * len(frame.inputs)
        inputs = tuple(
            TensorInfo(
                arg=name,
                shape=_shape(t),
                dtype=_dtype(t),
                mask=mask_info(m),
                source=src,
                source_index=si,
                produced_mask=None if produced is _UNSET else mask_info(produced),
                mask_changed=produced is not _UNSET,
                changed_by=changer if produced is not _UNSET else None,
                mask_like=self._is_mask_like(t),
            )
            for (name, t), m, (src, si), (produced, changer) in zip(
                frame.inputs, in_masks, frame.input_sources, transit
            )
        )
        if any(t.mask_like for t in inputs):
            for t in outputs:
                if _binary(t):
                    self.mask_like.add(id(t))
        outs = tuple(
            TensorInfo(
                arg="output" if len(outputs) == 1 else f"output[{i}]",
                shape=_shape(t),
                dtype=_dtype(t),
                mask=mask_info(m),
                source=frame.call_id,
                source_index=i,
                mask_like=self._is_mask_like(t),
            )
            for i, (t, m) in enumerate(zip(outputs, out_masks))
        )
        if outputs:
            self.values[frame.call_id] = tuple(_to_numpy(t) for t in outputs)
            self.out_masks[frame.call_id] = tuple(_to_numpy(m) for m in out_masks)
        return CallRecord(
            id=frame.call_id,
            path=frame.path,
            name=layer.name,
            class_name=type(layer).__name__,
            call_index=frame.call_index,
            parent=frame.parent.call_id if frame.parent is not None else None,
            depth=max(frame.depth, 0),
            inputs=inputs,
            outputs=outs,
            received_mask=None
            if received_flat is None
            else tuple(mask_info(m) for m in received_flat),
            explicit_mask=frame.explicit,
            explicit_mask_matches=explicit_matches,
            supports_masking=not frame.is_op and ki.supports_masking(layer),
            compute_mask_overridden=not frame.is_op and ki.compute_mask_overridden(layer),
            call_accepts_mask=not frame.is_op and ki.call_accepts_mask(layer),
            computed_mask=None
            if computed_flat is None
            else tuple(mask_info(m) for m in computed_flat[: max(len(outputs), 1)]),
            computed_mask_matches=computed_matches,
            mask_weakened=weakened,
            role=role,
            via=frame.via,
            steps=frame.steps,
            observed=not any(ki.is_symbolic(t) for t in in_tensors),
            error=error,
            is_container=not frame.is_op and bool(ki.direct_sublayers(layer)),
            is_functional=ki.functional_of(layer) is not None,
            reverses_time=bool(getattr(layer, "go_backwards", False))
            and bool(getattr(layer, "return_sequences", False)),
            mask_unchanged=same,
            kind=CallKind.OP if frame.is_op else CallKind.LAYER,
            changed_masks=changed_masks,
        )

    def finish(self) -> list[CallRecord]:
        # Per-step calls count their steps after the record was made.
        steps = {f.call_id: f.steps for f in self.direct.values()}
        recs = []
        for _seq, rec in sorted(self.records, key=lambda r: r[0]):
            if steps.get(rec.id, rec.steps) != rec.steps:
                rec = _replace(rec, steps=steps[rec.id])
            recs.append(rec)
        return recs
