"""Small mask helpers shared by the fixed layers (keras.ops only)."""

from __future__ import annotations

from typing import Any

from keras import ops


def as_time_mask(mask: Any) -> Any:
    """Returns `mask` as a boolean `(batch, time)` mask, or `None`.

    A mask with more axes than `(batch, time)` (e.g. the per-pixel mask that
    `Masking` makes for a 5-D input) is reduced: a step is kept when any of its
    positions is kept, which is how `Masking` decides for a 3-D input.
    """
    if mask is None:
        return None
    mask = ops.cast(mask, "bool")
    if len(mask.shape) > 2:
        mask = ops.any(mask, axis=tuple(range(2, len(mask.shape))))
    return mask


def expand_to_rank(mask: Any, rank: int) -> Any:
    """Appends size-1 axes to `mask` until it has `rank` axes (for broadcasting)."""
    for _ in range(rank - len(mask.shape)):
        mask = ops.expand_dims(mask, -1)
    return mask


def first_mask(mask: Any) -> Any:
    """Returns the first mask of a (possibly nested) mask structure, or `None`."""
    while isinstance(mask, (list, tuple)):
        if not mask:
            return None
        mask = mask[0]
    return mask
