"""How the values oracle perturbs a source: noise at padded positions, same mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from .sources import _expand, _Source

# --------------------------------------------------------------------------- perturbation


def _noise_like(v: np.ndarray, keep: np.ndarray, shape: tuple, rng: np.random.Generator):
    """Noise of `v`'s own scale (mean and std of its kept values)."""
    kept = v[np.broadcast_to(keep, v.shape)] if keep is not None else v.reshape(-1)
    kept = kept[np.isfinite(kept)] if kept.size else kept
    mean = float(kept.mean()) if kept.size else 0.0
    std = float(kept.std()) if kept.size else 1.0
    if not np.isfinite(std) or std == 0.0:
        std = max(abs(mean), 1.0)
    return (mean + std * rng.standard_normal(shape)).astype(v.dtype)


def _other_ids(base: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Token ids drawn from `pool`, each different from `base` where the pool allows."""
    idx = rng.integers(0, len(pool), size=base.shape)
    out = pool[idx]
    if len(pool) > 1:
        same = out == base
        out = np.where(same, pool[(idx + 1) % len(pool)], out)
    return out.astype(base.dtype)


def _padding_rows(inp: Any, v: np.ndarray, keep: np.ndarray | None, n: int) -> np.ndarray:
    """`n` rows in which input `inp` is all padding (or a copy of row 0 when it has
    no padding pattern)."""
    shape = (n,) + v.shape[1:]
    if keep is None or v.ndim < 2:
        return np.repeat(v[:1], n, axis=0)
    if inp.kind in ("tokens", "mask"):
        return np.zeros(shape, dtype=v.dtype)
    pads = np.argwhere(~keep.astype(bool))
    if inp.kind == "masked-floats" and len(pads):
        r, t = pads[0]
        step = v[r, t]
        return np.broadcast_to(step, shape).astype(v.dtype).copy()
    return np.repeat(v[:1], n, axis=0)


def _perturbed_feed(
    probe: Any, src: _Source, rng: np.random.Generator, extra: int
) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for inp in probe.inputs:
        v = np.asarray(probe.values[inp.name])
        if extra:
            pad = _padding_rows(inp, v, probe.keep.get(inp.name), extra)
            v = np.concatenate([v, pad], axis=0)
        values[inp.name] = v
    if src.kind == "explicit-mask":
        name = src.key[len("input:") :]
        base = np.asarray(probe.values[name])
        b = base.shape[0]
        off = np.concatenate([~src.mask, np.ones((extra,) + src.mask.shape[1:], bool)])
        off = np.broadcast_to(_expand(off, base.ndim), (b + extra,) + base.shape[1:])
        full = values[name].copy()  # the appended rows are perturbed everywhere
        if np.issubdtype(base.dtype, np.integer) or base.dtype == bool:
            kept = base[np.broadcast_to(_expand(src.mask, base.ndim), base.shape)]
            pool = np.unique(kept)
            if pool.size == 0:
                pool = np.unique(base)
            noise = _other_ids(full, pool, rng)
        else:
            noise = _noise_like(base, _expand(src.mask, base.ndim), full.shape, rng)
        values[name] = np.where(off, noise, full).astype(base.dtype)
        if extra and src.mask_input:
            mi = values[src.mask_input]
            mi[b:] = 0
    return values


def _generator_wrapper(src: _Source, rng: np.random.Generator, extra: int):
    """A factory for `patched_instance_calls`: the generator's `call`, with the values
    at masked positions replaced by noise and the same mask re-attached.

    The mask is the one the layer makes for these inputs (attached by its `call`,
    or its `compute_mask`), so the appended fully-padded rows get the mask the
    layer really makes for them. Functional models replay `compute_mask` from the
    generator's inputs to deliver masks, so a mask forced from outside would not
    reach the consumers anyway.
    """
    import keras

    from .. import _keras_internals as ki

    base = np.asarray(src.extra["value"])
    b = base.shape[0]
    noise = _noise_like(base, _expand(src.mask, base.ndim), (b + extra,) + base.shape[1:], rng)
    state = {"count": 0, "done": False}
    target = src.call.call_index

    def factory(layer, original):
        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            k = state["count"]
            state["count"] += 1
            if k != target or not ki.is_tensor(out) or ki.is_symbolic(out):
                return out
            n = int(out.shape[0])
            if n > noise.shape[0] or tuple(out.shape[1:]) != tuple(base.shape[1:]):
                return out
            mask = ki.get_mask(out)
            if mask is None:
                first = args[0] if args else next(iter(kwargs.values()), None)
                mask = layer.compute_mask(first, kwargs.get("mask"))
            if mask is None or isinstance(mask, (list, tuple, dict)):
                return out
            m = np.asarray(keras.ops.convert_to_numpy(mask)).astype(bool)
            if m.ndim > base.ndim or tuple(m.shape) != (n,) + tuple(base.shape[1 : m.ndim]):
                return out
            keep = np.broadcast_to(_expand(m, base.ndim), (n,) + base.shape[1:])
            new = keras.ops.where(
                keras.ops.convert_to_tensor(keep), out, keras.ops.cast(noise[:n], out.dtype)
            )
            ki.set_mask(new, mask)
            state["done"] = True
            return new

        return call

    return factory, state
