"""The one table of twins: which mask-aware layer can stand in for which layer.

Keyed by type and matched with `isinstance`, so a subclass of `Conv1D` gets the
`Conv1D` twin. A twin is only ever a *candidate*: `maskviz.fixes.verify` measures
whether it repairs the model and keeps outputs on unpadded rows. Class names never
decide a verdict here; they choose what to try first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Twin:
    """One row of the table.

    Attributes:
        source: the layer type the twin replaces (subclasses included).
        twin: the name of the replacement type (for messages and code changes).
        build: takes the original layer, returns the replacement with its config
            and weights.
        kind: what the twin changes: `"twin"` (a mask-aware equivalent) or
            `"timestep-mask"` (a per-timestep mask instead of a per-element one).
        module: where `twin` lives, for code changes (`maskviz.layers`).
    """

    source: type
    twin: str
    build: Callable[[Any], Any]
    kind: str = "twin"
    module: str = "maskviz.layers"


def _copy_inner(layer: Any) -> Any:
    new = type(layer).from_config(layer.get_config())
    if layer.built:
        cfg = layer.get_build_config()
        if cfg:
            new.build_from_config(cfg)
        if new.built:
            new.set_weights(layer.get_weights())
    return new


@functools.cache
def table() -> tuple[Twin, ...]:
    """The twins, most specific type first (the first `isinstance` match wins)."""
    import keras

    from .. import layers as ml

    L = keras.layers

    def masked_pool(layer: Any) -> Any:
        return ml.MaskedGlobalMaxPooling1D.from_config(layer.get_config())

    def timestep_masking(layer: Any) -> Any:
        return ml.TimestepMasking(mask_value=float(layer.mask_value), name=layer.name)

    def masked_td(layer: Any) -> Any:
        return ml.MaskedTimeDistributed(_copy_inner(layer.layer), name=layer.name)

    return (
        Twin(ml.MaskedConv1D, "", lambda layer: None),  # already the twin
        Twin(ml.MaskedGlobalMaxPooling1D, "", lambda layer: None),
        Twin(ml.MaskedRNN, "", lambda layer: None),
        Twin(ml.MaskedTimeDistributed, "", lambda layer: None),
        Twin(L.Conv1D, "MaskedConv1D", ml.MaskedConv1D.from_layer),
        Twin(L.GlobalMaxPooling1D, "MaskedGlobalMaxPooling1D", masked_pool),
        Twin(L.LSTM, "MaskedLSTM", ml.MaskedRNN.from_layer),
        Twin(L.GRU, "MaskedGRU", ml.MaskedRNN.from_layer),
        Twin(L.RNN, "MaskedRNN", ml.MaskedRNN.from_layer),
        Twin(L.TimeDistributed, "MaskedTimeDistributed", masked_td),
        Twin(L.Masking, "TimestepMasking", timestep_masking, kind="timestep-mask"),
    )


def twin_for(layer: Any) -> Twin | None:
    """The table row for `layer` (by `isinstance`, first match), or `None`.

    A layer that already is a maskviz twin has none.
    """
    for row in table():
        if isinstance(layer, row.source):
            return row if row.twin else None
    return None


def build_twin(layer: Any) -> Any:
    """The twin of `layer`, carrying its name, config and weights (`None` if none)."""
    row = twin_for(layer)
    if row is None:
        return None
    new = row.build(layer)
    if new is not None and new.name != layer.name:
        new.name = layer.name
    return new
