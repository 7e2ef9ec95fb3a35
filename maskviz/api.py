"""The Python API: `inspect(model) -> Report`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .report import JSON_SCHEMA_VERSION, Report

__all__ = ["JSON_SCHEMA_VERSION", "Report", "inspect"]

# Time lengths tried when the model leaves time open and the default probe fails.
LONGER_PROBES = (32, 128)


def inspect(
    model: Any,
    *,
    data: Any = None,
    oracle: bool = True,
    mask_inputs: Mapping[str, str] | None = None,
    seed: int = 0,
    select: Sequence[str] | None = None,
    loss: Any = None,
) -> Report:
    """Traces `model` on a probe batch, runs the rules, and returns a `Report`.

    Args:
        model: a Keras model (Functional, Sequential, subclassed, nested).
        data: a `.npz` path, a mapping of input name to array, or a `Probe` (e.g.
            `report.probe` of an earlier run), used instead of the generated probe.
        oracle: run the padding oracle: padded values replaced by noise (one
            traced pass per mask source), the same rows with more padding, on the
            other side and truncated (plain passes), and the loss and gradients.
        mask_inputs: explicit mask inputs, `{"padding_mask": "token_ids"}`.
        seed: seed of the probe and the oracle's noise.
        select: rule ids to run (default: all).
        loss: the loss the model trains with (a Keras loss name such as
            `"sparse_categorical_crossentropy"`, or a loss object), for the
            loss-and-gradient invariance. Default: the model's compiled loss (none
            when it is not compiled). It is kept on the report (`report.loss`);
            `maskviz fix` re-inspects each candidate with it.

    Returns:
        A `Report`. The model is left exactly as it was.

    Raises:
        MaskvizError: when the model's inputs cannot be determined or `data` does
            not match them.
    """
    from .probe import Probe, make_probe, probe_from_arrays, probe_from_data
    from .trace import run_trace

    if isinstance(loss, str):
        _check_loss_name(loss)

    if isinstance(data, Probe):
        probe = data
    elif data is None:
        probe = make_probe(model, seed=seed, mask_inputs=mask_inputs)
    elif isinstance(data, str):
        probe = probe_from_data(model, data, mask_inputs=mask_inputs)
    else:
        probe = probe_from_arrays(model, dict(data), mask_inputs=mask_inputs)
    trace = run_trace(model, probe.inputs, probe.feed())
    if trace.error and data is None and probe.open_time:
        # The time length was ours to choose: a model with long strided convolutions
        # needs more than the default. A longer probe that runs wins.
        for longer in LONGER_PROBES:
            retry = make_probe(model, seed=seed, mask_inputs=mask_inputs, time=longer)
            retried = run_trace(model, retry.inputs, retry.feed())
            if retried.error is None:
                probe, trace = retry, retried
                break
    return _check(
        model,
        probe,
        trace,
        oracle=oracle,
        seed=seed,
        select=select,
        loss=loss,
        mask_inputs=mask_inputs,
    )


def _check_loss_name(name: str) -> None:
    import keras

    from .errors import MaskvizError

    try:
        found = keras.losses.get(name)
    except Exception:
        found = None
    if found is None:
        raise MaskvizError(
            f"Unknown loss. Received: --loss {name!r}; expected a Keras loss name such as "
            "'mse' or 'sparse_categorical_crossentropy'."
        )


def _check(
    model: Any,
    probe: Any,
    trace: Any,
    *,
    oracle: bool = True,
    seed: int = 0,
    select: Sequence[str] | None = None,
    loss: Any = None,
    targets: Any = None,
    sample_weight: Any = None,
    mask_inputs: Mapping[str, str] | None = None,
) -> Report:
    """Oracle, invariances and rules over a finished trace (shared by `inspect` and
    `maskviz.callbacks.PaddingCheck`)."""
    import dataclasses

    from .rules import Context, run_rules

    oracle_result = None
    if oracle and trace.error is None:
        from .oracle import run_oracle
        from .oracle.invariance import run_invariances

        oracle_result = run_oracle(model, probe, trace, seed=seed)
        oracle_result = dataclasses.replace(
            oracle_result,
            invariance=run_invariances(
                model,
                probe,
                trace,
                seed=seed,
                loss=loss,
                targets=targets,
                sample_weight=sample_weight,
            ),
        )
    ctx = Context(
        trace=trace,
        probe=probe,
        oracle=oracle_result,
        model=model,
        loss=loss if loss is not None else getattr(model, "loss", None),
    )
    findings = run_rules(ctx, select=select)
    return Report(
        trace=trace,
        findings=tuple(findings),
        probe=probe,
        oracle=oracle_result,
        model=model,
        seed=seed,
        mask_inputs=dict(mask_inputs) if mask_inputs else None,
        loss=loss,
    )
