"""Small sample models bundled with maskviz: one per mask bug class, plus clean ones.

``SAMPLES`` maps a sample's name to ``(filename, description, kind)`` where kind is ``"bug"``
or ``"clean"``; ``sample_path(name)`` is the path of its ``.keras`` file. The files are made by
``sample_models/make_samples.py``.

Importing this package imports ``maskviz.samples.custom_layers``, which registers the custom
layers the samples use (package ``maskviz_samples``), so after ``import maskviz.samples`` every
sample loads with plain ``keras.saving.load_model(sample_path(name))`` (so importing this
package imports Keras).
"""

from __future__ import annotations

import pathlib
from types import MappingProxyType
from typing import Literal

from maskviz.errors import MaskvizError
from maskviz.samples import custom_layers  # noqa: F401  (registers the samples' layers)

Kind = Literal["bug", "clean"]

_DIR = pathlib.Path(__file__).resolve().parent

SAMPLES: MappingProxyType[str, tuple[str, str, Kind]] = MappingProxyType(
    {
        "seq2seq_initial_state": (
            "seq2seq_initial_state.keras",
            "Encoder-decoder LSTM whose decoder is called with initial_state=, so it never "
            "receives its mask.",
            "bug",
        ),
        "conv1d_after_masking": (
            "conv1d_after_masking.keras",
            "Masking -> Conv1D -> LSTM: Conv1D drops the mask, the LSTM runs over padding.",
            "bug",
        ),
        "flatten_after_embedding": (
            "flatten_after_embedding.keras",
            "Embedding(mask_zero=True) -> Flatten -> Dense: Flatten drops the mask.",
            "bug",
        ),
        "masking_5d_convlstm": (
            "masking_5d_convlstm.keras",
            "Masking on 5-D frames makes a 4-D mask that crashes ConvLSTM2D on data.",
            "bug",
        ),
        "timedistributed_embedding": (
            "timedistributed_embedding.keras",
            "TimeDistributed(Embedding(mask_zero=True)) over (sentences, words): the word "
            "mask is lost.",
            "bug",
        ),
        "custom_layer_no_masking": (
            "custom_layer_no_masking.keras",
            "A custom elementwise layer without supports_masking between Embedding and LSTM "
            "drops the mask.",
            "bug",
        ),
        "explicit_mask_override": (
            "explicit_mask_override.keras",
            "An LSTM over one sequence is called with mask= the other sequence's mask.",
            "bug",
        ),
        "clean_lstm": (
            "clean_lstm.keras",
            "Embedding(mask_zero=True) -> LSTM -> Dense: the mask reaches the LSTM.",
            "clean",
        ),
        "clean_transformer": (
            "clean_transformer.keras",
            "One Transformer encoder block whose attention and pooling use the padding mask "
            "(clean; MV108 notes that its mean pooling gives NaN on an all-padding row).",
            "clean",
        ),
    }
)


def sample_path(name: str) -> pathlib.Path:
    """Path of the bundled sample `name` (a key of ``SAMPLES``)."""
    try:
        filename = SAMPLES[name][0]
    except KeyError:
        raise MaskvizError(
            f"Unknown sample {name!r}. Expected one of: {', '.join(SAMPLES)}."
        ) from None
    return _DIR / filename


__all__ = ["SAMPLES", "Kind", "sample_path"]
