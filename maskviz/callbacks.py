"""`PaddingCheck`: the padding invariances on the first batch of `fit()`.

```python
model.fit(x, y, callbacks=[maskviz.callbacks.PaddingCheck()])
```

On the first training batch the callback runs maskviz on *your* batch: its inputs
(padding found in them: token id 0, `Masking`'s `mask_value`, an explicit mask
input, constant runs at the end or start of rows), its targets and sample weights,
and the compiled loss. It prints the findings (`verbose=0` to keep quiet; they are
in `callback.report` either way). With `strict=True`, an error-level finding stops
training (`model.stop_training = True`) after that first step.

It does not change the training run: every check runs before the first weight
update, nothing is applied to the weights, every variable (RNN states included) is
restored afterwards, and the batch is handed to the training step unchanged; the
weights and the losses are the same as without the callback.

How it gets the batch (Keras callbacks are not given the data):

- TensorFlow: for the duration of `fit()`, `model.train_step` is wrapped (an
  instance attribute, removed at the end, and the train function Keras had built
  is put back). On the first step, the wrapper hands the batch to the check with
  `tf.py_function`, and the training step waits for the check (a control
  dependency), so the check sees the weights before the first update. With
  `run_eagerly=True` the batch is read directly.
- JAX: `model.train_function` is wrapped for the duration of `fit()`. Its first
  call takes the first batch from the iterator Keras passes, runs the check with
  the weights from the training state, and hands the training step an iterator
  that yields that batch first, then the rest.
- PyTorch: `model.train_step` is wrapped; the batch is eager.
"""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np


class PaddingCheck(keras.callbacks.Callback):
    """Runs maskviz's padding invariances on the first batch of `fit()`.

    Args:
        strict: stop training when an error-level finding is found.
        loss: a loss name or object to check instead of the compiled loss.
        select: rule ids to run (default: all).
        verbose: print the report (1, default) or not (0).

    Attributes:
        report: the `maskviz.report.Report` of the first batch, once it ran.
        errors: its error-level findings.
    """

    def __init__(
        self,
        *,
        strict: bool = False,
        loss: Any = None,
        select: Any = None,
        verbose: int = 1,
    ) -> None:
        super().__init__()
        self.strict = strict
        self.loss = loss
        self.select = select
        self.verbose = verbose
        self.report: Any = None
        self.errors: list[Any] = []
        self._done = False
        self._saved: dict[str, Any] = {}

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs: Any = None) -> None:
        self._done = False
        model = self.model
        backend = keras.backend.backend()
        if backend == "jax":
            self._saved = {"train_function": model.train_function}
            original = model.train_function

            def train_function(state: Any, iterator: Any) -> Any:
                if self._done:
                    return original(state, iterator)
                from . import _keras_internals as ki

                data = next(iterator)
                with ki.jax_variables_from_state(model, state):
                    self._check(data)
                return original(state, itertools.chain([data], iterator))

            model.train_function = train_function
            return
        self._saved = {
            "train_function": model.train_function,
            "train_step": model.__dict__.get("train_step"),
        }
        step = model.train_step

        def train_step(data: Any) -> Any:
            if self._done:
                return step(data)
            if backend == "tensorflow":
                import tensorflow as tf

                if not tf.executing_eagerly():
                    flat = keras.tree.flatten(data)

                    def host(*arrays: Any) -> Any:
                        self._check(keras.tree.pack_sequence_as(data, [a.numpy() for a in arrays]))
                        return np.int32(0)

                    done = tf.py_function(host, flat, tf.int32)
                    with tf.control_dependencies([done]):
                        data = keras.tree.map_structure(tf.identity, data)
                    return step(data)
            self._check(data)
            return step(data)

        model.train_step = train_step
        model.make_train_function(force=True)

    def on_train_batch_end(self, batch: Any, logs: Any = None) -> None:
        if self.strict and self.errors:
            self.model.stop_training = True

    def on_train_end(self, logs: Any = None) -> None:
        model = self.model
        if "train_step" in self._saved:
            if self._saved["train_step"] is None:
                model.__dict__.pop("train_step", None)
            else:
                model.train_step = self._saved["train_step"]
        if "train_function" in self._saved:
            model.train_function = self._saved["train_function"]
        self._saved = {}

    # ---------------------------------------------------------------- the check
    def _check(self, data: Any) -> None:
        if self._done:
            return
        self._done = True
        x, y, sw = keras.utils.unpack_x_y_sample_weight(data)
        report = check_batch(self.model, x, y, sw, loss=self.loss, select=self.select)
        self.report = report
        self.errors = [f for f in report.findings if f.severity.value == "error"]
        if self.verbose:
            print(report.to_text(width=100))
            if self.strict and self.errors:
                print(f"maskviz: {len(self.errors)} error(s): training stops after this step.")


def check_batch(
    model: Any, x: Any, y: Any = None, sample_weight: Any = None, *, loss: Any = None, select=None
) -> Any:
    """maskviz on one training batch: inputs `x`, targets `y`, `sample_weight`, and
    the compiled loss (or `loss`). Returns a `Report`."""
    from .api import _check
    from .probe import probe_from_arrays
    from .trace import run_trace

    arrays = _as_numpy(x)
    if isinstance(arrays, dict):
        data = arrays
    else:
        flat = arrays if isinstance(arrays, (list, tuple)) else [arrays]
        data = {f"arr_{i}": a for i, a in enumerate(flat)}
    probe = probe_from_arrays(model, data)
    trace = run_trace(model, probe.inputs, probe.feed())
    return _check(
        model,
        probe,
        trace,
        select=select,
        loss=loss,
        targets=None if y is None else _as_numpy(y),
        sample_weight=None if sample_weight is None else _as_numpy(sample_weight),
    )


def _as_numpy(x: Any) -> Any:
    return keras.tree.map_structure(lambda a: np.asarray(keras.ops.convert_to_numpy(a)), x)
