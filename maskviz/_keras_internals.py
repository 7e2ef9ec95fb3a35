"""The only module in maskviz that touches private Keras attributes.

Keras's mask machinery is mostly private (`_keras_mask`, `Layer.__call__`'s mask
population, the Functional graph's nodes). Everything maskviz needs from it goes
through the small functions here, so that a Keras release that moves something
breaks one file, not the whole tool.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras.src import backend as _backend
from keras.src.layers.layer import Layer as _Layer
from keras.src.ops.operation import Operation as _Operation

_MISSING = object()

# The instrumentation (`Layer.__call__` and instance `call` wrappers) is process-wide
# state: one thread at a time owns it. The lock is re-entrant so that one run can nest
# its patches; wrappers pass other threads' calls straight to the original.
_LOCK = threading.RLock()
_LOCAL = threading.local()

_REENTRY = (
    "maskviz was called while it was running a model in the same thread (a layer's call "
    "runs maskviz.inspect?), which it cannot instrument twice. Expected maskviz to be called "
    "outside the model it inspects; call it before or after the forward pass."
)


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


def instance_attributes(obj: Any) -> list[tuple[str, Any]]:
    """`(name, value)` for each attribute set on `obj` (`self.decoder = GRU(...)`), in
    the order they were set. On PyTorch a Keras layer is a `torch.nn.Module`, whose
    `__setattr__` keeps submodules (the layers among them) out of `__dict__`:
    they are found through `named_children()`."""
    attrs = list(vars(obj).items())
    children = getattr(obj, "named_children", None)
    if callable(children):
        known = {name for name, _ in attrs}
        attrs += [(name, value) for name, value in children() if name not in known]
    return attrs


class _Run:
    """One instrumented forward run: its thread, and whether a nested run was refused."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.refused = False


@contextlib.contextmanager
def instrumented_run(model: Any) -> Iterator[None]:
    """Exclusive use of the instrumentation for one forward run of `model`.

    Holds the instrumentation lock (another thread's run waits), refuses a nested run in
    the same thread (a layer whose `call` runs maskviz) with a `MaskvizError`, and puts
    every non-trainable variable of the model (RNN states, seed generators, statistics)
    back to its value at entry, so that each run starts from, and leaves, the state the
    user's model had.

    Raises:
        MaskvizError: on a nested run (raised inside the model's call, and again by the
            outer run when its block ends, whatever the model did with the first).
    """
    from .errors import MaskvizError

    current = getattr(_LOCAL, "run", None)
    if current is not None:
        current.refused = True
        raise MaskvizError(_REENTRY)
    with _LOCK:
        run = _Run()
        _LOCAL.run = run
        saved = snapshot_state(model)
        try:
            yield
        finally:
            _LOCAL.run = None
            restore_state(saved)
    if run.refused:
        raise MaskvizError(_REENTRY)


def state_variables(model: Any, *, trainable: bool = True) -> list[Any]:
    """Every variable the model's layers hold: weights, non-trainable state, and state
    kept outside `layer.variables` (a stateful RNN's `states`), without duplicates.
    With `trainable=False`, the trainable weights are left out."""
    found: dict[int, Any] = {}

    def add(v: Any) -> None:
        if isinstance(v, _backend.Variable) and (trainable or not v.trainable):
            found.setdefault(id(v), v)

    for v in getattr(model, "variables", []) or []:
        add(v)
    for layer in flatten_layers(model):
        for v in getattr(layer, "variables", []) or []:
            add(v)
        for value in list(vars(layer).values()):
            if isinstance(value, (list, tuple)):
                for item in value:
                    add(item)
            elif isinstance(value, dict):
                for item in value.values():
                    add(item)
            else:
                add(value)
    return list(found.values())


def _host(v: Any) -> Any:
    """A variable's value as numpy on any backend (torch values that require grad are
    detached by `convert_to_numpy`; `.numpy()` refuses them)."""
    import keras

    return keras.ops.convert_to_numpy(v)


def snapshot_state(model: Any) -> list[tuple[Any, Any]]:
    """(variable, copy of its value) for every non-trainable variable of `model`: what a
    forward pass in inference mode can change (RNN states, seed generators, statistics a
    custom layer keeps). Trainable weights are not copied: a forward pass does not train,
    and copying a large model's weights on every run would cost more than the run."""
    import numpy as np

    saved = []
    for v in state_variables(model, trainable=False):
        try:
            saved.append((v, np.array(_host(v), copy=True)))
        except Exception:  # a variable without a host value (uninitialised): skip it
            continue
    return saved


def restore_state(saved: list[tuple[Any, Any]]) -> None:
    """Assigns each saved value back where the variable's value changed."""
    import numpy as np

    for v, value in saved:
        try:
            now = np.asarray(_host(v))
            same = now.shape == value.shape and np.array_equal(
                now, value, equal_nan=now.dtype.kind in "fc"
            )
            if not same:
                v.assign(value)
        except Exception:  # a variable that cannot be read back: leave it
            continue


