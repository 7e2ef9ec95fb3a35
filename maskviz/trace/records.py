"""The trace's data: frozen records of calls, tensors, masks, inputs and outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maskviz._strenum import StrEnum
from maskviz.inputs import ModelInput


class Role(StrEnum):
    """A call's mask role, from what was observed (see `maskviz.trace.classify_role`)."""

    GENERATOR = "generator"
    """No mask came in, one goes out: it makes a mask."""
    PROPAGATOR = "propagator"
    """A mask came in and the same goes out."""
    MODIFIER = "modifier"
    """A mask came in and another goes out."""
    CONSUMER = "consumer"
    """A mask came in and was used (received by `call`); none goes out."""
    DESTROYER = "destroyer"
    """A mask came in, was not used, and none goes out: it is lost here."""
    NONE = "none"
    """No mask in or out."""


class Via(StrEnum):
    """How a call was made."""

    DUNDER_CALL = "__call__"
    """A normal call, through `Layer.__call__` (Keras attaches and delivers masks)."""
    CALL = "call"
    """A direct `layer.call(...)` from a wrapper such as `TimeDistributed`."""


class CallKind(StrEnum):
    """What was called."""

    LAYER = "layer"
    OP = "op"
    """A `keras.ops` call or tensor operator recorded as a node of a Functional graph."""


ROLES = tuple(Role)


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
        produced_mask: the mask the tensor carried when `source` returned it, when
            that differs from `mask` (the one it carried when this call consumed
            it); `None` otherwise. See `mask_changed`.
        mask_changed: the tensor's mask changed between its production and this
            consumption (removed, replaced or added).
        changed_by: the call that changed it (a call in between that took the same
            tensor and rewrote its mask), or `None` when maskviz did not see who.
        mask_like: the tensor holds a mask's values: boolean, or 0/1 values derived
            by ops from a boolean tensor or a mask (`ops.cast(mask, "float32")`).
    """

    arg: str
    shape: tuple[int | None, ...]
    dtype: str
    mask: MaskInfo | None = None
    source: str | None = None
    source_index: int = 0
    produced_mask: MaskInfo | None = None
    mask_changed: bool = False
    changed_by: str | None = None
    mask_like: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "arg": self.arg,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "mask": self.mask.to_dict() if self.mask else None,
            "source": self.source,
            "source_index": self.source_index,
            "mask_changed": self.mask_changed,
            "produced_mask": self.produced_mask.to_dict() if self.produced_mask else None,
            "changed_by": self.changed_by,
            "mask_like": self.mask_like,
        }


@dataclass(frozen=True)
class CallRecord:
    """One call of one layer, or of one `keras.ops` operation in a Functional graph.

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
        role: the call's `Role`: generator, propagator, modifier, consumer, destroyer,
            or none.
        via: `Via.DUNDER_CALL` ("__call__") for a normal call, `Via.CALL` ("call") for
            a direct `layer.call(...)` from a wrapper such as `TimeDistributed` (recorded
            once, for the first step, with `steps` the number of such calls).
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
        kind: `CallKind.LAYER`, or `CallKind.OP` for a `keras.ops` call or tensor operator
            recorded as a node of a Functional graph (`ops.mean(x)`, `x * 2`, `x[:, 1:]`).
        changed_masks: the input args whose attached mask this call changed while it
            ran (MultiHeadAttention removes the masks of its query, value and key).
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
    role: Role
    via: Via = Via.DUNDER_CALL
    steps: int = 1
    observed: bool = True
    error: str | None = None
    is_container: bool = False
    is_functional: bool = False
    reverses_time: bool = False
    mask_unchanged: bool | None = None
    kind: CallKind = CallKind.LAYER
    changed_masks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Plain strings (records built by hand, in tests) become their enum members.
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "via", Via(self.via))
        object.__setattr__(self, "kind", CallKind(self.kind))

    @property
    def is_op(self) -> bool:
        return self.kind == CallKind.OP

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
            "kind": self.kind,
            "changed_masks": list(self.changed_masks),
        }


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
