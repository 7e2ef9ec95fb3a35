"""Loss and gradients of the trainable weights, on every backend.

The only backend-specific code of maskviz's oracle: `tf.GradientTape` on
TensorFlow, `jax.value_and_grad` over `model.stateless_call` on JAX, autograd on
PyTorch. Nothing is applied to the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def loss_and_grads(
    model: Any, feed: Any, loss_fn: Callable[[Any], Any]
) -> tuple[float, list[np.ndarray]]:
    """`loss_fn(model(feed))` and its gradient for each of `model.trainable_variables`
    (zeros where a weight does not reach the loss)."""
    import keras

    backend = keras.backend.backend()
    variables = list(model.trainable_variables)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            y = model(feed, training=False)
            loss = loss_fn(y)
        grads = tape.gradient(loss, variables)
    elif backend == "jax":
        import jax

        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def f(tv: Any) -> Any:
            y, _ = model.stateless_call(tv, non_trainable, feed, training=False)
            return loss_fn(y)

        loss, grads = jax.value_and_grad(f)(trainable)
    elif backend == "torch":
        import torch

        y = model(feed, training=False)
        loss = loss_fn(y)
        params = [v.value for v in variables]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    else:  # numpy / openvino: no gradients
        y = model(feed, training=False)
        return float(keras.ops.convert_to_numpy(loss_fn(y))), []
    out = []
    for v, g in zip(variables, grads):
        if g is None:
            out.append(np.zeros(tuple(v.shape), dtype=np.float32))
            continue
        if hasattr(g, "values") and hasattr(g, "indices") and hasattr(g, "dense_shape"):
            import tensorflow as tf

            g = tf.convert_to_tensor(g)  # IndexedSlices of an Embedding
        out.append(np.asarray(keras.ops.convert_to_numpy(g), dtype=np.float64))
    return float(np.asarray(keras.ops.convert_to_numpy(loss))), out