@contextlib.contextmanager
def _patched_dunder_call(
    cls: type, wrapper_factory: Callable[[Callable], Callable]
) -> Iterator[None]:
    """Replaces `cls.__call__` for the duration of the block; always restored.

    `wrapper_factory(original)` returns the function to install. It sees only calls made
    by the thread that installed it: other threads' calls run the original. Holds the
    instrumentation lock, so that patches nest and are restored last-in-first-out.
    """
    with _LOCK:
        original = cls.__dict__["__call__"]
        wrapper = wrapper_factory(original)
        owner = threading.get_ident()

        @functools.wraps(original)
        def __call__(self, *args, **kwargs):
            if threading.get_ident() != owner:
                return original(self, *args, **kwargs)
            return wrapper(self, *args, **kwargs)

        cls.__call__ = __call__
        try:
            yield
        finally:
            cls.__call__ = original


def patched_layer_call(
    wrapper_factory: Callable[[Callable], Callable],
) -> contextlib.AbstractContextManager:
    """Replaces `Layer.__call__` for the duration of the block (see `_patched_dunder_call`)."""
    return _patched_dunder_call(_Layer, wrapper_factory)


def patched_operation_call(
    wrapper_factory: Callable[[Callable], Callable],
) -> contextlib.AbstractContextManager:
    """Replaces `Operation.__call__` for the duration of the block.

    A Functional model runs each `keras.ops` node of its graph (`ops.mean(x)`,
    `x * 2`, `x[:, 1:]`) through `Operation.__call__`; `Layer.__call__` reaches it
    too, through `super()`, so the wrapper must pass layers through.
    """
    return _patched_dunder_call(_Operation, wrapper_factory)


def is_operation(x: Any) -> bool:
    """A Keras `Operation` that is not a layer (a `keras.ops` graph node)."""
    return isinstance(x, _Operation) and not isinstance(x, _Layer)


@contextlib.contextmanager
def patched_instance_calls(
    layers: list[Any], wrapper_factory: Callable[[Any, Callable], Callable]
) -> Iterator[None]:
    """Shadows `layer.call` with an instance attribute for each layer; always restored.

    Layers such as `TimeDistributed` call their inner layer's `call` directly,
    bypassing `__call__`; the instance wrapper sees those calls too, and it sees
    the keyword arguments (the `mask`) exactly as `call` receives them.
    """
    with _LOCK:
        saved: list[tuple[Any, Any]] = []
        owner = threading.get_ident()
        try:
            for layer in layers:
                previous = layer.__dict__.get("call", _MISSING)
                original = layer.call
                object.__setattr__(
                    layer, "call", _for_owner(owner, original, wrapper_factory(layer, original))
                )
                saved.append((layer, previous))
        except BaseException:
            _restore_calls(saved)
            raise
        try:
            yield
        finally:
            _restore_calls(saved)


def _for_owner(owner: int, original: Callable, wrapper: Callable) -> Callable:
    """`wrapper` for calls from thread `owner`, `original` for any other thread."""

    @functools.wraps(wrapper)
    def call(*args, **kwargs):
        if threading.get_ident() != owner:
            return original(*args, **kwargs)
        return wrapper(*args, **kwargs)

    return call


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
    owner = threading.get_ident()
    _LOCK.acquire()
    try:
        for layer in layers:
            if not is_functional(layer) or not hasattr(layer, "_standardize_inputs"):
                continue
            previous = layer.__dict__.get("_standardize_inputs", _MISSING)
            original = layer._standardize_inputs

            def standardize(inputs, _layer=layer, _original=original):
                flat = _original(inputs)
                if threading.get_ident() == owner:
                    on_inputs(_layer, list(flat))
                return flat

            object.__setattr__(layer, "_standardize_inputs", standardize)
            saved.append((layer, previous))
        yield
    finally:
        _restore_calls(saved, "_standardize_inputs")
        _LOCK.release()


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
    inner = wrapped_functional(model)
    return inner if inner is not None and is_functional(inner) else None


def wrapped_functional(layer: Any) -> Any:
    """The graph a layer keeps in `_functional` (a built Sequential's Functional), or `None`.

    Unlike `functional_of`, the value is returned whatever its type."""
    return getattr(layer, "_functional", None)


def inputs_struct(functional: Any) -> Any:
    """The structure a Functional graph's inputs were given in (`_inputs_struct`: a dict for
    named inputs, a list or a single tensor otherwise), or `None`."""
    return getattr(functional, "_inputs_struct", None)


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


def reduction_of(op: Any) -> tuple[str, Any, bool] | None:
    """`(kind, axis, keepdims)` when `op` is a `keras.ops` mean/sum/max/min node of
    a Functional graph (its class and attributes are private to Keras), else `None`."""
    from keras.src.ops import numpy as knp

    for kind, cls in (("mean", "Mean"), ("sum", "Sum"), ("max", "Max"), ("min", "Min")):
        c = getattr(knp, cls, None)
        if c is not None and isinstance(op, c):
            return kind, getattr(op, "axis", None), bool(getattr(op, "keepdims", False))
    return None


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
