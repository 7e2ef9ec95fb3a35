"""Trace: one frozen record per layer call, with the masks Keras attached and delivered.

Tracing instruments `Layer.__call__` (and each tracked layer's `call`) for the
duration of one forward pass on the probe batch, so Functional, Sequential, nested
and subclassed models all go through the same mechanism. The instrumentation is
removed afterwards, even when the forward pass fails.

For Functional models the symbolic graph is read too: when the forward pass
crashes, the calls it never reached still get a record (with the masks Keras
attached to the symbolic tensors when the model was built), and the crash is
recorded on the call where it happened.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("generator", "propagator", "modifier", "consumer", "destroyer", "none")


@dataclass(frozen=True)
class MaskInfo:
    """A mask as observed: its shape, dtype and the fraction of positions kept.

    `kept` is `None` for symbolic masks (no values).
    """

    shape: tuple[int | None, ...]
    dtype: str
    kept: float | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "kept": self.kept}

    def describe(self) -> str:
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        base = f"({dims}{',' if len(self.shape) == 1 else ''})"
        return base if self.kept is None else f"{base} {self.kept:.0%} kept"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor going into or out of a call.

    Attributes:
        arg: where it sat in the call ("inputs", "initial_state[0]", "output[1]").
        shape, dtype: the tensor's.
        mask: the mask attached to it (`_keras_mask`), or `None`.
        source: id of the call that produced it, `"input:NAME"` for a model input,
            or `None` when it was made by an op maskviz does not see.
        source_index: which output of `source`.
    """

    arg: str
    shape: tuple[int | None, ...]
    dtype: str
    mask: MaskInfo | None = None
    source: str | None = None
    source_index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "arg": self.arg,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "mask": self.mask.to_dict() if self.mask else None,
            "source": self.source,
            "source_index": self.source_index,
        }


@dataclass(frozen=True)
class CallRecord:
    """One call of one layer.

    Attributes:
        id: unique, stable node id: the path, plus `#k` for the k-th call (k >= 1)
            of a shared layer.
        path: the layer's path from the model (`encoder/lstm`).
        name, class_name: the layer's.
        call_index: 0 for the first call of this layer in the trace, 1 for the next...
        parent: id of the enclosing call (nested model or wrapper), or `None`.
        depth: nesting depth (0 for the model's own layers).
        inputs, outputs: the tensors, with masks attached.
        received_mask: the masks `call` actually received in its `mask`
            argument (flattened), or `None` when `call` got no mask (or has no
            `mask` parameter).
        explicit_mask: the caller passed `mask=` itself.
        explicit_mask_matches: when explicit, whether it equals the mask that the
            first input carried (`None` if the input had none or it cannot be told).
        supports_masking, compute_mask_overridden, call_accepts_mask: the layer's.
        computed_mask: what the layer's own `compute_mask` returned for this
            call's inputs (flattened), or `None` when it was not asked.
        computed_mask_matches: whether `computed_mask` equals the attached output
            masks.
        mask_weakened: the output mask keeps positions the input mask dropped.
        role: generator, propagator, modifier, consumer, destroyer, or none.
        via: "__call__" for a normal call, "call" for a direct `layer.call(...)`
            from a wrapper such as `TimeDistributed` (recorded once, for the
            first step, with `steps` the number of such calls).
        observed: True when the call ran on the probe; False when the record comes
            from the symbolic graph only (the forward pass stopped earlier).
        error: the exception message, on the call where the forward pass failed.
        is_container: the layer is a model or wraps layers (its inner calls are
            recorded separately).
        is_functional: the layer is a Functional or Sequential model, whose masks flow
            through its graph (not through code of its own).
        reverses_time: the layer returns its sequence in reverse (an RNN with
            `go_backwards=True` and `return_sequences=True`).
        mask_unchanged: the output mask equals the mask that came in (`None` when
            either is missing or it cannot be told).
    """

    id: str
    path: str
    name: str
    class_name: str
    call_index: int
    parent: str | None
    depth: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    received_mask: tuple[MaskInfo | None, ...] | None
    explicit_mask: bool
    explicit_mask_matches: bool | None
    supports_masking: bool
    compute_mask_overridden: bool
    call_accepts_mask: bool
    computed_mask: tuple[MaskInfo | None, ...] | None
    computed_mask_matches: bool | None
    mask_weakened: bool
    role: str
    via: str = "__call__"
    steps: int = 1
    observed: bool = True
    error: str | None = None
    is_container: bool = False
    is_functional: bool = False
    reverses_time: bool = False
    mask_unchanged: bool | None = None

    @property
    def input_masked(self) -> bool:
        return any(t.mask is not None for t in self.inputs)

    @property
    def output_masked(self) -> bool:
        return any(t.mask is not None for t in self.outputs)

    @property
    def received(self) -> bool:
        return self.received_mask is not None and any(m is not None for m in self.received_mask)

    @property
    def first_input(self) -> TensorInfo | None:
        return self.inputs[0] if self.inputs else None

    def to_dict(self) -> dict[str, Any]:
        def masks(ms):
            return None if ms is None else [m.to_dict() if m else None for m in ms]

        return {
            "id": self.id,
            "path": self.path,
            "layer": self.name,
            "class": self.class_name,
            "call_index": self.call_index,
            "parent": self.parent,
            "depth": self.depth,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "received_mask": masks(self.received_mask),
            "explicit_mask": self.explicit_mask,
            "supports_masking": self.supports_masking,
            "compute_mask_overridden": self.compute_mask_overridden,
            "call_accepts_mask": self.call_accepts_mask,
            "computed_mask": masks(self.computed_mask),
            "role": self.role,
            "via": self.via,
            "observed": self.observed,
            "error": self.error,
        }


