"""Candidate repairs for a finding, from the most specific to the most generic.

A candidate is a typed, frozen object naming the *site* it changes (a layer path
or the name of an op node of a Functional graph) and how: a `clone_function`
replacement (`replace`) or a `call_function` change (`call`) for
`keras.models.clone_model`. Nothing here decides whether a candidate is right:
`maskviz.fixes.verify` applies it to a clone and measures.

Order (the first candidate that verifies wins):

1. `UseTwin` / `PerTimestepMask`: the `maskviz.layers` twin of the layer
   (`maskviz.fixes.twins`, by `isinstance`).
2. `PassMask`: pass the sequence's own mask with `mask=` to a call that did not get it.
3. `MaskedReduction`: a masked mean/sum/max/min for an op that reduces over time.
4. `ZeroThenRemask`: zero the padded steps before a layer that mixes time steps (or
   flattens them), then put the mask back on its output when the time axis is kept.
5. `Remask`: put the mask of the masked inputs back on the output of a call that
   dropped it (a merge of masked and unmasked inputs, a per-step layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

Invoke = Callable[[tuple, dict], Any]

# How many sites upstream of a finding's own call are searched for a repair.
UPSTREAM_SITES = 3


def _safe_name(site: str) -> str:
    return site.replace("/", "_").replace("#", "_")


def _tensors(x: Any) -> list[Any]:
    from .. import _keras_internals as ki

    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (list, tuple)):
        out: list[Any] = []
        for v in x:
            out.extend(_tensors(v))
        return out
    return [x] if ki.is_tensor(x) else []


def _sequence(args: tuple, kwargs: dict) -> Any:
    """The first tensor of the call (its sequence input)."""
    found = _tensors(list(args)) or _tensors([v for k, v in kwargs.items() if k != "mask"])
    return found[0] if found else None


def _input_masks(args: tuple, kwargs: dict) -> list[Any]:
    """The masks the call's tensor inputs carry (first positional argument: a
    list input is a merge, each element may carry one)."""
    from .. import _keras_internals as ki

    first = args[0] if args else next(iter(kwargs.values()), None)
    tensors = _tensors(first) if first is not None else []
    return [m for m in (ki.get_mask(t) for t in tensors) if m is not None]


class NotApplicable(Exception):
    """A candidate cannot be applied to the rebuilt graph (with the reason)."""


@dataclass(frozen=True)
class Candidate:
    """A repair at one site. Subclasses implement `replace` or `call`.

    Attributes:
        site: the path of the layer (`encoder/lstm`) or the name of the op node
            (`mean`) it changes.
        call_index: which call of a shared layer (0 for the first).
    """

    site: str
    call_index: int = 0
    kind: ClassVar[str] = "candidate"
    needs_functional: ClassVar[bool] = True

    def describe(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def replace(self, layer: Any) -> Any:
        """The `clone_function` replacement of the site's layer, or `None`."""
        return None

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        """The `call_function` change: calls `invoke(args, kwargs)` its own way."""
        return invoke(args, kwargs)

    @property
    def label(self) -> str:
        return f"{self.kind} at `{self.site}`"


@dataclass(frozen=True)
class UseTwin(Candidate):
    """Replace the layer with its mask-aware twin (same config and weights)."""

    twin: str = ""
    kind: ClassVar[str] = "twin"
    needs_functional: ClassVar[bool] = False

    def describe(self) -> str:
        return f"replace `{self.site}` with maskviz.layers.{self.twin} (same weights)"

    def replace(self, layer: Any) -> Any:
        from .twins import build_twin

        return build_twin(layer)


@dataclass(frozen=True)
class PerTimestepMask(UseTwin):
    """Make the mask per timestep: `Masking` -> `TimestepMasking`."""

    kind: ClassVar[str] = "timestep-mask"

    def describe(self) -> str:
        return (
            f"make the mask of `{self.site}` per timestep: maskviz.layers.{self.twin} "
            "(one mask entry per step, whatever the input's rank)"
        )


@dataclass(frozen=True)
class PassMask(Candidate):
    """Pass the sequence input's own mask explicitly with `mask=`."""

    kind: ClassVar[str] = "pass-mask"

    def describe(self) -> str:
        return f"pass the sequence input's own mask to `{self.site}` with `mask=`"

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        from .. import _keras_internals as ki

        first = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(first, (list, tuple)):
            mask: Any = [ki.get_mask(t) if ki.is_tensor(t) else None for t in first]
            if all(m is None for m in mask):
                mask = None
        else:
            seq = _sequence(args, kwargs)
            mask = ki.get_mask(seq) if seq is not None else None
        if mask is None:
            raise NotApplicable(f"the input of `{self.site}` carries no mask in the rebuilt graph")
        return invoke(args, {**kwargs, "mask": mask})


