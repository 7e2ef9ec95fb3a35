"""The overlap policy: one cause, one finding.

Rules run independently; none runs another or looks at another's findings. After
every rule ran, `resolve` drops the findings that another finding already reports
the cause of. The policy, in the order it applies:

1. **A wrapper and its inner layers (MV102).** When a layer with its own `call` (not
   a nested model) did not get its mask, the layers it calls with the same sequence
   (a `Bidirectional`'s forward and backward RNNs) did not either: MV102 is kept on
   the outermost such layer and dropped on the calls inside it.
2. **A Keras layer's compute_mask (MV111 under MV101).** MV111 at one of Keras's own
   layers (an `LSTM` on a Keras whose RNNs do not pass masks on) is dropped where
   MV101 reports the same call: MV101 says that the mask is lost and gives the same
   advice (what this Keras does, the `maskviz.layers` twin). At a user's own layer
   both stay: MV111 says which of `call` and `compute_mask` to fix.
3. **An unused mask that stops at a drop (MV110 under MV101/MV102).** MV110 (a mask
   made and never used) is dropped when MV101 or MV102 reports one of the calls where
   that mask stops (`Finding.related`): the mask is lost there, and that finding
   says how to keep it.

Conventions that are a rule's own precondition stay in the rule: MV101 and MV111
skip the calls inside a layer that takes the mask itself (that layer's own code
decides what comes out), and MV101 names a nested model only when none of its inner
calls dropped the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..findings import Finding
from .queries import keras_builtin

if TYPE_CHECKING:
    from . import Context


def _inner_not_delivered(ctx: Context, findings: list[Finding]) -> list[Finding]:
    """Policy 1: MV102 inside a layer (not a model) that has a kept MV102 is dropped.
    Findings are in trace order, so a container comes before what it calls."""
    kept: set[str] = set()
    out = []
    for f in findings:
        if f.rule == "MV102":
            parent = ctx.graph.record(ctx.graph.container(f.call_id) or "")
            if parent is not None and parent.id in kept and not parent.is_functional:
                continue
            kept.add(f.call_id)
        out.append(f)
    return out


def _builtin_compute_mask(ctx: Context, findings: list[Finding]) -> list[Finding]:
    """Policy 2: MV111 at a Keras layer where MV101 is reported is dropped."""
    dropped = {f.call_id for f in findings if f.rule == "MV101"}

    def redundant(f: Finding) -> bool:
        if f.rule != "MV111" or f.call_id not in dropped:
            return False
        return keras_builtin(ctx, ctx.graph.record(f.call_id)) is not None

    return [f for f in findings if not redundant(f)]


def _unused_mask_stops_at_drop(ctx: Context, findings: list[Finding]) -> list[Finding]:
    """Policy 3: MV110 whose mask stops where MV101 or MV102 is reported is dropped."""
    lost = {f.call_id for f in findings if f.rule in ("MV101", "MV102")}
    return [f for f in findings if not (f.rule == "MV110" and lost & set(f.related))]


POLICY: tuple[Callable[[Context, list[Finding]], list[Finding]], ...] = (
    _inner_not_delivered,
    _builtin_compute_mask,
    _unused_mask_stops_at_drop,
)


def resolve(ctx: Context, findings: list[Finding]) -> list[Finding]:
    """The findings (in trace order) left after the overlap policy, in the same order."""
    for step in POLICY:
        findings = step(ctx, findings)
    return findings
