"""Probe batches: small, seeded inputs that exercise a model's masks.

Rows have different lengths: a full row, a mostly padded row, a left-padded row
and a row of three quarters (models with an explicit padding-mask input get a
right-padded half row instead: their preprocessors pad on the right). Integer
inputs that reach an `Embedding` get token ids from its vocabulary with zeros as
padding; float inputs that reach `Masking` get whole timesteps equal to
`mask_value`; explicit mask inputs (`padding_mask`, `attention_mask`, ...) are
filled to agree with their paired data input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import MaskvizError
from .trace import ModelInput

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


def _row_keep(batch: int, time: int, *, left_pad: bool = True) -> np.ndarray:
    """(batch, time) bool: full, mostly padded, left-padded (or half), three quarters."""
    keep = np.zeros((batch, time), dtype=bool)
    lengths = [time, max(1, time // 4), max(1, time // 2), max(1, (3 * time) // 4)]
    for r in range(batch):
        n = lengths[r % len(lengths)]
        if left_pad and r % len(lengths) == 2:
            keep[r, time - n :] = True  # left-padded
        else:
            keep[r, :n] = True
    return keep


def _consumers(model: Any, tensor: Any, ki: Any) -> list[Any]:
    """Layers that take `tensor` (a symbolic model input) as an argument, looking
    through nested Functional models."""
    found = []
    for node in ki.functional_nodes(model):
        op, args, kwargs, _ = ki.node_parts(node)
        flat = _flat_symbolic(args) + _flat_symbolic(list(kwargs.values()))
        for pos, t in enumerate(flat):
            if t is tensor:
                inner = ki.functional_of(op)
                if inner is not None:
                    inner_inputs = ki.model_input_tensors(inner) or []
                    if pos < len(inner_inputs):
                        found.extend(_consumers(inner, inner_inputs[pos], ki))
                        continue
                found.append(op)
    return found


def _flat_symbolic(x: Any) -> list[Any]:
    import keras

    try:
        return [t for t in keras.tree.flatten(x) if isinstance(t, keras.KerasTensor)]
    except Exception:
        return []


def _unwrap(consumers: list[Any]) -> list[Any]:
    """Looks inside wrappers (TimeDistributed, Bidirectional) for the layer that reads
    the input."""
    out = []
    for c in consumers:
        out.append(c)
        for attr in ("layer", "forward_layer"):
            inner = getattr(c, attr, None)
            if inner is not None and inner is not c:
                out.extend(_unwrap([inner]))
    return out


def _classify(name: str, shape: tuple, dtype: str, consumers: list[Any]) -> tuple[str, dict]:
    consumers = _unwrap(consumers)
    classes = {type(c).__name__: c for c in consumers}
    if dtype == "string":
        return "strings", _string_vocabulary(consumers)
    for c in consumers:
        if type(c).__name__ == "Masking" or hasattr(c, "mask_value"):
            return "masked-floats", {"mask_value": _numeric_mask_value(c)}
    for c in consumers:
        if hasattr(c, "input_dim") and hasattr(c, "mask_zero"):
            return "tokens", {"vocab": int(c.input_dim), "mask_zero": bool(c.mask_zero)}
    lowered = name.lower()
    if (
        len(shape) == 2
        and any(k in lowered for k in MASK_NAMES)
        and (dtype.startswith("int") or dtype.startswith("uint") or dtype == "bool")
    ):
        return "mask", {}
    if "TokenAndPositionEmbedding" in classes or "ReversibleEmbedding" in classes:
        c = classes.get("ReversibleEmbedding") or classes.get("TokenAndPositionEmbedding")
        return "tokens", {"vocab": int(getattr(c, "input_dim", getattr(c, "vocabulary_size", 100)))}
    if dtype.startswith("int") or dtype.startswith("uint"):
        vocab = 100
        for c in consumers:
            for attr in ("input_dim", "vocabulary_size", "num_tokens"):
                if hasattr(c, attr):
                    vocab = int(getattr(c, attr))
        return "tokens", {"vocab": vocab}
    return "data", {}


def _numeric_mask_value(layer: Any) -> float:
    """The layer's `mask_value` as a float, or a one-line error when it is not a number
    (a config edited to `mask_value: "x"`: Keras builds the layer, then fails to run it)."""
    from .errors import cut

    value = getattr(layer, "mask_value", 0.0)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, (str, bytes)):
        raise MaskvizError(
            f"Layer '{cut(str(layer.name), 60)}' has mask_value={cut(repr(value), 60)}, "
            "which is not a number, so no input can ever match it. Expected a numeric "
            "mask_value (Masking(mask_value=0.0)); fix the model's config."
        )
    return number


def _string_vocabulary(consumers: list[Any]) -> dict:
    """Words for a string input: from a consumer's vocabulary (StringLookup and the like
    have `get_vocabulary()`), without its special tokens; the padding word is the
    consumer's `mask_token` (what it maps to the masked index) or ''."""
    words: list[str] = []
    pad = ""
    for c in consumers:
        get = getattr(c, "get_vocabulary", None)
        if not callable(get):
            continue
        try:
            vocabulary = [str(w.decode() if isinstance(w, bytes) else w) for w in get()]
        except Exception:  # a lookup without a vocabulary yet
            continue
        special = {getattr(c, "mask_token", None), getattr(c, "oov_token", None), "", "[UNK]"}
        words = [w for w in vocabulary if w not in special]
        mask_token = getattr(c, "mask_token", None)
        pad = "" if mask_token is None else str(mask_token)
        if words:
            break
    return {"words": words or ["a", "b", "c", "d"], "pad": pad}


