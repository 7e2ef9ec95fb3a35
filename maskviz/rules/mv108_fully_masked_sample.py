"""MV108 fully-masked-sample: the leak oracle appends two samples in which every step is
masked (tokens all padding, or the mask source masking every step) and whose padding
values differ.

The rule's docstring is its documentation (`maskviz explain MV108`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Applicability, Finding, Fix, Severity
from . import Context, rule
from .queries import fmt_pct, fmt_tensor, source_label


@rule("MV108", "fully-masked-sample", Severity.WARNING)
def fully_masked_sample(ctx: Context) -> Iterator[Finding]:
    """
    ## What it does
    The leak oracle appends two samples in which every step is masked (tokens all
    padding, or the mask source masking every step) and whose padding values
    differ. It reports the first call where such a sample gives NaN or inf, and
    the first call where its output is not *neutral*: the two samples, identical
    except for their padding values, give different outputs at the positions the
    oracle compares (see MV107). A neutral output carries no information from the
    padding; it need not be zero (a `Dense` bias after a masked RNN's zero state
    is fine).

    ## Why is this bad?
    Empty sequences happen (a blank document, a sensor with no readings, a batch
    sliced to a short window). A NaN from one empty sample poisons the whole
    batch: Keras weights the loss with the mask by multiplying, and NaN * 0 is
    NaN. A non-neutral output means the prediction for an empty sample is
    whatever the padding happened to contain. The classic case is a masked
    average (`GlobalAveragePooling1D` with a mask) that divides by zero kept
    steps.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    y = keras.layers.GlobalAveragePooling1D()(x)   # 0 / 0 for an all-padding row
    ```

    Use instead:
    ```python
    x = keras.layers.Embedding(1000, 16, mask_zero=True)(tokens)
    m = ops.cast(ops.not_equal(tokens, 0), x.dtype)[..., None]
    y = ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)  # 0 when empty
    ```
    or drop empty samples from the data.

    NaN/inf is a warning; a non-neutral output is info.

    ## Fix safety
    *Display-only*: what an empty sample should give depends on the model.
    """
    oracle = ctx.oracle
    if oracle is None:
        return
    by_id = ctx.trace.by_id()
    seen: set[tuple[str, str]] = set()
    for src in oracle.sources:
        for issue in src.fully_masked:
            key = (issue.call_id, issue.kind)
            call = by_id.get(issue.call_id)
            if key in seen or call is None:
                continue
            seen.add(key)
            outs = ", ".join(f"`{o}`" for o in issue.outputs) or "no output"
            source = source_label(ctx, src.source)
            out = call.outputs[0] if call.outputs else None
            if issue.kind == "nonfinite":
                msg = (
                    f"A sample whose every step is masked gives NaN/inf at `{call.path}` "
                    f"({call.class_name}): {issue.count} non-finite values in its output "
                    f"{fmt_tensor(out)}, reaching model "
                    f"output{'s' if len(issue.outputs) > 1 else ''}"
                    f" {outs}. Received: every step of {source} masked. Expected finite "
                    "values (NaN * 0 is NaN, so the masked loss becomes NaN)."
                )
                suggestion = (
                    "Guard the reduction for empty samples: divide by "
                    "`ops.maximum(count, 1)` instead of the number of kept steps, or drop "
                    "samples with no kept step from the data."
                    if "Average" in call.class_name or "Pooling" in call.class_name
                    else f"Make `{call.name}` return a finite constant when no step is kept "
                    "(guard divisions and all-masked softmaxes), or drop empty samples."
                )
            else:
                msg = (
                    f"A sample whose every step is masked gets an output from `{call.path}` "
                    f"({call.class_name}) that depends on its padding values: two such samples "
                    f"differing only in padding differ by up to {fmt_pct(issue.change)} of the "
                    f"output's scale ({issue.count} values), reaching {outs}. Received: every "
                    f"step of {source} masked, output {fmt_tensor(out)}. Expected the same "
                    "output for any padding."
                )
                suggestion = (
                    f"Make `{call.name}` give a constant for empty samples, e.g. zero its "
                    "output where the mask keeps no step (`ops.where(ops.any(mask, axis=1)"
                    "[:, None], y, 0)`), or drop empty samples from the data."
                )
            yield ctx.finding(
                call,
                msg,
                suggestion=suggestion,
                # NaN poisons a batch's loss; a padding-dependent output for an empty
                # sample is worth knowing but often harmless (BERT's pooled output).
                severity=Severity.WARNING if issue.kind == "nonfinite" else Severity.INFO,
                fix=Fix(Applicability.DISPLAY_ONLY, "handle samples with no kept step"),
                details=(
                    ("kind", issue.kind),
                    ("outputs", issue.outputs),
                    ("count", issue.count),
                    ("source", src.source),
                ),
            )
