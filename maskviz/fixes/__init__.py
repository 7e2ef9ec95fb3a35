"""`maskviz fix`: a search of candidate repairs, each verified before it is kept.

- `twins`: the one typed table of mask-aware twins (`isinstance`, subclasses count);
- `candidates`: typed candidate repairs per finding, most specific first;
- `verify`: apply candidates to a clone and measure them (re-inspection, unpadded
  outputs, padding invariances);
- `search`: the search itself, `patch_model` and `fix_model_file`;
- `handwritten`: subclassed models, whose verified repairs become code changes.
"""

from __future__ import annotations

from .candidates import (
    Candidate,
    MaskedReduction,
    PassMask,
    PerTimestepMask,
    Remask,
    UseTwin,
    ZeroThenRemask,
)
from .measure import Check, Invariance, padding_invariance
from .results import (
    FIXED,
    LEFT,
    NEW,
    Attempt,
    FixResult,
    Outcome,
    PatchResult,
    PatchStatus,
    Row,
    RowStatus,
)
from .search import fix_model_file, patch_model
from .sites import candidates_for

__all__ = [
    "Outcome",
    "PatchStatus",
    "RowStatus",
    "FIXED",
    "LEFT",
    "NEW",
    "Attempt",
    "Candidate",
    "Check",
    "FixResult",
    "Invariance",
    "MaskedReduction",
    "PassMask",
    "PatchResult",
    "PerTimestepMask",
    "Remask",
    "Row",
    "UseTwin",
    "ZeroThenRemask",
    "candidates_for",
    "fix_model_file",
    "padding_invariance",
    "patch_model",
]