def _check_probe_shape(name: str, full: list[int]) -> None:
    """One-line refusal of an input shape that cannot be probed: a zero-sized fixed
    dimension (no data at all) or one so large the probe would not fit in memory."""
    from .errors import cut

    shown = cut(str(name), 60)
    if any(d <= 0 for d in full):
        raise MaskvizError(
            f"Input '{shown}' has a dimension of size 0 (probe shape {tuple(full)}), so "
            "there is no data to run the model on. Expected every fixed dimension to be "
            "at least 1; fix the model's Input shape."
        )
    total = 1
    for d in full:
        total *= d
    if total > MAX_PROBE_VALUES:
        raise MaskvizError(
            f"Input '{shown}' needs {total:,} values for a probe of shape {tuple(full)}, "
            f"more than the {MAX_PROBE_VALUES:,} maskviz allocates. Expected fixed "
            "dimensions of a size that fits in memory; check the model's Input shape."
        )


def make_probe(
    model: Any,
    *,
    seed: int = 0,
    time: int | None = None,
    mask_inputs: Mapping[str, str] | None = None,
) -> Probe:
    """Builds a seeded probe batch from the model's input specs.

    Args:
        model: a built Keras model.
        seed: random seed; the same model and seed give the same probe.
        time: the time length to use where the model leaves it open.
        mask_inputs: explicit pairs `{mask input name: data input name}`.

    Raises:
        MaskvizError: when the model's inputs cannot be determined.
    """
    from . import _keras_internals as ki

    rng = np.random.default_rng(seed)
    specs = _input_specs(model, ki)
    kinds: dict[str, tuple[str, dict]] = {}
    for name, shape, dtype, tensor in specs:
        consumers = _consumers(model, tensor, ki) if tensor is not None else _first_layers(model)
        kinds[name] = _classify(name, shape, dtype, consumers)
    pairs = dict(mask_inputs or {})
    for name, (kind, _) in kinds.items():
        if kind == "mask" and name not in pairs:
            pairs[name] = _pair_for(name, specs, kinds)
    for m, d in pairs.items():
        if m not in kinds:
            raise MaskvizError(
                f"--mask-input names an input the model does not have. Received: {m!r}; "
                f"the model's inputs are {sorted(kinds)}."
            )
        if d is not None and d not in kinds:
            raise MaskvizError(
                f"--mask-input pairs {m!r} with an input the model does not have. "
                f"Received: {d!r}; the model's inputs are {sorted(kinds)}."
            )
        kinds[m] = ("mask", {})

    # A shared time length, so paired inputs agree.
    t_len = time
    open_time = False
    # The time axis is axis 1 of the sequence inputs (tokens, masked floats, rank 3+),
    # not of a state input such as `(batch, units)`.
    sequences = [
        shape
        for n, shape, _, _ in specs
        if len(shape) >= 3 or (len(shape) == 2 and kinds[n][0] in ("tokens", "mask"))
    ] or [shape for _, shape, _, _ in specs if len(shape) >= 2]
    if t_len is None:
        for shape in sequences:
            if shape[1] is not None:
                t_len = int(shape[1])
                break
    if t_len is None:
        open_time = any(shape[1] is None for shape in sequences)
    t_len = DEFAULT_TIME if t_len is None else t_len
    fulls = {
        name: [BATCH]
        + [
            (t_len if i == 1 else DEFAULT_DIM) if d is None else int(d)
            for i, d in enumerate(shape[1:], start=1)
        ]
        for name, shape, _, _ in specs
    }
    for name, full in fulls.items():  # before anything is allocated
        _check_probe_shape(name, full)
    if t_len <= 0 or BATCH * t_len > MAX_PROBE_VALUES:
        _check_probe_shape("(time)", [BATCH, t_len])
    # Models that take an explicit padding mask get it from a preprocessor, and those
    # pad on the right (keras-hub's do): no left-padded row for them. Use --data to
    # check left padding.
    explicit = any(kind == "mask" for kind, _ in kinds.values())
    keep = _row_keep(BATCH, t_len, left_pad=not explicit)

    values: dict[str, np.ndarray] = {}
    keeps: dict[str, np.ndarray | None] = {}
    seq_index: dict[str, int] = {}
    for d in pairs.values():  # a mask input shares its data input's padding
        if d is not None:
            seq_index.setdefault(d, len(seq_index))
    inputs = []
    for name, shape, dtype, _ in specs:
        kind, info = kinds[name]
        full = fulls[name]
        row_keep = None
        if len(full) >= 2 and full[1] == t_len:
            # Independent sequences get different padding (rows rotated), so that
            # a mask taken from the wrong sequence shows; paired ones share it.
            anchor = name if kind != "mask" else (pairs.get(name) or name)
            row_keep = np.roll(keep, seq_index.setdefault(anchor, len(seq_index)), axis=0)
        if kind == "tokens":
            vocab = max(2, info.get("vocab", 100))
            arr = rng.integers(1, vocab, size=full)
            if row_keep is not None:
                arr = np.where(_expand(row_keep, len(full)), arr, 0)
            if len(full) == 3:
                # Nested sequences (sentences of words): pad inside each step too.
                inner = full[2]
                lengths = rng.integers(1, inner + 1, size=full[:2])
                arr = np.where(np.arange(inner)[None, None, :] < lengths[..., None], arr, 0)
            arr = arr.astype(dtype if dtype.startswith(("int", "uint")) else "int32")
        elif kind == "strings":
            words = np.asarray(info["words"], dtype=object)
            arr = words[rng.integers(0, len(words), size=full)]
            if row_keep is not None:
                arr = np.where(_expand(row_keep, len(full)), arr, info["pad"])
            arr = arr.astype(str)
        elif kind == "masked-floats":
            arr = rng.standard_normal(full).astype(dtype if "float" in dtype else "float32")
            if row_keep is not None:
                arr = np.where(_expand(row_keep, len(full)), arr, info["mask_value"]).astype(
                    arr.dtype
                )
        elif kind == "mask":
            arr = (
                row_keep.astype(dtype)
                if row_keep is not None and len(full) == 2
                else np.ones(full, dtype=dtype)
            )
        elif dtype == "bool":
            arr = rng.random(full) > 0.5
        elif dtype.startswith(("int", "uint")):
            arr = rng.integers(0, 10, size=full).astype(dtype)
        else:
            arr = rng.standard_normal(full).astype(dtype)
        values[name] = arr
        keeps[name] = row_keep if kind in ("tokens", "masked-floats", "mask", "strings") else None
        inputs.append(
            ModelInput(
                name=name,
                shape=tuple(shape),
                dtype=dtype,
                kind=kind,
                pairs_with=pairs.get(name) if kind == "mask" else None,
            )
        )
    # Paired data inputs share the mask's padding pattern.
    for m, d in pairs.items():
        if d is not None and keeps.get(d) is None and keeps.get(m) is not None:
            keeps[d] = keeps[m]
    return Probe(
        inputs=tuple(inputs),
        values=values,
        keep=keeps,
        structure=_structure(model, len(specs)),
        open_time=open_time or time is not None,
    )


