"""What maskviz knows of a model's inputs: `ModelInput`, made by the probe, read by the trace."""

from __future__ import annotations

from dataclasses import dataclass

from maskviz._strenum import StrEnum


class InputKind(StrEnum):
    """The kind of values a model input takes, which decides how the probe fills it."""

    TOKENS = "tokens"
    """Integer token ids (0 is padding where an `Embedding` masks zeros)."""
    MASKED_FLOATS = "masked-floats"
    """Floats read by `Masking`: padded steps equal its `mask_value`."""
    STRINGS = "strings"
    """Text read by a `StringLookup`-like layer."""
    MASK = "mask"
    """An explicit padding mask (`padding_mask`, `attention_mask`, ...)."""
    DATA = "data"
    """Anything else."""


@dataclass(frozen=True)
class ModelInput:
    """One model input.

    Attributes:
        name, shape, dtype: the input's (shape with `None` for open dimensions).
        kind: what values it takes (a plain string is converted to its `InputKind`).
        pairs_with: for an explicit mask input, the data input it masks.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    kind: InputKind = InputKind.DATA
    pairs_with: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", InputKind(self.kind))
