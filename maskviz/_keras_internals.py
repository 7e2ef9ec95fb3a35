"""The only module in maskviz that touches private Keras attributes.

Keras's mask machinery is mostly private (`_keras_mask`, `Layer.__call__`'s mask
population, the Functional graph's nodes). Everything maskviz needs from it goes
through the small functions here, so that a Keras release that moves something
breaks one file, not the whole tool.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras.src import backend as _backend
from keras.src.layers.layer import Layer as _Layer

_MISSING = object()


def get_mask(x: Any) -> Any:
    """Returns the mask Keras attached to tensor `x` (`_keras_mask`), or `None`."""
    if x is None:
        return None
    try:
        return _backend.get_keras_mask(x)
    except Exception:  # non-tensor values
        return None


def set_mask(x: Any, mask: Any) -> Any:
    """Attaches `mask` to tensor `x` as Keras does (`_keras_mask`); returns `x`.

    Used by the leak oracle to keep a generator's mask on values it perturbed.
    """
    _backend.set_keras_mask(x, mask)
    return x


def is_tensor(x: Any) -> bool:
    """True for backend tensors and KerasTensors."""
    if isinstance(x, keras.KerasTensor):
        return True
    try:
        return bool(_backend.is_tensor(x))
    except Exception:
        return False


def is_symbolic(x: Any) -> bool:
    return isinstance(x, keras.KerasTensor)


def call_accepts_mask(layer: Any) -> bool:
    """Whether `layer.call` takes a mask Keras fills: a `mask` parameter, or
    `<arg>_mask` parameters (`query_mask`, `value_mask`)."""
    params = getattr(layer, "call_signature_parameters", None)
    if params is None:
        try:
            params = list(inspect.signature(type(layer).call).parameters)
        except (TypeError, ValueError):
            return False
    params = list(params)
    return "mask" in params or any(p.endswith("_mask") and p[:-5] in params for p in params)


def compute_mask_overridden(layer: Any) -> bool:
    """Whether the layer's class defines its own `compute_mask`."""
    return getattr(type(layer), "compute_mask", None) is not _Layer.compute_mask


def supports_masking(layer: Any) -> bool:
    return bool(getattr(layer, "supports_masking", False))


def flatten_layers(model: Any) -> list[Any]:
    """All layers of `model`, itself included, recursively, without duplicates."""
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=True, recursive=True))
    return [model]


def direct_sublayers(layer: Any) -> list[Any]:
    return list(getattr(layer, "_layers", []) or [])


@contextlib.contextmanager
def patched_layer_call(wrapper_factory: Callable[[Callable], Callable]) -> Iterator[None]:
    """Replaces `Layer.__call__` for the duration of the block; always restored.

    `wrapper_factory(original)` returns the function to install.
    """
    original = _Layer.__dict__["__call__"]
    _Layer.__call__ = wrapper_factory(original)
    try:
        yield
    finally:
        _Layer.__call__ = original


@contextlib.contextmanager
def patched_instance_calls(
    layers: list[Any], wrapper_factory: Callable[[Any, Callable], Callable]
) -> Iterator[None]:
    """Shadows `layer.call` with an instance attribute for each layer; always restored.

    Layers such as `TimeDistributed` call their inner layer's `call` directly,
    bypassing `__call__`; the instance wrapper sees those calls too, and it sees
    the keyword arguments (the `mask`) exactly as `call` receives them.
    """
    saved: list[tuple[Any, Any]] = []
    try:
        for layer in layers:
            previous = layer.__dict__.get("call", _MISSING)
            original = layer.call
            object.__setattr__(layer, "call", wrapper_factory(layer, original))
            saved.append((layer, previous))
    except BaseException:
        _restore_calls(saved)
        raise
    try:
        yield
    finally:
        _restore_calls(saved)


