"""Fixed layers that keep masks right (`MaskedRNN`, `TimestepMasking`, ...).

Every class is registered for saving under the package name "maskviz", so a
`.keras` file that uses them loads once `maskviz.layers` is imported. This
package imports nothing heavier than keras.
"""

from maskviz.layers.conv import MaskedConv1D, MaskedGlobalMaxPooling1D
from maskviz.layers.masked_rnn import MaskedGRU, MaskedLSTM, MaskedRNN
from maskviz.layers.masking import FeatureMasking, TimestepMasking
from maskviz.layers.pooling import ApplyMask, MaskedReduce, ZeroPadded
from maskviz.layers.wrappers import MaskedTimeDistributed, MaskPassthrough

__all__ = [
    "ApplyMask",
    "FeatureMasking",
    "MaskPassthrough",
    "MaskedConv1D",
    "MaskedGRU",
    "MaskedGlobalMaxPooling1D",
    "MaskedLSTM",
    "MaskedReduce",
    "MaskedRNN",
    "MaskedTimeDistributed",
    "TimestepMasking",
    "ZeroPadded",
]
