"""The padding oracle: is the model padding-invariant?

A correctly masked model's outputs at real positions, its loss and its gradients do
not depend on the padding: its values, its length or its side. Three invariances,
each measured by its own runs:

- `values` (`values.py`, with `results.py`, `sources.py`, `perturb.py`,
  `compare.py`): padded values replaced by noise, the mask kept (MV107, MV108);
- `length` (`length.py`): the same real content with more padding, with the padding
  on the other side, and truncated to its real length (MV113);
- `loss` (`loss.py`): targets at padded positions and padded inputs changed; the
  loss and the gradients of the trainable weights must not move (MV114).

Padding positions come from the data (`padding.py`), not only from Keras masks.
"""

from __future__ import annotations

from .results import ATOL, RTOL, CallChange, FullyMaskedIssue, Leak, OracleResult, SourceResult
from .sources import _layer_for
from .values import run_oracle, summarize

__all__ = [
    "ATOL",
    "RTOL",
    "CallChange",
    "FullyMaskedIssue",
    "Leak",
    "OracleResult",
    "SourceResult",
    "_layer_for",
    "run_oracle",
    "summarize",
]
