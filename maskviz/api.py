"""The Python API: `inspect(model) -> Report`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .findings import Finding, Severity

JSON_SCHEMA_VERSION = 1
# Time lengths tried when the model leaves time open and the default probe fails.
LONGER_PROBES = (32, 128)


@dataclass(frozen=True)
class Report:
    """What maskviz found in one model.

    Attributes:
        trace: the instrumented forward pass (`maskviz.trace.Trace`).
        findings: the rules' findings, in trace order.
        probe: the inputs the model ran on.
        oracle: the leak oracle's result, or `None` when it was off.

    `repr(report)` is the text report; in a notebook the report displays as the
    annotated graph plus a findings table.
    """

    trace: Any
    findings: tuple[Finding, ...]
    probe: Any = field(default=None, repr=False, compare=False)
    oracle: Any = field(default=None, repr=False, compare=False)
    model: Any = field(default=None, repr=False, compare=False)
    seed: int = field(default=0, repr=False, compare=False)
    mask_inputs: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    loss: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------ queries
    @property
    def rule_ids(self) -> list[str]:
        return sorted({f.rule for f in self.findings})

    def at_or_above(self, severity: Severity | str) -> list[Finding]:
        sev = Severity(severity)
        return [f for f in self.findings if f.severity.rank >= sev.rank]

    # ------------------------------------------------------------ outputs
    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        t = self.trace
        out = {
            "maskviz": __version__,
            "schema": JSON_SCHEMA_VERSION,
            "keras": t.keras_version,
            "backend": t.backend,
            "model": t.model_name,
        }
        body = t.to_dict()
        body.pop("model", None)
        out.update(body)
        out["findings"] = [f.to_dict() for f in self.findings]
        if self.oracle is not None and hasattr(self.oracle, "to_dict"):
            out["oracle"] = self.oracle.to_dict()
        keras2 = self.keras2
        if keras2 is not None:  # the file was saved by tf.keras 2
            out["saved_by"] = keras2[0].to_dict()
            out["keras2_comparison"] = keras2[1].to_dict()
        return out

    @property
    def keras2(self) -> Any:
        """`(Keras2Origin, Keras2Comparison)` when the model came from a tf.keras 2 file
        (see `maskviz.legacy`), else `None`."""
        from .legacy import keras2_section

        return keras2_section(self)

    def to_json(self, *, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=_jsonable)

    def to_text(self, *, width: int = 120, color: bool = False) -> str:
        from .report import render_text

        return render_text(self, width=width, color=color)

    def to_sarif(self) -> str:
        from .report import render_sarif

        return render_sarif(self)

    @property
    def graph(self) -> Any:
        """The call graph as a networkx DiGraph (data only, no styling)."""
        from .graph import build_graph

        return build_graph(self.trace, self.findings)

    def to_dot(self, *, depth: int | None = None) -> str:
        from .render import to_dot

        return to_dot(self.graph, depth=depth)

    def render(self, path: str, *, depth: int | None = None) -> str:
        """Draws the annotated graph to `path` (.svg, .png, .pdf or .dot)."""
        from .render import render_file

        return render_file(self.graph, path, depth=depth)

    def patch(self, **kwargs: Any) -> Any:
        """Searches verified repairs for the findings; see `maskviz.fixes.patch_model`."""
        from .fixes import patch_model

        return patch_model(self, **kwargs)

    def __repr__(self) -> str:
        return self.to_text(width=120, color=False)

    def _repr_html_(self) -> str:
        from .notebook import report_html

        return report_html(self)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    return str(x)


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
