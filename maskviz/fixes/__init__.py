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
    candidates_for,
)
from .search import (
    FIXED,
    LEFT,
    NEW,
    Attempt,
    FixResult,
    PatchResult,
    Row,
    fix_model_file,
    patch_model,
)
from .verify import Check, Invariance, padding_invariance

__all__ = [
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