@dataclass(frozen=True)
class MaskedReduction(Candidate):
    """Replace a reduction over time by `maskviz.layers.MaskedReduce`."""

    reduction: str = "mean"
    keepdims: bool = False
    kind: ClassVar[str] = "masked-reduction"

    def describe(self) -> str:
        return (
            f"reduce over kept steps only: `{self.site}` -> "
            f"maskviz.layers.MaskedReduce({self.reduction!r})"
        )

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        from ..layers import MaskedReduce

        seq, mask = _masked_input(self.site, args, kwargs)
        layer = MaskedReduce(self.reduction, self.keepdims, name=f"{_safe_name(self.site)}_masked")
        return layer(seq, mask=mask)


@dataclass(frozen=True)
class ZeroThenRemask(Candidate):
    """Zero the padded steps before the call; put the mask back on its output when
    the output keeps the time axis (same length)."""

    remask: bool = True
    carry: bool = False
    kind: ClassVar[str] = "zero-padded"

    def describe(self) -> str:
        if self.carry:
            tail = ", and mask its output with the mask passed through the same layer"
        else:
            tail = ", then put the mask back on its output" if self.remask else ""
        return f"zero the padded steps before `{self.site}`{tail}"

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        from ..layers import ApplyMask, ZeroPadded

        seq, mask = _masked_input(self.site, args, kwargs)
        name = _safe_name(self.site)
        zeroed = ZeroPadded(name=f"{name}_zero_padded")(seq)
        args, kwargs = _swap(args, kwargs, seq, zeroed)
        out = invoke(args, kwargs)
        if not self.remask:
            return out
        outs = _tensors(out)
        if len(outs) != 1 or len(outs[0].shape) < 2:
            raise NotApplicable(f"`{self.site}` has no single output with a time axis")
        if self.carry or outs[0].shape[1] != seq.shape[1]:
            mask = _carried_mask(invoke, args, kwargs, seq, mask, self.site)
        return ApplyMask(name=f"{name}_mask")(out, mask=mask)


def _carried_mask(invoke: Invoke, args: tuple, kwargs: dict, seq: Any, mask: Any, site: str) -> Any:
    """The mask of a layer's output when the layer changes the time axis: the same
    (weightless) layer applied to the mask as a 0/1 tensor; a step is kept when any
    kept step reaches it."""
    from keras import ops

    from .. import _keras_internals as ki
    from ..layers._masks import as_time_mask

    layer = getattr(invoke, "layer", None)
    if layer is None or not ki.is_layer(layer) or layer.weights:
        raise NotApplicable(
            f"`{site}` changes the time axis and has weights, so the mask cannot be "
            "carried through it"
        )
    twin = type(layer).from_config(layer.get_config())
    twin.name = f"{_safe_name(site)}_on_mask"
    m = ops.cast(ops.expand_dims(as_time_mask(mask), -1), "float32")
    if len(seq.shape) == 3:
        m = ops.repeat(m, seq.shape[-1], axis=-1) if seq.shape[-1] else m
    carried = twin(m)
    if len(carried.shape) != 3:
        raise NotApplicable(f"`{site}` on the mask gave shape {carried.shape}")
    return ops.greater(ops.max(carried, axis=-1), 0.0)


@dataclass(frozen=True)
class MergeMask(Candidate):
    """Give a merge's unmasked inputs the mask of its masked ones (`ApplyMask`
    before the merge), so the merge's own output mask keeps only the steps every
    masked input keeps."""

    kind: ClassVar[str] = "merge-mask"

    def describe(self) -> str:
        return f"give the unmasked inputs of `{self.site}` the mask of its masked inputs"

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        from .. import _keras_internals as ki
        from ..layers.pooling import _combined

        first = args[0] if args else None
        if not isinstance(first, (list, tuple)) or len(first) < 2:
            raise NotApplicable(f"`{self.site}` is not called on a list of inputs")
        masks = [ki.get_mask(t) if ki.is_tensor(t) else None for t in first]
        present = [m for m in masks if m is not None]
        if not present or len(present) == len(masks):
            raise NotApplicable(f"`{self.site}` does not merge masked and unmasked inputs")
        from ..layers import ApplyMask

        combined = _combined(present)
        name = _safe_name(self.site)
        given = [
            t if m is not None else ApplyMask(name=f"{name}_input{i}_mask")(t, mask=combined)
            for i, (t, m) in enumerate(zip(first, masks))
        ]
        return invoke((type(first)(given), *args[1:]), kwargs)


