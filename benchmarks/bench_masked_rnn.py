"""Times MaskedRNN(LSTMCell) against keras.layers.LSTM on the same data.

Both layers sit in a one-layer Functional model with the same weights and run
through `model.predict_on_batch` (a compiled `tf.function` on TensorFlow, a
`jax.jit` on JAX), on CPU, with `unroll=False`. Prints the median time of each
side over several interleaved repeats (after warm-up) and the ratio masked / keras.

    KERAS_BACKEND=tensorflow python benchmarks/bench_masked_rnn.py
    KERAS_BACKEND=jax python benchmarks/bench_masked_rnn.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from maskviz.layers import MaskedRNN  # noqa: E402


def _model(rnn: keras.layers.Layer, steps: int, features: int) -> keras.Model:
    inputs = keras.Input((steps, features))
    masked = keras.layers.Masking()(inputs)
    return keras.Model(inputs, rnn(masked))


def _time_per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5, help="calls per timed repeat")
    parser.add_argument("--return-sequences", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.steps, args.features)).astype("float32")
    lengths = rng.integers(args.steps // 2, args.steps + 1, size=args.batch)
    x[np.arange(args.steps)[None, :] >= lengths[:, None]] = 0.0  # right padding

    lstm = keras.layers.LSTM(args.units, return_sequences=args.return_sequences)
    masked = MaskedRNN(keras.layers.LSTMCell(args.units), return_sequences=args.return_sequences)
    keras_model = _model(lstm, args.steps, args.features)
    masked_model = _model(masked, args.steps, args.features)
    masked.set_weights(lstm.get_weights())

    # Warm-up: compile both, and check they agree before timing anything.
    ref = keras_model.predict_on_batch(x)
    out = masked_model.predict_on_batch(x)
    max_diff = float(np.max(np.abs(np.asarray(ref) - np.asarray(out))))
    for _ in range(2):
        keras_model.predict_on_batch(x)
        masked_model.predict_on_batch(x)

    # Interleaved repeats, so that load from other processes hits both sides alike.
    keras_times, masked_times = [], []
    for _ in range(args.repeats):
        keras_times.append(_time_per_call(lambda: keras_model.predict_on_batch(x), args.calls))
        masked_times.append(_time_per_call(lambda: masked_model.predict_on_batch(x), args.calls))
    t_keras, t_masked = statistics.median(keras_times), statistics.median(masked_times)
    print(
        f"backend={keras.backend.backend()} batch={args.batch} steps={args.steps} "
        f"units={args.units} features={args.features} unroll=False "
        f"return_sequences={args.return_sequences}"
    )
    print(f"max |difference| of outputs: {max_diff:.2e}")
    print(f"keras.layers.LSTM:        {t_keras * 1e3:8.2f} ms per call (median)")
    print(f"MaskedRNN(LSTMCell):      {t_masked * 1e3:8.2f} ms per call (median)")
    print(f"ratio masked / keras:     {t_masked / t_keras:8.2f}")


if __name__ == "__main__":
    main()