def _expand(keep: np.ndarray, ndim: int) -> np.ndarray:
    return keep.reshape(keep.shape + (1,) * (ndim - 2))


def _pair_for(name, specs, kinds) -> str | None:
    shape = next(s for n, s, _, _ in specs if n == name)
    # The token input sharing the mask's prefix (encoder_padding_mask pairs with
    # encoder_token_ids), then the one with the largest vocabulary (token_ids, not
    # segment_ids).
    prefix = name.lower()
    for word in ("padding_mask", "attention_mask", "mask", "padding", "valid"):
        prefix = prefix.replace(word, "")
    prefix = prefix.strip("_")
    tokens = [
        (bool(prefix) and n.lower().startswith(prefix), kinds[n][1].get("vocab", 0), -i, n)
        for i, (n, s, _, _) in enumerate(specs)
        if n != name and kinds[n][0] == "tokens" and len(s) >= 2 and s[1] == shape[1]
    ]
    if tokens:
        return max(tokens)[3]
    for n, s, _, _ in specs:
        if n != name and kinds[n][0] != "mask" and len(s) >= 2 and s[1] == shape[1]:
            return n
    return None


def _structure(model: Any, n: int) -> str:
    from . import _keras_internals as ki

    fn = ki.functional_of(model)
    if fn is not None:
        struct = getattr(fn, "_inputs_struct", None)
        if isinstance(struct, dict):
            return "dict"
    return "single" if n == 1 else "list"