@dataclass(frozen=True)
class Remask(Candidate):
    """Put the mask of the masked inputs back on the call's output (steps kept by
    every input that has a mask)."""

    kind: ClassVar[str] = "remask"

    def describe(self) -> str:
        return f"put the mask of the masked inputs back on the output of `{self.site}`"

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        from ..layers import ApplyMask

        masks = _input_masks(args, kwargs)
        if not masks:
            raise NotApplicable(f"no input of `{self.site}` carries a mask in the rebuilt graph")
        out = invoke(args, kwargs)
        outs = _tensors(out)
        time = _sequence(args, kwargs).shape[1]
        if len(outs) != 1 or len(outs[0].shape) < 2 or outs[0].shape[1] != time:
            raise NotApplicable(
                f"the output of `{self.site}` does not keep the input's time axis, so "
                "the input's mask cannot be put back on it"
            )
        return ApplyMask(name=f"{_safe_name(self.site)}_mask")(
            out, mask=masks if len(masks) > 1 else masks[0]
        )


@dataclass(frozen=True)
class PackReal(Candidate):
    """For a call whose real outputs move with the side of the padding: zero the
    padded steps, move each row's real steps to the front (as right padding has them)
    before the call, and, when the call keeps the time axis, put its output steps back
    where they were, with the input's mask. Rows without padding, and right-padded
    rows, see the call exactly as before."""

    kind: ClassVar[str] = "pack-real"

    def describe(self) -> str:
        return (
            f"zero the padded steps and move the real steps to the front before "
            f"`{self.site}` (as right padding has them), then put them back in place"
        )

    def call(self, invoke: Invoke, args: tuple, kwargs: dict) -> Any:
        from ..layers import ApplyMask, ZeroPadded
        from .packing import PackSteps, UnpackSteps

        seq, mask = _masked_input(self.site, args, kwargs)
        name = _safe_name(self.site)
        zeroed = ZeroPadded(name=f"{name}_zero_padded")(seq)
        packed = PackSteps(name=f"{name}_pack")(zeroed, mask=mask)
        args, kwargs = _swap(args, kwargs, seq, packed)
        out = invoke(args, kwargs)
        outs = _tensors(out)
        if len(outs) != 1:
            raise NotApplicable(f"`{self.site}` has more than one output")
        y = outs[0]
        if len(y.shape) >= 2 and y.shape[1] == seq.shape[1] and y.shape[1] is not None:
            return UnpackSteps(name=f"{name}_unpack")(y, mask=mask)
        if len(y.shape) >= 3:  # the time axis changed: its mask goes through the call
            from keras import ops

            from ..layers._masks import as_time_mask

            steps = ops.expand_dims(ops.cast(as_time_mask(mask), "float32"), -1)
            moved = PackSteps(name=f"{name}_pack_mask")(steps, mask=mask)
            packed_mask = ops.greater(ops.squeeze(moved, -1), 0.5)
            carried = _carried_mask(invoke, args, kwargs, packed, packed_mask, self.site)
            return ApplyMask(name=f"{name}_mask")(y, mask=carried)
        return out


def _swap(args: tuple, kwargs: dict, old: Any, new: Any) -> tuple[tuple, dict]:
    def sub(x: Any) -> Any:
        if x is old:
            return new
        if isinstance(x, list):
            return [sub(v) for v in x]
        if isinstance(x, tuple):
            return tuple(sub(v) for v in x)
        return x

    return tuple(sub(a) for a in args), {k: sub(v) for k, v in kwargs.items()}


# --------------------------------------------------------------------------- proposing


def _masked_input(site: str, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """The call's sequence input and the mask it carries in the rebuilt graph.

    Raises:
        NotApplicable: the input carries no mask there (a layer upstream drops it).
    """
    from .. import _keras_internals as ki

    seq = _sequence(args, kwargs)
    mask = ki.get_mask(seq) if seq is not None else None
    if mask is None:
        raise NotApplicable(f"the input of `{site}` carries no mask in the rebuilt graph")
    return seq, mask
