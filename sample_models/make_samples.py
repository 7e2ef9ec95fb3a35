"""Build the small sample models bundled in ``maskviz/samples/``: one per mask bug class,
plus two clean models.

Regenerate them (from the repository root) with::

    python sample_models/make_samples.py            # writes into maskviz/samples/
    python sample_models/make_samples.py --out DIR  # writes elsewhere

Every model is tiny (vocabulary 20, 8 units) and deterministic: each one is built after
``keras.utils.set_random_seed(0)`` and every layer and input has an explicit name, so the
same Keras version always writes the same configs and weights. ``tests/test_samples.py``
rebuilds them into a temporary directory and checks that the committed files match.

The builders are in ``tests/models/samples.py`` (the registry of test model fixtures,
group ``samples``). The custom layers used by ``custom_layer_no_masking.keras`` and
``explicit_mask_override.keras`` live in ``maskviz/samples/custom_layers.py`` (registered
under package ``maskviz_samples``), so the samples load with plain
``keras.saving.load_model`` after ``import maskviz.samples``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from maskviz.samples import SAMPLES  # noqa: E402

SEED = 0

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[1] / "maskviz" / "samples"

# The builders live in the one registry of test model fixtures (tests/models/).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from models.samples import BUILDERS  # noqa: E402


def build_model(name: str) -> keras.Model:
    """Builds sample `name` from a fixed seed (the mask warnings Keras prints while building
    the buggy ones are the point of the sample, so they are silenced here)."""
    keras.utils.set_random_seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = BUILDERS[name]()
    _name_operations(model)
    return model


def _name_operations(model: keras.Model) -> None:
    """Gives the model's non-layer operations names that depend only on the model.

    Keras 3 records the mask it fills in for a layer's ``mask`` argument as a node input,
    computed by an operation node (``Embedding.compute_mask`` -> ``NotEqual``), and names that
    node from a process-wide counter (``not_equal_7``). Renaming keeps the saved configs
    identical however many models were built before in the process.
    """
    counts: dict[str, int] = {}
    for op in model.operations:
        if isinstance(op, layers.Layer):
            continue
        base = re.sub(r"_\d+$", "", op.name)
        n = counts.get(base, 0)
        counts[base] = n + 1
        op.name = base if n == 0 else f"{base}_{n}"


def build_samples(out_dir: str | os.PathLike[str] = DEFAULT_OUT) -> dict[str, pathlib.Path]:
    """Builds every sample in ``SAMPLES`` and saves it into `out_dir`; returns name -> path."""
    missing = set(SAMPLES) ^ set(BUILDERS)
    if missing:
        raise RuntimeError(f"SAMPLES and BUILDERS disagree about: {sorted(missing)}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (filename, _description, _kind) in SAMPLES.items():
        model = build_model(name)
        path = out / filename
        model.save(path)
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for name, path in build_samples(args.out).items():
        print(f"{name:28s} {path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