def _first_layers(model: Any) -> list[Any]:
    from . import _keras_internals as ki

    layers = [lyr for lyr in ki.flatten_layers(model)[1:] if not ki.direct_sublayers(lyr)]
    return layers[:1]


def _input_specs(model: Any, ki: Any) -> list[tuple[str, tuple, str, Any]]:
    tensors = ki.model_input_tensors(model)
    if tensors:
        fn = ki.functional_of(model)
        struct = getattr(fn, "_inputs_struct", None) if fn is not None else None
        names = []
        if isinstance(struct, dict):
            by_id = {id(v): k for k, v in struct.items()}
            names = [by_id.get(id(t), t.name) for t in tensors]
        else:
            names = [t.name for t in tensors]
        return [(n, tuple(t.shape), _std(t.dtype), t) for n, t in zip(names, tensors)]
    shapes = ki.build_input_shapes(model)
    if shapes:
        out = []
        for key, shape in shapes.items():
            if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
                raise MaskvizError(
                    f"Model '{model.name}' was built with several inputs; maskviz cannot "
                    f"build a probe for it. Received build shapes: {shapes}. "
                    "Pass real samples with `--data file.npz`."
                )
            first = _first_layers(model)
            is_tokens = bool(first) and hasattr(first[0], "mask_zero")
            out.append(
                (key.replace("_shape", ""), tuple(shape), "int32" if is_tokens else "float32", None)
            )
        return out
    raise MaskvizError(
        f"Model '{model.name}' has no known inputs (it was never built or called). "
        "Expected a Functional or Sequential model with an `Input`, or a built subclassed "
        "model. Build it first (`model.build(input_shape)`, or call it once on a batch)."
    )


def _std(dtype: Any) -> str:
    import keras

    return keras.backend.standardize_dtype(dtype)


def probe_from_data(
    model: Any, path: str, *, mask_inputs: Mapping[str, str] | None = None
) -> Probe:
    """Reads `--data file.npz`: keys are input names, or `arr_0`, `arr_1`, ... in order."""
    from .errors import cut

    shown = cut(str(path), 160)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.keys()}
    except FileNotFoundError:
        raise MaskvizError(f"--data file not found. Received: '{shown}'.") from None
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise MaskvizError(
                f"--data '{shown}' holds Python objects (a pickled object array), which "
                "maskviz does not load: loading them can run code. Expected numeric arrays "
                "saved with numpy.savez."
            ) from None
        raise MaskvizError(
            f"--data must be a .npz file written by `numpy.savez`. Received: '{shown}' "
            f"({cut(str(e), 120)})."
        ) from None
    except Exception as e:
        raise MaskvizError(
            f"--data must be a .npz file written by `numpy.savez`. Received: '{shown}' "
            f"({type(e).__name__}: {cut(str(e), 120)})."
        ) from None
    if not isinstance(arrays, dict) or not arrays:
        raise MaskvizError(
            f"--data '{shown}' holds no arrays. Expected a .npz file with one array per "
            "model input."
        )
    return probe_from_arrays(model, arrays, mask_inputs=mask_inputs)


