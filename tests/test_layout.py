"""The package's layout: private Keras attributes read in one module only, imports that go
one way through the stages, and modules of a readable size.

These tests read the source with `ast`; they import nothing from maskviz (and no backend).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "maskviz"
INTERNALS = "maskviz._keras_internals"
ATTRIBUTE_CALLS = ("getattr", "hasattr", "setattr", "delattr")


def _modules() -> dict[str, Path]:
    """Every maskviz module by dotted name (a package by its own name, not `.__init__`)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


# --------------------------------------------------------------------------- private Keras


def _is_private(name: str) -> bool:
    """`_name`, but not a dunder (`__call__`, `__module__` are public protocol)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, name) for each private attribute a module reaches on an object: `x._name`
    (read, written or deleted) and `getattr(x, "_name")` (and hasattr/setattr/delattr)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            yield node.lineno, node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_CALLS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _is_private(node.args[1].value)
        ):
            yield node.lineno, node.args[1].value


def _defined_names(tree: ast.AST) -> set[str]:
    """The private names a module defines itself: functions, classes, assigned names
    (module, class or local), attributes it sets on `self`/`cls`, import aliases."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return {n for n in names if _is_private(n)}


def own_private_names(trees: dict[str, ast.AST]) -> set[str]:
    """The allow-list: private names maskviz defines (its modules' own private names, and
    what it defines in any module), minus every private attribute `_keras_internals` reads,
    which are Keras's (`_functional`, `_inputs_struct`, `_keras_history`, ...) even where a
    maskviz class happens to use the same name."""
    own = {part for name in trees for part in name.split(".") if _is_private(part)}
    for tree in trees.values():
        own |= _defined_names(tree)
    keras_names = (
        {attr for _, attr in _private_reads(trees[INTERNALS])} if INTERNALS in trees else set()
    )
    return own - keras_names


def private_keras_reads(trees: dict[str, ast.AST]) -> list[str]:
    """`module:line: _name` for each private attribute a module other than `_keras_internals`
    reaches that maskviz does not define: a private attribute of a Keras object."""
    own = own_private_names(trees)
    return [
        f"{module}:{line}: {attr}"
        for module, tree in sorted(trees.items())
        if module != INTERNALS
        for line, attr in _private_reads(tree)
        if attr not in own
    ]


def test_private_keras_attributes_are_read_only_in_keras_internals():
    assert private_keras_reads(TREES) == []


def test_the_private_attribute_check_fails_on_a_keras_private():
    """The check itself: a Keras private read outside `_keras_internals` is reported, in
    both spellings, while maskviz's own private names (and dunders) pass."""
    internals = ast.parse("def f(fn):\n    return fn._inputs_struct, getattr(fn, '_functional')\n")
    offender = ast.parse(
        "def g(model, tracer):\n"
        "    struct = getattr(model, '_inputs_struct', None)\n"
        "    history = model.output._keras_history\n"
        "    tracer._run()\n"
        "    return model.__class__, tracer._helper\n"
        "class Tracer:\n"
        "    def __init__(self):\n"
        "        self._helper = 1\n"
        "    def _run(self):\n"
        "        self._functional = None\n"
    )
    trees = {INTERNALS: internals, "maskviz.offender": offender}
    assert private_keras_reads(trees) == [
        "maskviz.offender:2: _inputs_struct",
        "maskviz.offender:3: _keras_history",
        "maskviz.offender:10: _functional",  # Keras's name, though `self` sets it here
    ]
