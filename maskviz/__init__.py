"""maskviz: see, check and fix masks in Keras models.

    import maskviz
    report = maskviz.inspect(model)      # trace, rules, leak oracle
    maskviz.show(model)                  # the same, displayed in a notebook
    report.render("model.svg")          # the annotated graph

Heavy modules (Keras, TensorFlow) load on first use, so `import maskviz` and the
CLI's `--help`, `rules` and `explain` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Finding",
    "MaskvizError",
    "Report",
    "Severity",
    "__version__",
    "callbacks",
    "inspect",
    "layers",
    "show",
    "testing",
]

if TYPE_CHECKING:  # pragma: no cover
    from . import callbacks, layers, testing
    from .api import inspect
    from .errors import MaskvizError
    from .findings import Finding, Severity
    from .notebook import show
    from .report import Report

_LAZY = {
    "inspect": ("maskviz.api", "inspect"),
    "Report": ("maskviz.report", "Report"),
    "show": ("maskviz.notebook", "show"),
    "Finding": ("maskviz.findings", "Finding"),
    "Severity": ("maskviz.findings", "Severity"),
    "MaskvizError": ("maskviz.errors", "MaskvizError"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in ("layers", "testing", "samples", "callbacks"):
        value = importlib.import_module(f"maskviz.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maskviz' has no attribute {name!r}")


def _install_layer_registration() -> None:
    from ._register import install

    install()


_install_layer_registration()
