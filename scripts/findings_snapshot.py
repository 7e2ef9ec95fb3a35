"""Dump maskviz's findings on every fixture model, to compare two versions of the rules.

Runs `maskviz.inspect` on every model of `tests/zoo.py`, `tests/zoo_bugs.py`,
`tests/zoo_truth.py`, `tests/reported_bugs.py` and the bundled samples, and writes
one JSON object: `{"<corpus>/<model>": [finding, ...]}`, each finding with its rule,
call, severity, message, suggestion, fix and details (in report order). A model that
fails to build or inspect records the exception instead.

Usage (from the repository root, with the copy under test first on the path)::

    PYTHONPATH=. python scripts/findings_snapshot.py /tmp/findings_before.json
    PYTHONPATH=. python scripts/findings_snapshot.py /tmp/findings_after.json
    python scripts/findings_snapshot.py --compare /tmp/findings_before.json /tmp/findings_after.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent


def _finding(f: Any) -> dict[str, Any]:
    d = f.to_dict()
    return {
        "rule": f.rule,
        "call_id": f.call_id,
        "severity": f.severity.value,
        "message": f.message,
        "suggestion": f.suggestion,
        "fix": d["fix"],
        "details": repr(sorted(d["details"].items())),
    }


def _jobs() -> Iterator[tuple[str, Callable[[], Any]]]:
    """(key, thunk returning a Report) for every model."""
    import keras

    import maskviz

    sys.path.insert(0, str(ROOT / "tests"))
    import reported_bugs
    import zoo
    import zoo_bugs
    import zoo_truth

    z = zoo.Zoo()
    names = [
        n
        for n, v in vars(zoo).items()
        if callable(v)
        and getattr(v, "__module__", "") == "zoo"
        and not n.startswith("_")
        and n[0].islower()
        and not isinstance(v, type)
    ]
    for name in names:
        yield f"zoo/{name}", lambda name=name: maskviz.inspect(z[name])
        yield f"zoo-no-oracle/{name}", lambda name=name: maskviz.inspect(z[name], oracle=False)
    for name in zoo_bugs.BUGS:

        def bug(name: str = name) -> Any:
            model, data = zoo_bugs.build(name)
            return maskviz.inspect(model, data=data)

        yield f"zoo_bugs/{name}", bug
    for name, make in zoo_truth.ZOO.items():

        def truth(make: Callable[[], Any] = make) -> Any:
            entry = make()
            return maskviz.inspect(entry.model, data=entry.x, loss=entry.loss)

        yield f"zoo_truth/{name}", truth
    for name, case in reported_bugs.CASES.items():

        def reported(case: Any = case) -> Any:
            model = case.build()
            data = case.data()
            try:
                names = {t.name for t in model.inputs}
            except (AttributeError, ValueError):
                names = set()
            if set(data) != names:
                data = {f"arr_{i}": v for i, v in enumerate(data.values())}
            return maskviz.inspect(model, data=data, loss=case.loss)

        yield f"reported_bugs/{name}", reported
    import maskviz.samples as samples

    for name in samples.SAMPLES:

        def sample(name: str = name) -> Any:
            model = keras.saving.load_model(samples.sample_path(name))
            return maskviz.inspect(model)

        yield f"samples/{name}", sample


def snapshot(out: Path, only: str | None = None) -> None:
    result: dict[str, Any] = {}
    for key, thunk in _jobs():
        if only and only not in key:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = thunk()
            result[key] = [_finding(f) for f in report.findings]
        except Exception as e:  # recorded, compared like findings
            result[key] = {"error": f"{type(e).__name__}: {e}"}
        print(key, len(result[key]), file=sys.stderr, flush=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True))


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    diffs = 0
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            diffs += 1
            print(f"--- {key}")
            print("before:", json.dumps(a.get(key), indent=1))
            print("after: ", json.dumps(b.get(key), indent=1))
    print(f"{len(set(a) | set(b))} models, {diffs} differ")
    return 1 if diffs else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--only", default=None, help="models whose key contains this text")
    args = p.parse_args()
    if args.compare:
        return compare(*args.paths)
    snapshot(args.paths[0], args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
