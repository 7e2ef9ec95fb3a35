"""How much slower is `maskviz.inspect` than loading a model and predicting once?

For two models saved as `.keras` files:

- a 100-layer masked LSTM stack (Embedding(mask_zero=True), 100 x LSTM(4,
  return_sequences=True), Dense), sequence length 16;
- a 12-layer keras-hub `BertBackbone` with random weights (hidden 32,
  intermediate 64, 2 heads, vocabulary 100), sequence length 16, with its
  `padding_mask` input;

it times, on the same 4-row batch (right-padded rows of lengths 16, 4, 8, 12):

- baseline: `keras.saving.load_model(path)` + `model.predict(batch)`;
- `load_model` + `maskviz.inspect(model, data=batch)` (trace, rules, the values
  oracle and the length/side/truncation invariances, which run as plain model
  calls, traced again only where they are violated);
- the same with `oracle=False` (`--no-oracle` runs only this one).

Each figure is the median of `--repeat` runs in one process after a warm-up run,
so TensorFlow's import and first-call costs are not counted.

    TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=. python benchmarks/bench_inspect.py \\
        [--repeat 3] [--no-oracle] [--only lstm|bert]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import keras  # noqa: E402
import numpy as np  # noqa: E402

T = 16
LENGTHS = (16, 4, 8, 12)


def lstm_stack(depth: int = 100) -> keras.Model:
    tokens = keras.Input((T,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 4, mask_zero=True)(tokens)
    for _ in range(depth):
        x = keras.layers.LSTM(4, return_sequences=True)(x)
    return keras.Model(tokens, keras.layers.Dense(2)(x), name="lstm_stack_100")


def bert_12() -> keras.Model:
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=12,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=T,
    )


def batch(vocab: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    keep = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
    tokens = np.where(keep, rng.integers(1, vocab, (len(LENGTHS), T)), 0).astype("int32")
    out = {"tokens": tokens}
    if "token_ids" in names:
        out = {
            "token_ids": tokens,
            "segment_ids": np.zeros_like(tokens),
            "padding_mask": keep.astype("int32"),
        }
    return out


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, model: keras.Model, data: dict, args, tmp: str) -> None:
    import maskviz

    path = os.path.join(tmp, f"{name}.keras")
    model.save(path)
    mask_inputs = {"padding_mask": "token_ids"} if "padding_mask" in data else None
    feed = data if len(data) > 1 else next(iter(data.values()))

    def baseline():
        m = keras.saving.load_model(path)
        m.predict(feed, verbose=0)

    def inspect(oracle: bool):
        def run():
            m = keras.saving.load_model(path)
            maskviz.inspect(m, data=data, oracle=oracle, mask_inputs=mask_inputs)

        return run

    def eager():
        m = keras.saving.load_model(path)
        m(feed, training=False)

    base = median_time(baseline, args.repeat)
    base_eager = median_time(eager, args.repeat)
    no_oracle = median_time(inspect(False), args.repeat)
    print(f"{name}: {len(model.layers)} top-level layers")
    print(f"  load_model + predict              {base:7.2f} s")
    print(f"  load_model + model(x) (eager)     {base_eager:7.2f} s")
    print(f"  load_model + inspect(oracle=False) {no_oracle:6.2f} s   x{no_oracle / base:.2f}")
    if not args.no_oracle:
        full = median_time(inspect(True), args.repeat)
        report = maskviz.inspect(model, data=data, mask_inputs=mask_inputs)
        runs = report.oracle.runs if report.oracle is not None else 0
        inv = getattr(report.oracle, "invariance", None)
        inv_runs = inv.runs if inv is not None else 0
        rules = ", ".join(f.rule for f in report.findings) or "none"
        print(
            f"  load_model + inspect              {full:7.2f} s   x{full / base:.2f}"
            f"   (values oracle: {runs} traced pass{'es' if runs != 1 else ''}; "
            f"invariances: {inv_runs} plain pass{'es' if inv_runs != 1 else ''}; "
            f"findings: {rules})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-oracle", action="store_true", help="time inspect without the oracle only"
    )
    parser.add_argument("--only", choices=("lstm", "bert"), default=None)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "lstm"):
            bench("lstm_stack_100", lstm_stack(), batch(50, ("tokens",)), args, tmp)
        if args.only in (None, "bert"):
            bench("bert_12", bert_12(), batch(100, ("token_ids",)), args, tmp)


if __name__ == "__main__":
    main()
