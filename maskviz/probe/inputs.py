"""Reading a model's inputs: their names, shapes and dtypes, the layers that consume them,
and what kind of values each takes (tokens, masked floats, strings, a mask, data)."""

from __future__ import annotations

from typing import Any

from maskviz.errors import MaskvizError
from maskviz.inputs import InputKind, ModelInput
from maskviz.probe.batch import MASK_NAMES


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


def _classify(name: str, shape: tuple, dtype: str, consumers: list[Any]) -> tuple[InputKind, dict]:
    consumers = _unwrap(consumers)
    classes = {type(c).__name__: c for c in consumers}
    if dtype == "string":
        return InputKind.STRINGS, _string_vocabulary(consumers)
    for c in consumers:
        if type(c).__name__ == "Masking" or hasattr(c, "mask_value"):
            return InputKind.MASKED_FLOATS, {"mask_value": _numeric_mask_value(c)}
    for c in consumers:
        if hasattr(c, "input_dim") and hasattr(c, "mask_zero"):
            return InputKind.TOKENS, {"vocab": int(c.input_dim), "mask_zero": bool(c.mask_zero)}
    lowered = name.lower()
    if (
        len(shape) == 2
        and any(k in lowered for k in MASK_NAMES)
        and (dtype.startswith("int") or dtype.startswith("uint") or dtype == "bool")
    ):
        return InputKind.MASK, {}
    if "TokenAndPositionEmbedding" in classes or "ReversibleEmbedding" in classes:
        c = classes.get("ReversibleEmbedding") or classes.get("TokenAndPositionEmbedding")
        return InputKind.TOKENS, {
            "vocab": int(getattr(c, "input_dim", getattr(c, "vocabulary_size", 100)))
        }
    if dtype.startswith("int") or dtype.startswith("uint"):
        vocab = 100
        for c in consumers:
            for attr in ("input_dim", "vocabulary_size", "num_tokens"):
                if hasattr(c, attr):
                    vocab = int(getattr(c, attr))
        return InputKind.TOKENS, {"vocab": vocab}
    return InputKind.DATA, {}


def _numeric_mask_value(layer: Any) -> float:
    """The layer's `mask_value` as a float, or a one-line error when it is not a number
    (a config edited to `mask_value: "x"`: Keras builds the layer, then fails to run it)."""
    from maskviz.errors import cut

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
        if n != name and kinds[n][0] == InputKind.TOKENS and len(s) >= 2 and s[1] == shape[1]
    ]
    if tokens:
        return max(tokens)[3]
    for n, s, _, _ in specs:
        if n != name and kinds[n][0] != InputKind.MASK and len(s) >= 2 and s[1] == shape[1]:
            return n
    return None


def _structure(model: Any, n: int) -> str:
    from maskviz import _keras_internals as ki

    fn = ki.functional_of(model)
    if fn is not None:
        struct = ki.inputs_struct(fn)
        if isinstance(struct, dict):
            return "dict"
    return "single" if n == 1 else "list"


def _first_layers(model: Any) -> list[Any]:
    from maskviz import _keras_internals as ki

    layers = [lyr for lyr in ki.flatten_layers(model)[1:] if not ki.direct_sublayers(lyr)]
    return layers[:1]


def _input_specs(model: Any, ki: Any) -> list[tuple[str, tuple, str, Any]]:
    tensors = ki.model_input_tensors(model)
    if tensors:
        fn = ki.functional_of(model)
        struct = ki.inputs_struct(fn) if fn is not None else None
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