@dataclass(frozen=True)
class ModelInput:
    name: str
    shape: tuple[int | None, ...]
    dtype: str
    kind: str = "data"  # "tokens", "masked-floats", "mask", "data"
    pairs_with: str | None = None  # for explicit mask inputs: the data input


@dataclass(frozen=True)
class ModelOutput:
    name: str
    source: str | None
    source_index: int
    shape: tuple[int | None, ...]
    dtype: str
    mask: MaskInfo | None


@dataclass(frozen=True)
class Trace:
    """Everything observed in one instrumented forward pass, in topological order."""

    model_name: str
    model_class: str
    keras_version: str
    backend: str
    inputs: tuple[ModelInput, ...]
    outputs: tuple[ModelOutput, ...]
    calls: tuple[CallRecord, ...]
    error: str | None = None
    error_call: str | None = None
    # Arrays from the probe run, for the oracle: call id -> flat outputs / output
    # masks (numpy); "input:NAME" -> the probe value. Not part of equality or JSON.
    values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)
    masks: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)

    def call(self, call_id: str) -> CallRecord:
        for c in self.calls:
            if c.id == call_id:
                return c
        raise KeyError(call_id)

    def by_id(self) -> dict[str, CallRecord]:
        return {c.id: c for c in self.calls}

    def consumers_of(self, call_id: str) -> list[tuple[CallRecord, TensorInfo]]:
        """Calls that take an output of `call_id` as input (with that input)."""
        out = []
        for c in self.calls:
            for t in c.inputs:
                if t.source == call_id:
                    out.append((c, t))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "model_class": self.model_class,
            "inputs": [
                {
                    "name": i.name,
                    "shape": list(i.shape),
                    "dtype": i.dtype,
                    "kind": i.kind,
                    "pairs_with": i.pairs_with,
                }
                for i in self.inputs
            ],
            "outputs": [
                {
                    "name": o.name,
                    "source": o.source,
                    "source_index": o.source_index,
                    "shape": list(o.shape),
                    "dtype": o.dtype,
                    "mask": o.mask.to_dict() if o.mask else None,
                }
                for o in self.outputs
            ],
            "calls": [c.to_dict() for c in self.calls],
            "error": self.error,
            "error_call": self.error_call,
        }


# --------------------------------------------------------------------------- helpers


def _shape(x: Any) -> tuple[int | None, ...]:
    try:
        return tuple(None if d is None else int(d) for d in x.shape)
    except Exception:
        return ()


