"""Runs under tf.keras 2 (`tf_keras`), in a subprocess of `maskviz.legacy`: loads an .h5
model, wraps every layer's `call` to record whether it received a non-None `mask`, runs the
given inputs through it once, and prints `{"tf_keras": ..., "received": {layer: bool}}`.

    python -m maskviz._keras2_probe MODEL.h5 FEED.npz

It never imports Keras 3 (nor the rest of maskviz)."""

from __future__ import annotations

import functools
import json
import os
import sys


def _flat_layers(layer, out):
    for sub in getattr(layer, "layers", None) or []:
        out.append(sub)
        _flat_layers(sub, out)
    for attr in ("layer", "forward_layer", "backward_layer"):  # wrappers
        sub = getattr(layer, attr, None)
        if sub is not None and sub not in out and hasattr(sub, "call"):
            out.append(sub)
    return out


def main(model_path: str, feed_path: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tf_keras

    model = tf_keras.models.load_model(model_path, compile=False)
    received: dict[str, bool] = {}

    def wrap(layer):
        original = layer.call

        @functools.wraps(original)
        def call(*args, **kwargs):
            mask = kwargs.get("mask")
            flat = list(mask) if isinstance(mask, (list, tuple)) else [mask]
            got = any(m is not None for m in flat)
            received[layer.name] = received.get(layer.name, False) or got
            return original(*args, **kwargs)

        layer.call = call

    for layer in _flat_layers(model, []):
        if type(layer).__name__ != "InputLayer":
            wrap(layer)
    feed = dict(np.load(feed_path))
    # The probe is keyed by input name, the same names in both Kerases (the same file).
    inputs = [feed[name] for name in model.input_names]
    model(inputs if len(inputs) > 1 else inputs[0], training=False)
    print(json.dumps({"tf_keras": tf_keras.__version__, "received": received}, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