@contextlib.contextmanager
def patched_input_standardization(
    layers: list[Any], on_inputs: Callable[[Any, list[Any]], None]
) -> Iterator[None]:
    """Reports the tensors a Functional model actually feeds its graph.

    `Functional.call` converts its inputs (`_standardize_inputs`) before running the
    graph, so the first layers receive new tensor objects. `on_inputs(model, flat)`
    is told which, in the order of `model.inputs`. Always restored.
    """
    saved: list[tuple[Any, Any]] = []
    try:
        for layer in layers:
            if not is_functional(layer) or not hasattr(layer, "_standardize_inputs"):
                continue
            previous = layer.__dict__.get("_standardize_inputs", _MISSING)
            original = layer._standardize_inputs

            def standardize(inputs, _layer=layer, _original=original):
                flat = _original(inputs)
                on_inputs(_layer, list(flat))
                return flat

            object.__setattr__(layer, "_standardize_inputs", standardize)
            saved.append((layer, previous))
        yield
    finally:
        _restore_calls(saved, "_standardize_inputs")


def _restore_calls(saved: list[tuple[Any, Any]], name: str = "call") -> None:
    for layer, previous in reversed(saved):
        if previous is _MISSING:
            try:
                object.__delattr__(layer, name)
            except AttributeError:
                pass
        else:
            object.__setattr__(layer, name, previous)


def model_input_tensors(model: Any) -> list[Any] | None:
    """The model's symbolic inputs (Functional, built Sequential), or None."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return list(inputs)


def build_input_shapes(model: Any) -> dict[str, Any] | None:
    """For a subclassed model that was built: the shapes it was built with."""
    shapes = getattr(model, "_build_shapes_dict", None)
    return dict(shapes) if shapes else None


def is_layer(x: Any) -> bool:
    return isinstance(x, _Layer)


def is_functional(model: Any) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(model, Functional)


def functional_of(model: Any) -> Any:
    """The Functional graph behind a model: itself, or a built Sequential's."""
    if is_functional(model):
        return model
    inner = getattr(model, "_functional", None)
    return inner if inner is not None and is_functional(inner) else None


def functional_nodes(model: Any) -> list[Any]:
    """The Functional graph's call nodes in topological order (inputs excluded)."""
    fn = functional_of(model)
    if fn is None:
        return []
    nodes_by_depth = fn._nodes_by_depth
    ordered = []
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.is_input:
                continue
            ordered.append(node)
    return ordered


def node_parts(node: Any) -> tuple[Any, tuple, dict, list]:
    """(operation, call args, call kwargs, flat outputs) of a Functional graph node."""
    return node.operation, node.arguments.args, node.arguments.kwargs, list(node.outputs)


def tensor_history(x: Any) -> tuple[Any, int, int] | None:
    """(operation, node_index, tensor_index) that produced a KerasTensor."""
    hist = getattr(x, "_keras_history", None)
    if hist is None:
        return None
    return hist.operation, hist.node_index, hist.tensor_index


def inbound_nodes(layer: Any) -> list[Any]:
    return list(getattr(layer, "_inbound_nodes", []) or [])


def silence_mask_warnings() -> contextlib.AbstractContextManager:
    """Keras warns when a layer destroys a mask; maskviz reports it instead."""
    import warnings

    cm = warnings.catch_warnings()

    class _Ctx:
        def __enter__(self):
            cm.__enter__()
            warnings.filterwarnings("ignore", message=".*does not support masking.*")
            return self

        def __exit__(self, *exc):
            return cm.__exit__(*exc)

    return _Ctx()


@contextlib.contextmanager
def jax_variables_from_state(model: Any, state: Any) -> Iterator[None]:
    """During a JAX `fit()`, Keras detaches the variables' values (they live in the
    training state passed to `train_function`). Attaches the state's trainable and
    non-trainable values for the duration of the block, then detaches them again
    if they were detached."""
    pairs = list(zip(model.trainable_variables, state[0])) + list(
        zip(model.non_trainable_variables, state[1])
    )
    detached = [v for v, _ in pairs if getattr(v, "_value", 0) is None]
    for v, value in pairs:
        v._value = value
    try:
        yield
    finally:
        for v in detached:
            v._value = None