def probe_from_arrays(
    model: Any, data: Mapping[str, Any], *, mask_inputs: Mapping[str, str] | None = None
) -> Probe:
    """A probe from the user's samples: keys are input names, or `arr_0`, `arr_1`, ..."""
    from . import _keras_internals as ki

    base = make_probe(model, mask_inputs=mask_inputs)
    names = [i.name for i in base.inputs]
    keys = list(data.keys())
    values: dict[str, np.ndarray] = {}
    if all(n in keys for n in names):
        for n in names:
            values[n] = np.asarray(data[n])
    elif all(f"arr_{i}" in keys for i in range(len(names))):
        for i, n in enumerate(names):
            values[n] = np.asarray(data[f"arr_{i}"])
    else:
        raise MaskvizError(
            f"The data's keys do not match the model's inputs. Received keys: {sorted(keys)}; "
            f"expected {names} (or arr_0..arr_{len(names) - 1})."
        )
    for inp in base.inputs:
        _check_shape(inp, values[inp.name])
        _check_values(model, inp, values[inp.name], ki)
    keeps: dict[str, np.ndarray | None] = {}
    detected: list[str] = []
    for inp in base.inputs:
        arr = values[inp.name]
        if inp.kind == "tokens" and arr.ndim >= 2:
            keeps[inp.name] = (
                arr != 0 if arr.ndim == 2 else np.any(arr != 0, axis=tuple(range(2, arr.ndim)))
            )
        elif inp.kind == "masked-floats" and arr.ndim >= 3:
            mv = _mask_value(model, inp, ki)
            keeps[inp.name] = np.any(arr != mv, axis=tuple(range(2, arr.ndim)))
            if keeps[inp.name].all():
                # No step equals mask_value: is the data padded with something else?
                keep, desc = detect_padding(arr)
                if desc:
                    keeps[inp.name] = keep
                    detected.append(
                        f"input `{inp.name}`: {desc}; no step equals the `Masking` "
                        f"mask_value {mv:g}"
                    )
        elif inp.kind == "mask":
            keeps[inp.name] = arr.astype(bool)
        else:
            keep, desc = detect_padding(arr)
            keeps[inp.name] = keep
            if desc:
                detected.append(f"input `{inp.name}`: {desc}")
    for inp in base.inputs:
        if inp.kind == "mask" and inp.pairs_with and keeps.get(inp.pairs_with) is None:
            keeps[inp.pairs_with] = keeps[inp.name]
    return Probe(
        inputs=base.inputs,
        values=values,
        keep=keeps,
        structure=base.structure,
        from_data=True,
        detected=tuple(detected),
    )


def _check_shape(inp: ModelInput, arr: np.ndarray) -> None:
    """The user's array must fit the input: same rank, same fixed sizes."""
    expected = tuple(inp.shape)
    got = tuple(arr.shape)
    fits = len(got) == len(expected) and all(
        e is None or e == g for e, g in zip(expected[1:], got[1:])
    )
    if not fits:
        dims = ", ".join("None" if d is None else str(d) for d in expected)
        raise MaskvizError(
            f"The data for input '{inp.name}' has the wrong shape. Received: {got}; "
            f"expected ({dims}) (None = any size)."
        )


def _mask_value(model, inp, ki) -> float:
    """The `mask_value` of the `Masking` layer that reads input `inp` (each input
    has its own: two inputs with two `Masking` layers have two padding values)."""
    for name, _, _, tensor in _input_specs(model, ki):
        if name != inp.name or tensor is None:
            continue
        for c in _unwrap(_consumers(model, tensor, ki)):
            if hasattr(c, "mask_value"):
                return _numeric_mask_value(c)
    return 0.0


