"""The rule registry.

A rule is a small function that reads a `Context` (the trace, the probe, the
oracle's verdict) and yields findings. It is registered with an id (`MV101`), a
kebab-case name and a default severity; its docstring is its documentation, printed
by `maskviz explain MV101`, with the sections `## What it does`, `## Why is this
bad?`, `## Example`, `Use instead:` and `## Fix safety`.

Importing this package must stay light (no Keras, no TensorFlow): `maskviz rules`
and `maskviz explain` use it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..findings import Finding, Fix, Severity

DOC_SECTIONS = (
    "## What it does",
    "## Why is this bad?",
    "## Example",
    "Use instead:",
    "## Fix safety",
)

# Rule modules, by family. Import order is registration order.
_FAMILIES = (
    "maskviz.rules.structure",
    "maskviz.rules.behaviour",
    "maskviz.rules.alignment",
    "maskviz.rules.invariance",
)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    family: str
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
            family=func.__module__.rsplit(".", 1)[-1],
            func=func,
        )
        func.rule_id = id
        return func

    return register


def all_rules() -> list[Rule]:
    for mod in _FAMILIES:
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

    def finding(
        self,
        rule_id: str,
        call: Any,
        message: str,
        *,
        suggestion: str = "",
        fix: Fix | None = None,
        severity: Severity | None = None,
        details: Iterable[tuple[str, Any]] = (),
    ) -> Finding:
        r = _REGISTRY[rule_id]
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
        )


def run_rules(ctx: Context, select: Iterable[str] | None = None) -> list[Finding]:
    """Runs every registered rule (or those in `select`) and returns the findings in
    trace order, then by rule id."""
    chosen = {s.upper() for s in select} if select else None
    order = {c.id: i for i, c in enumerate(ctx.trace.calls)}
    findings: list[Finding] = []
    for r in all_rules():
        if chosen is not None and r.id not in chosen:
            continue
        findings.extend(r.func(ctx) or ())
    findings.sort(key=lambda f: (order.get(f.call_id, len(order)), f.rule, f.message))
    return _dedupe(findings)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen = set()
    out = []
    for f in findings:
        key = (f.rule, f.call_id, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def iter_downstream(trace: Any, call_id: str) -> Iterator[Any]:
    """Every call that depends on `call_id`'s outputs, breadth first, once each.

    What happens inside a nested model or wrapper reaches what the container feeds,
    unless the container's output carries a mask again (it restored it itself).
    """
    consumers: dict[str, list[Any]] = {}
    by_id = {c.id: c for c in trace.calls}
    for c in trace.calls:
        for t in c.inputs:
            if t.source is not None:
                consumers.setdefault(t.source, []).append(c)
        parent = by_id.get(c.parent) if c.parent else None
        if parent is not None and not parent.output_masked:
            consumers.setdefault(c.id, []).append(parent)
    seen = {call_id}
    queue = [call_id]
    while queue:
        cur = queue.pop(0)
        for c in consumers.get(cur, []):
            if c.id not in seen:
                seen.add(c.id)
                queue.append(c.id)
                yield c