def _dtype(x: Any) -> str:
    import keras

    try:
        return keras.backend.standardize_dtype(x.dtype)
    except Exception:
        return str(getattr(x, "dtype", "?"))


def _to_numpy(x: Any) -> np.ndarray | None:
    from . import _keras_internals as ki

    if x is None or ki.is_symbolic(x):
        return None
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception:
        return None


def mask_info(m: Any) -> MaskInfo | None:
    if m is None:
        return None
    arr = _to_numpy(m)
    kept = None
    if arr is not None and arr.size:
        kept = round(float(np.mean(arr.astype(bool))), 4)
    return MaskInfo(shape=_shape(m), dtype=_dtype(m), kept=kept)


def masks_equal(a: Any, b: Any) -> bool | None:
    """Whether two masks are the same (values when eager, identity/shape when symbolic)."""
    if a is None or b is None:
        return a is None and b is None
    if a is b:
        return True
    na, nb = _to_numpy(a), _to_numpy(b)
    if na is None or nb is None:
        return _shape(a) == _shape(b) if _shape(a) != _shape(b) else None
    if na.shape != nb.shape:
        return False
    return bool(np.array_equal(na.astype(bool), nb.astype(bool)))


def mask_weakens(inp: Any, out: Any) -> bool:
    """True when `out` keeps positions that `inp` dropped (same shape, eager)."""
    if inp is None or out is None:
        return False
    ni, no = _to_numpy(inp), _to_numpy(out)
    if ni is None or no is None or ni.shape != no.shape:
        return False
    return bool(np.any(no.astype(bool) & ~ni.astype(bool)))


def _flatten_with_names(args: Sequence[Any], kwargs: Mapping[str, Any], names: list[str]):
    """Yields (arg name, tensor) for every tensor in the call arguments."""
    import keras

    from . import _keras_internals as ki

    out = []
    for i, a in enumerate(args):
        name = names[i] if i < len(names) else f"arg{i}"
        _collect(name, a, out, keras, ki)
    for k, v in kwargs.items():
        if k == "training":
            continue
        _collect(k, v, out, keras, ki)
    return out


def _collect(name, value, out, keras, ki):
    if ki.is_tensor(value) or isinstance(value, np.ndarray):
        out.append((name, value))
        return
    if isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            _collect(f"{name}[{j}]", v, out, keras, ki)
    elif isinstance(value, dict):
        for k in sorted(value):
            _collect(f"{name}[{k!r}]", value[k], out, keras, ki)


def _flat(x: Any) -> list[Any]:
    import keras

    from . import _keras_internals as ki

    if x is None:
        return []
    if ki.is_tensor(x):
        return [x]
    if isinstance(x, dict):
        return [t for k in sorted(x) for t in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flat(v)]
    try:
        return list(keras.tree.flatten(x))
    except Exception:
        return []


def _flat_masks(m: Any) -> list[Any]:
    if m is None:
        return [None]
    if isinstance(m, dict):
        return [v for k in sorted(m) for v in _flat_masks(m[k])]
    if isinstance(m, (list, tuple)):
        out = []
        for v in m:
            out.extend(_flat_masks(v))
        return out
    return [m]


def _param_names(layer: Any) -> list[str]:
    import inspect

    try:
        fn = type(layer).call
        return [p for p in inspect.signature(fn).parameters if p != "self"]
    except (TypeError, ValueError):
        return []


def classify_role(
    *,
    in_masked: bool,
    out_masked: bool,
    received: bool,
    same_as_input: bool | None,
) -> str:
    """The call's mask role, from what was observed.

    - generator: no mask came in, one went out.
    - consumer: its `call` received a mask.
    - destroyer: a mask came in, none went out, and `call` did not receive it.
    - modifier: a mask came in and a different one went out.
    - propagator: the same mask went out.
    """
    if not in_masked and not received:
        return "generator" if out_masked else "none"
    if received:
        return "consumer"
    if not out_masked:
        return "destroyer"
    if same_as_input is False:
        return "modifier"
    return "propagator"


