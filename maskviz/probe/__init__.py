"""Probe batches: small, seeded inputs that exercise a model's masks.

Rows have different lengths: a full row, a mostly padded row, a left-padded row
and a row of three quarters (models with an explicit padding-mask input get a
right-padded half row instead: their preprocessors pad on the right). Integer
inputs that reach an `Embedding` get token ids from its vocabulary with zeros as
padding; float inputs that reach `Masking` get whole timesteps equal to
`mask_value`; explicit mask inputs (`padding_mask`, `attention_mask`, ...) are
filled to agree with their paired data input.
"""

from maskviz.probe.batch import (
    BATCH,
    DEFAULT_DIM,
    DEFAULT_TIME,
    MASK_NAMES,
    MAX_PROBE_VALUES,
    Probe,
)
from maskviz.probe.data import detect_padding, probe_from_arrays, probe_from_data
from maskviz.probe.generate import make_probe
from maskviz.probe.inputs import _mask_value as _mask_value  # read by maskviz.oracle.variants

__all__ = [
    "BATCH",
    "DEFAULT_DIM",
    "DEFAULT_TIME",
    "MASK_NAMES",
    "MAX_PROBE_VALUES",
    "Probe",
    "detect_padding",
    "make_probe",
    "probe_from_arrays",
    "probe_from_data",
]
