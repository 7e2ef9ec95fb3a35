"""Scanning a model config in safe mode: the serialized objects it names, and the refusal
of stored code (``Lambda``, lambdas) and of anything loaded from outside the file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from maskviz.errors import cut
from maskviz.loading.messages import _LAMBDA_EXPECTED, _OUTSIDE_EXPECTED, _fail

# Namespaces whose functions a model config may name (activations, losses, ...). A function
# from anywhere else in Keras (keras.config.set_backend, keras.utils.get_file) is not part of
# a model and is refused in safe mode.
_MODELLING_FUNCTIONS = re.compile(
    r"keras(\.src)?\.(activations|ops|losses|metrics|initializers|regularizers|constraints|"
    r"optimizers|random|layers|backend)(\.|$)"
)
# Classes that load code or a graph from outside the file.
_LOADS_OUTSIDE_CODE = {"TFSMLayer"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class _Entry:
    """One serialized object named in a config."""

    class_name: str
    module: str | None
    registered_name: str | None
    config: Any = field(default=None, compare=False, repr=False)

    @property
    def registered_package(self) -> str | None:
        if self.registered_name and ">" in self.registered_name:
            return self.registered_name.split(">", 1)[0]
        return None


def _class_entries(node: Any) -> Iterator[_Entry]:
    """Every ``{"class_name": ...}`` object in a config, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("class_name")
            if isinstance(name, str):
                module = item.get("module")
                registered = item.get("registered_name")
                yield _Entry(
                    name,
                    module if isinstance(module, str) else None,
                    registered if isinstance(registered, str) else None,
                    item.get("config"),
                )
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _refuse_python_code(entries: list[_Entry], shown: str) -> None:
    """Refuses, in safe mode, every Lambda layer (whatever its function: stored bytecode or
    a Keras API function both run on loading) and any stored Python lambda."""
    lambdas = []
    carries_code = False
    for entry in entries:
        if entry.class_name == "__lambda__":
            carries_code = True
        elif entry.class_name == "Lambda" or (entry.registered_name or "").endswith(">Lambda"):
            name = entry.config.get("name", "?") if isinstance(entry.config, dict) else "?"
            lambdas.append(cut(str(name), 60))
    if lambdas:
        names = ", ".join(f"'{n}'" for n in lambdas[:3]) + (", ..." if len(lambdas) > 3 else "")
        _fail(
            shown,
            f"it contains a Lambda layer ({names}) whose function would run on loading, "
            "which safe mode refuses",
            _LAMBDA_EXPECTED,
        )
    if carries_code:
        _fail(
            shown,
            "it contains a Python lambda whose code would run on loading, which safe mode refuses",
            _LAMBDA_EXPECTED,
        )


def _refuse_outside_code(entries: list[_Entry], config: Any, shown: str) -> None:
    """Refuses, in safe mode, what would load code, a graph or data from outside the file:
    a TFSMLayer, a non-modelling Keras function, any config string naming a path or URL."""
    for entry in entries:
        if entry.class_name in _LOADS_OUTSIDE_CODE:
            _fail(
                shown,
                f"it contains a {entry.class_name} that would load a TensorFlow SavedModel "
                "from outside the file and run its graph, which safe mode refuses",
                _OUTSIDE_EXPECTED,
            )
        module = entry.module or ""
        if (
            entry.class_name == "function"
            and (module == "keras" or module.startswith("keras."))
            and not _MODELLING_FUNCTIONS.match(module)
        ):
            what = cut(f"{module}.{entry.config}", 80)
            _fail(
                shown,
                f"it names the function '{what}', which is not a modelling function and would "
                "run on loading, which safe mode refuses",
                _OUTSIDE_EXPECTED,
            )
    for key, value in _config_strings(config):
        if _names_outside_resource(key, value):
            _fail(
                shown,
                f"its config entry '{cut(key, 40)}' names '{cut(value, 80)}', a path or URL "
                "outside the file that Keras would read on loading, which safe mode refuses",
                _OUTSIDE_EXPECTED,
            )


# Config keys whose strings are names, never files.
_NAME_KEYS = {"name", "class_name", "module", "registered_name", "dtype", "padding", "mode"}


def _config_strings(node: Any) -> Iterator[tuple[str, str]]:
    """(key, value) for every string value in a config (list items keep their dict's key)."""
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((key, v) for v in item)
        elif isinstance(item, str):
            yield key, item


def _names_outside_resource(key: str, value: str) -> bool:
    """Whether a config string names a file, folder or URL that loading would read."""
    if key in _NAME_KEYS or not value or len(value) > 4096:
        return False
    if _URL.match(value) or value.startswith(("/", "~", "./", "../", "\\")):
        return True
    if re.match(r"^[A-Za-z]:[\\/]", value):  # C:\\...
        return True
    if ("/" in value or os.sep in value) and " " not in value:
        return True
    try:
        return os.path.lexists(value)  # a relative name of something in the current folder
    except (OSError, ValueError):
        return False
