"""The rule registry.

A rule is a small function that reads a `Context` (the trace, the probe, the
oracle's verdict) and yields findings. Each rule lives in its own module,
`maskviz/rules/mv101_mask_dropped.py` (its id, then its name), found by
`all_rules()`; it is registered with an id (`MV101`), a kebab-case name and a
default severity. Its docstring is its documentation, printed by `maskviz explain
MV101`, with the sections `## What it does`, `## Why is this bad?`, `## Example`,
`Use instead:` and `## Fix safety`.

While a rule runs, `ctx.finding(call, message, ...)` makes a finding of that rule:
the registry binds the id. What rules ask of the trace is written once in
`maskviz.rules.queries` (graph questions through `ctx.graph`, a
`maskviz.callgraph.CallGraph`), advice that several rules give in
`maskviz.rules.advice`. No rule runs another: where two findings are about the same
call or cause, `maskviz.rules.overlap` decides which one is reported, after every
rule ran (see `docs/rules.md`).

Importing this package must stay light (no Keras, no TensorFlow): `maskviz rules`
and `maskviz explain` use it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..findings import Finding, Fix, Severity

DOC_SECTIONS = (
    "## What it does",
    "## Why is this bad?",
    "## Example",
    "Use instead:",
    "## Fix safety",
)

# A rule module's name: its id in lower case, then its name in snake case.
_RULE_MODULE = re.compile(r"mv\d{3}_[a-z0-9_]+")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    module: str
    func: Callable[[Context], Iterable[Finding]] = field(compare=False, repr=False)

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    @property
    def summary(self) -> str:
        doc = self.doc
        marker = "## What it does"
        if marker in doc:
            body = doc.split(marker, 1)[1].strip().split("\n\n", 1)[0]
            return " ".join(body.split())
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, Rule] = {}


def rule(id: str, name: str, severity: Severity | str) -> Callable:
    """Registers a rule function under `id` and `name`."""

    def register(func: Callable) -> Callable:
        if id in _REGISTRY:
            raise ValueError(f"Duplicate rule id {id!r} ({name} and {_REGISTRY[id].name}).")
        if any(r.name == name for r in _REGISTRY.values()):
            raise ValueError(f"Duplicate rule name {name!r}.")
        _REGISTRY[id] = Rule(
            id=id,
            name=name,
            severity=Severity(severity),
            module=func.__module__,
            func=func,
        )
        func.rule_id = id
        return func

    return register


def rule_modules() -> list[str]:
    """The rule modules of this package (`maskviz.rules.mv101_mask_dropped`, ...), in
    id order."""
    names = (m.name for m in pkgutil.iter_modules(__path__))
    return [f"{__name__}.{n}" for n in sorted(names) if _RULE_MODULE.fullmatch(n)]


def all_rules() -> list[Rule]:
    for mod in rule_modules():
        importlib.import_module(mod)
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_rule(key: str) -> Rule:
    """A rule by id (`MV101`, case-insensitive) or name (`mask-dropped`)."""
    rules = all_rules()
    k = key.strip()
    for r in rules:
        if r.id.lower() == k.lower() or r.name == k.lower():
            return r
    known = ", ".join(r.id for r in rules)
    raise KeyError(f"Unknown rule {key!r}. Known rules: {known}.")


@dataclass
class Context:
    """What rules read.

    Attributes:
        trace: the instrumented forward pass.
        probe: the probe batch (or the user's `--data`).
        oracle: the leak oracle's result, or `None` when it did not run.
        model: the Keras model itself (rules must not change it).
        loss: the loss the model trains with (`inspect(loss=...)`, else the model's
            compiled loss), or `None` when none is known.
    """

    trace: Any
    probe: Any = None
    oracle: Any = None
    model: Any = None
    loss: Any = None
    _rule: Rule | None = field(default=None, init=False, repr=False, compare=False)

    @cached_property
    def graph(self) -> Any:
        """The trace's `maskviz.callgraph.CallGraph`, built once."""
        from ..callgraph import CallGraph

        return CallGraph(self.trace)

    def run(self, r: Rule) -> list[Finding]:
        """The findings of rule `r` (`ctx.finding` makes findings of `r` meanwhile)."""
        previous, self._rule = self._rule, r
        try:
            return list(r.func(self) or ())
        finally:
            self._rule = previous

    def finding(
        self,
        call: Any,
        message: str,
        *,
        suggestion: str = "",
        fix: Fix | None = None,
        severity: Severity | None = None,
        details: Iterable[tuple[str, Any]] = (),
        related: Iterable[str] = (),
    ) -> Finding:
        """A finding of the running rule at `call` (`None`: about the whole model)."""
        r = self._rule
        if r is None:
            raise RuntimeError("Context.finding is called by a rule that `Context.run` runs.")
        return Finding(
            rule=r.id,
            name=r.name,
            severity=severity or r.severity,
            call_id=call.id if call is not None else "",
            layer=call.name if call is not None else "",
            path=call.path if call is not None else "",
            message=message,
            suggestion=suggestion,
            fix=fix,
            details=tuple(details),
            related=tuple(related),
        )


def run_rules(ctx: Context, select: Iterable[str] | None = None) -> list[Finding]:
    """Runs every registered rule, applies the overlap policy
    (`maskviz.rules.overlap`), and returns the findings (those of the rules in
    `select`, when given) in trace order, then by rule id.

    Every rule runs even with `select`, so that a selected rule's findings are the
    ones a full run reports."""
    from .overlap import resolve

    chosen = {s.upper() for s in select} if select else None
    order = {c.id: i for i, c in enumerate(ctx.trace.calls)}
    findings: list[Finding] = []
    for r in all_rules():
        findings.extend(ctx.run(r))
    findings.sort(key=lambda f: (order.get(f.call_id, len(order)), f.rule, f.message))
    findings = resolve(ctx, _dedupe(findings))
    return [f for f in findings if chosen is None or f.rule in chosen]


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen = set()
    out = []
    for f in findings:
        key = (f.rule, f.call_id, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
