"""MV120 mask-changed-in-transit: compares, for every tensor a call consumes, the mask the
tensor carried when the call that produced it returned it with the mask it carries when
it is consumed.

The rule's docstring is its documentation (`maskviz explain MV120`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import call_label, calls_downstream, fmt_shape, leaking_calls


@rule("MV120", "mask-changed-in-transit", Severity.INFO)
def mask_changed_in_transit(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    Compares, for every tensor a call consumes, the mask the tensor carried when
    the call that produced it returned it with the mask it carries when it is
    consumed. When they differ, a call in between rewrote the mask attached to a
    tensor it only read: the finding is on that call, and names the consumers that
    got the tensor with the changed mask.

    ## Why is this bad?
    Keras attaches masks to tensor objects. A layer that clears or replaces the
    mask of one of its *inputs* (MultiHeadAttention removes the masks of its query,
    key and value) changes what every later consumer of the same tensor sees: a
    pooling op or a residual branch computed after it silently reads padding.
    The result depends on the order in which Keras happens to run the graph.

    Severity follows what was observed: an error when a consumer that takes a mask
    got none, or the oracle saw padding change an output there; info when every
    consumer still got its mask another way (a Functional model replays the
    `mask=` argument Keras recorded when it was built).

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    a = keras.layers.MultiHeadAttention(4, 16)(x, x)   # clears x's mask
    p = keras.layers.GlobalAveragePooling1D()(x)       # may get x without a mask
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    mask = keras.ops.not_equal(tokens, 0)
    a = keras.layers.MultiHeadAttention(4, 16)(x, x)
    p = keras.layers.GlobalAveragePooling1D()(x, mask=mask)   # explicit, order-proof
    ```

    ## Fix safety
    *Display-only*: passing the mask explicitly is a model change maskviz leaves to
    the user.
    """
    by_id = ctx.trace.by_id()
    groups: dict[str, list[tuple[Any, Any]]] = {}
    for call in ctx.trace.calls:
        for t in call.inputs:
            if t.mask_changed:
                groups.setdefault(t.changed_by or call.id, []).append((call, t))
    for where, hits in groups.items():
        changer = by_id.get(where)
        first_call, first_t = hits[0]
        producer = by_id.get(first_t.source) if first_t.source else None
        consumers = []
        for c, _t in hits:
            if c.path not in consumers:
                consumers.append(c.path)
        before = first_t.produced_mask
        after = first_t.mask
        what = (
            "removed"
            if after is None
            else ("added" if before is None else f"replaced with mask {fmt_shape(after.shape)}")
        )
        lost = [
            c
            for c, t in hits
            if t.mask is None
            and (
                (c.call_accepts_mask and c.observed and not c.received)
                or not c.output_masked
                and any(d.call_accepts_mask and not d.received for d in calls_downstream(ctx, c))
            )
        ]
        related = tuple(c.id for c, _ in hits)
        target = changer if changer is not None else first_call
        leaks = leaking_calls(ctx)
        harmed = lost or any(r in leaks for r in related)
        sev = Severity.ERROR if harmed else Severity.INFO
        by = (
            f"{call_label(changer)} rewrote it while it ran (it changed the masks of its inputs "
            f"{', '.join(f'`{a}`' for a in changer.changed_masks)})"
            if changer is not None and changer is not first_call
            else "a step maskviz did not see changed it"
        )
        src = f"`{producer.path}`" if producer is not None else f"`{first_t.source}`"
        yield ctx.finding(
            target,
            f"The mask on {src}'s output was {what} between its production and its use: "
            f"produced with mask {fmt_shape(before.shape) if before else 'none'}, consumed by "
            f"{', '.join(f'`{p}`' for p in consumers)} with "
            f"{'no mask' if after is None else 'mask ' + fmt_shape(after.shape)}; {by}. "
            "Expected every consumer to see the mask the tensor was produced with.",
            suggestion=(
                "Pass the mask to the later consumers explicitly (`mask=`), or compute them "
                "from their own copy of the tensor; do not rely on the order Keras runs "
                "the graph in."
            ),
            severity=sev,
            fix=Fix(Applicability.DISPLAY_ONLY, "pass the mask explicitly to later consumers"),
            details=(("consumers", tuple(consumers)), ("lost_at", tuple(c.path for c in lost))),
        )
