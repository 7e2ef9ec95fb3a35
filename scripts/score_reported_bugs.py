"""Scores maskviz on the corpus of reproduced masking reports (tests/models/reported_bugs.py).

For every case: the padding truth measured on the installed Keras (independently
of maskviz), maskviz's error-level findings on the same model and padded data,
and whether the two agree (an error-level finding exactly when truth is "leak"
or "crash").

Usage:
    PYTHONPATH=. python scripts/score_reported_bugs.py [CASE ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--json", help="also write the rows as JSON to this path")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import keras
    from models import reported_bugs as rb

    unknown = [n for n in args.cases if n not in rb.CASES]
    if unknown:
        print(f"score_reported_bugs: unknown case(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    names = args.cases or list(rb.CASES)

    rows = []
    for name in names:
        c = rb.CASES[name]
        t = rb.truth(c)
        if "build" in t.checks:
            errors, note = None, "model does not build"
        else:
            try:
                errors, note = rb.maskviz_errors(c), ""
            except Exception as e:  # maskviz itself failed: that is a miss, not a pass
                errors, note = None, f"maskviz raised {type(e).__name__}: {e}"[:120]
        flagged = bool(errors)
        leaky = t.verdict in ("leak", "crash")
        rows.append(
            {
                "case": name,
                "kind": c.kind,
                "truth": t.verdict,
                "max_change": t.max_change,
                "maskviz": errors,
                "agree": errors is not None and flagged == leaky,
                "note": note,
            }
        )

    width = max(len(r["case"]) for r in rows)
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    print(f"{'case':{width}}  {'kind':8} {'truth':6} {'change':>8}  agree  maskviz errors")
    for r in rows:
        found = "(maskviz failed)" if r["maskviz"] is None else ",".join(r["maskviz"]) or "-"
        kind = (
            r["kind"]
            if r["kind"] == ("bug" if r["truth"] != "clean" else "correct")
            else (r["kind"] + "*")
        )
        print(
            f"{r['case']:{width}}  {kind:8} {r['truth']:6} {r['max_change']:8.2g}  "
            f"{'yes' if r['agree'] else 'NO':5}  {found} {r['note']}"
        )
    bugs = [r for r in rows if r["truth"] != "clean"]
    clean = [r for r in rows if r["truth"] == "clean"]
    found = sum(r["agree"] for r in bugs)
    false_alarms = sum(not r["agree"] for r in clean)
    agree = sum(r["agree"] for r in rows)
    print(
        f"bugs found {found}/{len(bugs)}, false alarms on correct models "
        f"{false_alarms}/{len(clean)}, agreement {100.0 * agree / len(rows):.1f}% "
        f"({agree}/{len(rows)}); * = kind differs from measured truth"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
