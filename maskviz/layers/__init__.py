"""Fixed layers that keep masks right (`MaskedRNN`, `TimestepMasking`, ...).

Every class is registered for saving under the package name "maskviz", so a
`.keras` file that uses them loads once `maskviz.layers` is imported.
"""

from maskviz.layers.masked_rnn import MaskedGRU, MaskedLSTM, MaskedRNN

__all__ = [
    "MaskedGRU",
    "MaskedLSTM",
    "MaskedRNN",
]
