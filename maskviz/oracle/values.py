"""The values invariance: does what sits in the padding leak into the outputs?

Structure can be argued about; behaviour cannot. For each *mask source* the oracle
re-runs the model once with the values at the masked positions replaced by noise
while the mask stays exactly the same, and compares every call's output with the
baseline (the probe run in `Trace.values`) at the positions that matter:

- where the call's own output mask keeps (the mask must cover the output's leading
  axes, e.g. `(batch, time)` for `(batch, time, features)`);
- else, when the output is still aligned with the source's `(batch, time)` axes
  (it was derived from the source through calls that kept those two axes, e.g.
  `Conv1D(padding="same")` after an `Embedding`), where the *source's* mask keeps:
  the padded steps of such a tensor carry garbage by design, its real steps must
  not change;
- else, when its time axis was shortened (pooling, a `valid` or strided
  convolution), the steps made of real input only (`compare._resampled_keep`);
- else (time was pooled, flattened or reshaped away) the whole tensor.

A call *changed* when `max |perturbed - baseline| > ATOL + RTOL * max |baseline|`
over those positions. Mask sources are:

- every generator call's output (`Embedding(mask_zero=True)`, `Masking`, any layer
  that makes a mask from nothing): its layer's `call` is wrapped for the run (an
  instance attribute, removed afterwards, even on error) to replace the values at
  masked positions and re-attach the very same mask. Perturbing the *input* instead
  would change the mask (a padded token 0 or a step equal to `mask_value` is what
  makes the mask). A generator that emits exact zeros at every padded step of a
  padded float input (`Masking`) is not perturbed: no input can put anything else
  there (see `sources._emits_zeros`);
- every data input paired with an explicit mask input (`padding_mask` with
  `token_ids`): that input is perturbed where the mask is off (token ids: other ids
  that occur in the batch; floats: noise), the mask input is left alone.

Leaks are localised: the *first* leaking calls are changed calls none of whose
upstream calls changed, on a chain of changed calls that reaches a changed model
output. Changes that never reach an output's kept positions (attention
probabilities of padded query rows, say) are recorded but are not leaks; calls that
only inherit a change from upstream are not separate leaks.

The same run also checks *fully masked samples* (MV108): two extra rows are
appended to the batch in which the source masks every step and the padding values
differ between the two rows. Their outputs must be finite, and must not depend on
the padding values (the two rows' outputs are equal at the positions compared as
above). If the model does not accept a batch of 6 rows, the run is repeated without
them and the check is skipped. So the oracle costs one forward pass per mask source.

Everything is seeded: the same model, probe and seed give the same result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .compare import _aligned, _compare_calls, _first_calls, _fully_masked, _owner, _row_layouts
from .perturb import _generator_wrapper, _perturbed_feed
from .results import (
    EXTRA_ROWS,
    FullyMaskedIssue,
    Leak,
    OracleResult,
    SourceResult,
)
from .sources import _build_graph, _find_sources, _Graph, _Source

# --------------------------------------------------------------------------- driver


def run_oracle(model: Any, probe: Any, trace: Any, *, seed: int = 0) -> OracleResult:
    """Perturbs each mask source's padded values and reports where padding leaks.

    Args:
        model: the Keras model the trace came from (left exactly as it was).
        probe: the probe (or `--data`) the trace ran on.
        trace: the baseline trace; its `values` and `masks` are the baseline.
        seed: seed of the noise.

    Returns:
        An `OracleResult`: per source, the calls that changed, the first leaking
        calls and the outputs they reach; the fully-masked-sample check; and why
        anything was skipped.
    """
    from .. import _keras_internals as ki
    from ..trace import run_trace

    skipped: list[tuple[str, str]] = []
    if trace.error:
        return OracleResult((), (("model", f"the probe run failed: {trace.error}"),), seed=seed)
    graph = _build_graph(trace, model)
    sources = _find_sources(model, probe, trace, graph, skipped)
    if not sources and not skipped:
        skipped.append(("model", "no mask source: no layer makes a mask, no explicit mask input"))
    results: list[SourceResult] = []
    runs = 0
    batch = _batch(probe)
    for k, src in enumerate(sources):
        if src.kind == "generator":
            src.extra = {"value": np.asarray(trace.values[src.key][0])}
        pert = None
        extra_used = 0
        for extra in (EXTRA_ROWS, 0):
            rng = np.random.default_rng([seed, k, extra])
            values = _perturbed_feed(probe, src, rng, extra)
            runs += 1
            if src.kind == "generator":
                factory, state = _generator_wrapper(src, rng, extra)
                with ki.patched_instance_calls([src.layer], factory):
                    pert = run_trace(model, probe.inputs, probe.feed(values))
                if not state["done"] and pert.error is None:
                    pert = None
                    skipped.append((src.key, f"`{src.call.path}` was not called as traced"))
                    break
            else:
                pert = run_trace(model, probe.inputs, probe.feed(values))
            if pert.error is None:
                extra_used = extra
                break
            if extra:
                skipped.append(
                    (
                        f"{src.key}:fully-masked",
                        f"the model did not run on {batch + extra} rows ({pert.error}); "
                        "the fully-masked-sample check was skipped",
                    )
                )
            else:
                skipped.append((src.key, f"the perturbed run failed: {pert.error}"))
                pert = None
        if pert is None or pert.error is not None:
            continue
        if src.kind == "generator":
            got = (pert.masks.get(src.key) or (None,))[0]
            if got is None or not np.array_equal(np.asarray(got)[:batch].astype(bool), src.mask):
                skipped.append(
                    (src.key, f"perturbing `{src.call.path}` changed its mask; not compared")
                )
                continue
        results.append(_analyse(trace, pert, graph, src, batch, extra_used, skipped))
    return OracleResult(sources=tuple(results), skipped=tuple(skipped), seed=seed, runs=runs)


def _batch(probe: Any) -> int:
    for v in probe.values.values():
        v = np.asarray(v)
        if v.ndim:
            return int(v.shape[0])
    return 0


def _fully_masked_ok(
    pert: Any, src: _Source, batch: int, extra: int, skipped: list[tuple[str, str]]
) -> int:
    """Whether the appended rows are fully masked at the source (0 if not)."""
    if src.kind != "generator":
        return extra
    got = (pert.masks.get(src.key) or (None,))[0]
    if got is not None and not np.asarray(got)[batch:].astype(bool).any():
        return extra
    skipped.append(
        (
            f"{src.key}:fully-masked",
            f"`{src.call.path}` did not mask every step of the all-padding rows (its "
            "input is computed by the model, not a padded model input); the "
            "fully-masked-sample check was skipped for it",
        )
    )
    return 0


def _analyse(
    trace: Any,
    pert: Any,
    graph: _Graph,
    src: _Source,
    batch: int,
    extra: int,
    skipped: list[tuple[str, str]],
) -> SourceResult:
    aligned = _aligned(trace, src)
    changes = _compare_calls(trace, pert, graph, src, aligned, batch)
    changed_calls = {cid for cid, _ in changes}
    bad_outputs = [(n, c, i) for n, c, i in graph.output_keys if (c, i) in changes]
    layouts = _row_layouts(src.keep2)
    leaks = []
    by_id = trace.by_id()
    seen: set[str] = set()
    for f, reached in _first_calls(graph, changed_calls, bad_outputs):
        f = _owner(by_id, f, changed_calls)
        if f in seen:
            continue
        seen.add(f)
        mine = [ch for (cid, _), ch in changes.items() if cid == f]
        # The rows that matter are those where the reached outputs change too (a
        # leak can travel through padded steps into rows its first call keeps clean).
        names = {n for n, _ in reached}
        out_rows = {r for n, c, i in bad_outputs if n in names for r in changes[(c, i)].rows}
        rows = tuple(sorted({r for ch in mine for r in ch.rows} | out_rows))
        leaks.append(
            Leak(
                call_id=f,
                change=max(ch.change for ch in mine),
                rows=rows,
                layouts=tuple(sorted({layouts[r] for r in rows if r < len(layouts)})),
                outputs=tuple(n for n, _ in reached),
                paths=tuple(p[p.index(f) :] if f in p else p for _, p in reached),
            )
        )
    reached_outputs = _reached(trace, graph, src)
    issues: list[FullyMaskedIssue] = []
    if extra:
        extra = _fully_masked_ok(pert, src, batch, extra, skipped)
    if extra:
        nonfinite, nonneutral, bad_nf, bad_nn = _fully_masked(
            trace, pert, graph, src, aligned, batch
        )
        nf_outputs = [(n, c, i) for n, c, i in graph.output_keys if (c, i) in bad_nf]
        owned: set[str] = set()
        for f, reached in _first_calls(graph, set(nonfinite), nf_outputs):
            count = nonfinite[f]
            f = _owner(by_id, f, set(nonfinite))
            if f in owned:
                continue
            owned.add(f)
            issues.append(FullyMaskedIssue(f, "nonfinite", tuple(n for n, _ in reached), count))
        nn_outputs = [(n, c, i) for n, c, i in graph.output_keys if (c, i) in bad_nn]
        # A leak of this source already explains what happens downstream of it
        # (Conv1D drops the mask, so the LSTM after it reads padding even when
        # every step is padding): only report non-neutral calls it does not reach.
        explained = _downstream_closure(graph, {lk.call_id for lk in leaks})
        for f, reached in _first_calls(graph, set(nonneutral), nn_outputs):
            count, rel = nonneutral[f]
            f = _owner(by_id, f, set(nonneutral))
            if f in explained or f in nonfinite or f in owned:
                continue  # already reported as a leak / as non-finite
            owned.add(f)
            issues.append(
                FullyMaskedIssue(f, "non-neutral", tuple(n for n, _ in reached), count, rel)
            )
    return SourceResult(
        source=src.key,
        kind=src.kind,
        mask_input=src.mask_input,
        masked_positions=int((~src.keep2).sum()),
        row_layouts=layouts,
        outputs_reached=reached_outputs,
        outputs_changed=tuple(n for n, _, _ in bad_outputs),
        changed=tuple(
            sorted(changes.values(), key=lambda c: (graph.order[c.call_id], c.output_index))
        ),
        leaks=tuple(leaks),
        fully_masked_checked=bool(extra),
        fully_masked=tuple(issues),
    )


def _downstream_closure(graph: _Graph, start: set[str]) -> set[str]:
    seen = set(start)
    stack = list(start)
    while stack:
        for d in graph.downstream.get(stack.pop(), ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def _reached(trace: Any, graph: _Graph, src: _Source) -> tuple[str, ...]:
    """Model outputs downstream of the source."""
    if src.kind == "generator":
        start = {src.key}
    else:
        start = {
            c.id
            for c in trace.calls
            if c.id in graph.comparable and any(t.source == src.key for t in c.inputs)
        }
    seen = set(start)
    stack = list(start)
    while stack:
        cur = stack.pop()
        for d in graph.downstream.get(cur, ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return tuple(n for n, c, _ in graph.output_keys if c in seen)


def summarize(result: OracleResult) -> str:
    """A few lines of text: per source, the first leaking calls and what they reach."""
    lines = []
    for s in result.sources:
        head = f"{s.source} ({s.kind}, {s.masked_positions} padded steps)"
        if not s.leaks:
            lines.append(f"{head}: no leak; outputs {', '.join(s.outputs_reached) or '-'} clean")
        for lk in s.leaks:
            lines.append(
                f"{head}: LEAK at {lk.call_id} (change {lk.change:.3g}, rows "
                f"{list(lk.rows)} {'/'.join(lk.layouts)}) -> "
                + "; ".join(" -> ".join(p) for p in lk.paths)
            )
        for i in s.fully_masked:
            lines.append(
                f"{head}: fully masked sample: {i.kind} at {i.call_id} -> {', '.join(i.outputs)}"
            )
    for what, why in result.skipped:
        lines.append(f"skipped {what}: {why}")
    return "\n".join(lines)
