"""Times drawing a ~2,000-call model: maskviz's render beside `keras.utils.plot_model`.

The model is an Embedding(mask_zero=True) followed by N nested functional blocks of
Dense/LayerNormalization/Dropout layers (`--blocks 100 --layers 19` gives 2,001
calls), so it has clusters to draw and collapse. In one process:

- `inspect`: `maskviz.inspect(model, oracle=False)` (trace + rules), once;
- `graph`: `build_graph` (networkx);
- `dot`: `to_dot` (styled DOT text, no layout);
- `svg` / `png` at `depth=None` (every call, clusters) and `depth=0` (blocks collapsed);
- `plot_model`: `keras.utils.plot_model(model, expand_nested=True)` to PNG, and
  without nesting; needs `pydot` and Graphviz's `dot` program (maskviz needs neither).

Prints the median of `--repeats` runs of each and the ratios render / plot_model.

    python benchmarks/bench_render.py
    python benchmarks/bench_render.py --blocks 20 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import maskviz  # noqa: E402
from maskviz.graph import build_graph  # noqa: E402
from maskviz.render import render_file, to_dot  # noqa: E402


def build_model(blocks: int, layers: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(100, 16, mask_zero=True, name="emb")(tokens)
    kinds = (
        lambda i: keras.layers.Dense(16, name=f"dense_{i}"),
        lambda i: keras.layers.LayerNormalization(name=f"norm_{i}"),
        lambda i: keras.layers.Dropout(0.1, name=f"dropout_{i}"),
    )
    for b in range(blocks):
        inner_in = keras.Input((None, 16), name=f"block_{b}_in")
        y = inner_in
        for i in range(layers):
            y = kinds[i % len(kinds)](i)(y)
        x = keras.Model(inner_in, y, name=f"block_{b}")(x)
    return keras.Model(tokens, x, name="deep")


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--layers", type=int, default=19)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = build_model(args.blocks, args.layers)
    start = time.perf_counter()
    report = maskviz.inspect(model, oracle=False)
    inspect_s = time.perf_counter() - start
    graph = build_graph(report.trace, report.findings)
    n_calls = len(report.trace.calls)
    out = tempfile.mkdtemp(prefix="maskviz-bench-")
    print(f"model: {n_calls} calls ({args.blocks} nested blocks x {args.layers} layers + 1)")
    print(f"keras {keras.__version__} ({keras.backend.backend()}); repeats={args.repeats}")
    print(f"{'inspect (trace + rules, once)':<40} {inspect_s:8.2f} s")

    rows = {
        "graph (networkx)": lambda: build_graph(report.trace, report.findings),
        "dot text, depth=None": lambda: to_dot(graph),
        "svg, depth=None": lambda: render_file(graph, os.path.join(out, "all.svg")),
        "png, depth=None": lambda: render_file(graph, os.path.join(out, "all.png")),
        "svg, depth=0": lambda: render_file(graph, os.path.join(out, "d0.svg"), depth=0),
        "png, depth=0": lambda: render_file(graph, os.path.join(out, "d0.png"), depth=0),
    }
    results = {}
    for name, fn in rows.items():
        results[name] = median_seconds(fn, args.repeats)
        print(f"{name:<40} {results[name]:8.2f} s")

    plot = {}
    for nested in (True, False):
        name = f"plot_model png, expand_nested={nested}"
        path = os.path.join(out, f"plot_{nested}.png")
        try:
            plot[nested] = median_seconds(
                lambda p=path, n=nested: keras.utils.plot_model(
                    model, to_file=p, show_shapes=True, expand_nested=n
                ),
                args.repeats,
            )
        except Exception as e:  # pydot or Graphviz's `dot` program missing
            print(f"{name:<40} unavailable: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
            continue
        print(f"{name:<40} {plot[nested]:8.2f} s")
    for ours, theirs in (
        ("png, depth=None", True),
        ("png, depth=0", False),
        ("png, depth=None", False),
    ):
        if theirs in plot:
            ratio = results[ours] / plot[theirs]
            print(f"ratio maskviz {ours} / plot_model expand_nested={theirs}: {ratio:.2f}")
    print(f"files in {out}")


if __name__ == "__main__":
    main()
