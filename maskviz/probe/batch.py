"""The probe batch (`Probe`) and its fixed sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskviz.inputs import ModelInput

BATCH = 4
DEFAULT_TIME = 8
DEFAULT_DIM = 4
MASK_NAMES = ("mask", "padding", "valid")
# The most values one probe input may hold: a fixed dimension of 2**40 must be refused
# in one line before numpy tries to allocate terabytes.
MAX_PROBE_VALUES = 1 << 26


@dataclass(frozen=True)
class Probe:
    """The inputs maskviz runs the model on.

    Attributes:
        inputs: one `ModelInput` per model input, in the model's order.
        values: input name -> numpy array.
        keep: input name -> (batch, time) bool array: which steps are real data
            (`None` where the input has no padding pattern).
        from_data: True when the values came from the user's `--data`.
        detected: padding found in float data that has no padding convention (a
            run of constant steps at the end or start of rows), described.
    """

    inputs: tuple[ModelInput, ...]
    values: Mapping[str, np.ndarray]
    keep: Mapping[str, np.ndarray | None]
    structure: str = "list"  # "single", "list" or "dict"
    from_data: bool = False
    open_time: bool = False  # the model leaves the time length open (None)
    detected: tuple[str, ...] = ()  # padding found in the data by `detect_padding`

    def feed(self, values: Mapping[str, np.ndarray] | None = None) -> Any:
        """The structure to pass to `model(...)`."""
        values = self.values if values is None else values
        arrays = [values[i.name] for i in self.inputs]
        if self.structure == "single":
            return arrays[0]
        if self.structure == "dict":
            return {i.name: values[i.name] for i in self.inputs}
        return arrays