def _check_values(model: Any, inp: ModelInput, arr: np.ndarray, ki: Any) -> None:
    """The user's values must be usable: some rows, numbers where the model takes numbers,
    no NaN or infinity, token ids inside the vocabulary of the layer they feed."""
    from .errors import cut

    shown = cut(str(inp.name), 60)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise MaskvizError(
            f"The data for input '{shown}' has no rows. Received shape {arr.shape}. "
            "Expected at least one sample."
        )
    if inp.dtype == "string" or inp.kind == "strings":
        if arr.dtype.kind not in "US":
            raise MaskvizError(
                f"The data for input '{shown}' is not text. Received dtype {arr.dtype}; "
                "expected strings."
            )
        return
    if arr.dtype.kind not in "biuf":
        raise MaskvizError(
            f"The data for input '{shown}' is not numeric. Received dtype {arr.dtype}; "
            f"expected numbers ({inp.dtype})."
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise MaskvizError(
            f"The data for input '{shown}' holds NaN or infinite values. Expected finite "
            "numbers; clean the data first."
        )
    if inp.kind == "tokens" and arr.size:
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise MaskvizError(
                f"The data for input '{shown}' holds fractional token ids. Expected whole numbers."
            )
        vocab = _vocabulary_size(model, inp, ki)
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or (vocab is not None and high >= vocab):
            limit = f"0..{vocab - 1}" if vocab is not None else ">= 0"
            raise MaskvizError(
                f"The data for input '{shown}' holds token ids outside the vocabulary. "
                f"Received ids from {low} to {high}; expected ids in {limit}."
            )


def _vocabulary_size(model: Any, inp: ModelInput, ki: Any) -> int | None:
    """The vocabulary size of the layers an input feeds (`input_dim` and the like)."""
    tensors = ki.model_input_tensors(model) or []
    sizes = []
    for t in tensors:
        if getattr(t, "name", None) != inp.name:
            continue
        for c in _unwrap(_consumers(model, t, ki)):
            for attr in ("input_dim", "vocabulary_size", "num_tokens"):
                value = getattr(c, attr, None)
                if isinstance(value, int) and value > 0:
                    sizes.append(value)
                    break
    return min(sizes) if sizes else None


def detect_padding(arr: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Padding found in float data with no padding convention: a run of identical
    constant steps (every feature equal to one value `c`, the same `c` in every row)
    at the end or at the start of rows.

    Returns `(keep, description)`: keep is `(batch, time)` bool (False on the
    detected padding), or `(None, None)` when no such run is found. A value counts as
    padding only when at least one row has a run of two steps or more of it.
    """
    a = np.asarray(arr)
    if a.ndim < 2 or a.shape[1] < 2 or not np.issubdtype(a.dtype, np.floating):
        return None, None
    steps = a.reshape(a.shape[0], a.shape[1], -1)
    const = np.all(steps == steps[..., :1], axis=-1)  # (batch, time)
    best = None
    for side in ("right", "left"):
        edge = steps[:, -1, 0] if side == "right" else steps[:, 0, 0]
        cands = [float(c) for c, ok in zip(edge, const[:, -1 if side == "right" else 0]) if ok]
        for c in sorted(set(cands)):
            is_c = const & (steps[..., 0] == c)
            seq = is_c[:, ::-1] if side == "right" else is_c
            run = np.argmin(np.concatenate([seq, np.zeros((len(seq), 1), bool)], 1), axis=1)
            if run.max(initial=0) < 2:
                continue
            score = int(run.sum())
            if best is None or score > best[0]:
                best = (score, side, c, run)
    if best is None:
        return None, None
    _, side, c, run = best
    t = a.shape[1]
    idx = np.arange(t)[None, :]
    pad = idx >= (t - run[:, None]) if side == "right" else idx < run[:, None]
    rows = int((run > 0).sum())
    desc = (
        f"{side} padding: runs of constant steps equal to {c:g} at the "
        f"{'end' if side == 'right' else 'start'} of {rows} of {len(run)} rows "
        f"({int(run[run > 0].min(initial=0))}-{int(run.max())} steps)"
    )
    return ~pad, desc