# --------------------------------------------------------------------------- tracer


class _Frame:
    def __init__(self, layer, call_id, path, parent, depth, call_index, seq, via):
        self.layer = layer
        self.call_id = call_id
        self.path = path
        self.parent = parent
        self.depth = depth
        self.call_index = call_index
        self.seq = seq
        self.via = via
        self.inputs: list[tuple[str, Any]] = []
        self.input_sources: list[tuple[str | None, int]] = []
        self.first_arg: Any = None
        self.explicit_mask: Any = None
        self.explicit = False
        self.received: Any = _UNSET
        self.call_seen = False
        self.steps = 1
        self.root = False
        self.in_masks: list[Any] = []
        self.first_masks: list[Any] = []


class _Unset:
    def __repr__(self):
        return "UNSET"


_UNSET = _Unset()


class Tracer:
    """Instruments a model's layers for one forward pass and collects call records."""

    def __init__(self, model: Any, input_names: Sequence[str]):
        from . import _keras_internals as ki

        self.ki = ki
        self.model = model
        self.input_names = list(input_names)
        layers = ki.flatten_layers(model)
        skip = set()
        for lyr in layers:
            inner = getattr(lyr, "_functional", None)
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

    # ----------------------------------------------------------------- frames
    def _new_frame(self, layer, via) -> _Frame:
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
            self.keep.append(t)

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
            frame = tracer._enter(layer, args, kwargs, via="__call__")
            if key is not None:
                # An RNN cell called once per step: one record, `steps` counts them.
                tracer.direct[key] = frame
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
            frame = tracer._enter(layer, args, kwargs, via="call")
            frame.call_seen = True
            frame.received = _received_masks(layer, kwargs)
            tracer.direct[key] = frame
            return tracer._run(frame, run)

        return call

    # ----------------------------------------------------------------- events
    def _enter(self, layer, args, kwargs, via) -> _Frame:
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
        if "mask" in kwargs and kwargs["mask"] is not None and via == "__call__":
            frame.explicit = True
            frame.explicit_mask = kwargs["mask"]
        self.stack.append(frame)
        return frame

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
        wants_compute = ki.supports_masking(layer) or ki.compute_mask_overridden(layer)
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
                if frame.via == "call":
                    computed_matches = None
                else:
                    computed_matches = all(
                        masks_equal(a, c) is not False for a, c in zip(attached, computed_flat_cmp)
                    )

        out_masks = [ki.get_mask(t) for t in outputs]
        if frame.via == "call" and computed_flat is not None:
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

        inputs = tuple(
            TensorInfo(
                arg=name,
                shape=_shape(t),
                dtype=_dtype(t),
                mask=mask_info(m),
                source=src,
                source_index=si,
            )
            for (name, t), m, (src, si) in zip(frame.inputs, in_masks, frame.input_sources)
        )
        outs = tuple(
            TensorInfo(
                arg="output" if len(outputs) == 1 else f"output[{i}]",
                shape=_shape(t),
                dtype=_dtype(t),
                mask=mask_info(m),
                source=frame.call_id,
                source_index=i,
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
            supports_masking=ki.supports_masking(layer),
            compute_mask_overridden=ki.compute_mask_overridden(layer),
            call_accepts_mask=ki.call_accepts_mask(layer),
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
            is_container=bool(ki.direct_sublayers(layer)),
            is_functional=ki.functional_of(layer) is not None,
            reverses_time=bool(getattr(layer, "go_backwards", False))
            and bool(getattr(layer, "return_sequences", False)),
            mask_unchanged=same,
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


def _received_masks(layer: Any, kwargs: Mapping[str, Any]) -> Any:
    """The masks `call` got: its `mask` argument, or the `<arg>_mask` arguments Keras
    fills for calls with several tensor arguments (`query_mask`, `value_mask`)."""
    names = _param_names(layer)
    if "mask" in names:
        return kwargs.get("mask", None)
    extra = [kwargs.get(n) for n in names if n.endswith("_mask") and n[:-5] in names]
    if any(m is not None for m in extra):
        return extra
    return None


def _is_loop_body(parent: Any, layer: Any) -> bool:
    """Whether `layer` is the step function of `parent` (an RNN's cell)."""
    cell = getattr(parent, "cell", None)
    if cell is None:
        return False
    if cell is layer:
        return True
    return any(c is layer for c in getattr(cell, "cells", []) or [])


def _replace(rec: CallRecord, **changes: Any) -> CallRecord:
    import dataclasses

    return dataclasses.replace(rec, **changes)


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if _shape(a) != _shape(b):
        return False
    na, nb = _to_numpy(a), _to_numpy(b)
    if na is None or nb is None:
        return False
    try:
        return bool(np.array_equal(na, nb.astype(na.dtype)))
    except Exception:
        return False


def _first_lines(msg: str, limit: int = 300) -> str:
    import re

    msg = re.sub(r"\x1b\[[0-9;]*m|\[[0-9;]*m", "", msg)
    msg = msg.split("Arguments received by", 1)[0]
    msg = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", msg)
    text = " ".join(line.strip() for line in msg.strip().splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- symbolic


def symbolic_records(model: Any) -> list[CallRecord]:
    """Call records read from a Functional model's graph, without running it.

    The masks are those Keras attached to the symbolic tensors when the model was
    built; what `call` received is unknown (`received_mask=None`, `observed=False`).
    """
    from . import _keras_internals as ki

    records: list[CallRecord] = []
    counts: dict[str, int] = {}
    inputs = ki.model_input_tensors(model) or []
    names = [getattr(t, "name", f"input_{i}") for i, t in enumerate(inputs)]
    sources = {id(t): (f"input:{n}", 0) for t, n in zip(inputs, names)}
    _walk_functional(model, "", None, 0, sources, counts, records, ki)
    return records


def _walk_functional(model, prefix, parent, depth, sources, counts, records, ki):
    for node in ki.functional_nodes(model):
        op, args, kwargs, outs = ki.node_parts(node)
        if not ki.is_layer(op):  # keras.ops recorded in the graph (inside compute_mask)
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
                    TensorInfo(n, _shape(t), _dtype(t), mask_info(m), s, si)
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
                supports_masking=ki.supports_masking(op),
                compute_mask_overridden=ki.compute_mask_overridden(op),
                call_accepts_mask=ki.call_accepts_mask(op),
                computed_mask=None,
                computed_mask_matches=None,
                mask_weakened=False,
                role=role,
                observed=False,
                is_container=bool(ki.direct_sublayers(op)),
                is_functional=inner is not None,
            )
        )
        if inner is not None:
            _walk_functional(inner, path + "/", call_id, depth + 1, sources, counts, records, ki)
        # Consumers of a nested model's outputs are fed by the container's call.
        for i, t in enumerate(outs):
            sources[id(t)] = (call_id, i)


# --------------------------------------------------------------------------- entry point


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

    from . import _keras_internals as ki

    root_error = None
    # One run at a time (a lock), never nested, from and back to the model's own state
    # (weights, RNN states): see `ki.instrumented_run`.
    with ki.instrumented_run(model), ki.silence_mask_warnings():
        tracer = Tracer(model, [i.name for i in model_inputs])
        with (
            ki.patched_instance_calls(tracer.layers, tracer.make_call),
            ki.patched_input_standardization(tracer.layers, tracer.on_standardized_inputs),
        ):
            with ki.patched_layer_call(tracer.make_dunder):
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
    """Orders records so that every producer precedes its consumers (stable)."""
    ids = {r.id for r in records}
    placed: set[str] = set()
    ordered: list[CallRecord] = []
    pending = list(records)
    while pending:
        progress = False
        rest = []
        for r in pending:
            deps = {t.source for t in r.inputs if t.source in ids and t.source != r.id}
            if r.parent in ids:
                deps.add(r.parent)
            if deps <= placed:
                ordered.append(r)
                placed.add(r.id)
                progress = True
            else:
                rest.append(r)
        pending = rest
        if not progress:
            ordered.extend(pending)
            break
    return ordered
