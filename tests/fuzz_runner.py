"""Runs fuzz-corpus variants through `maskviz.cli.main()` in this one process.

Usage: ``python tests/fuzz_runner.py VARIANTS.json RESULTS.json [TIMEOUT_SECONDS]``.
Each variant's stdout and stderr are captured at the file-descriptor level (so C-level
output counts too), its exit code recorded, and a per-variant alarm stops it after the
timeout. One process for all variants: importing TensorFlow once instead of per variant.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_one(argv: list[str], timeout: int) -> dict:
    from maskviz.cli import main

    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.argv = ["maskviz", *argv]
    code: int | str | None = None
    start = time.monotonic()
    signal.alarm(timeout)
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except _Timeout:
        code = "timeout"
    except BaseException:  # escaped main(): print it so the test shows the traceback
        code = "escaped"
        traceback.print_exc()
    finally:
        signal.alarm(0)
        elapsed = time.monotonic() - start
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    err.seek(0)
    out.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    stdout_size = len(out.read())
    return {"code": code, "stderr": stderr, "stdout_bytes": stdout_size, "elapsed": elapsed}


def main() -> None:
    variants_file, results_file = sys.argv[1], sys.argv[2]
    timeout = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    signal.signal(signal.SIGALRM, _alarm)
    from maskviz.cli import _quiet_backend

    _quiet_backend()  # import the backend once, as the CLI does, before the first variant
    variants = json.loads(open(variants_file).read())
    results = {}
    for v in variants:
        results[v["id"]] = run_one(list(v["argv"]), timeout)
    with open(results_file, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
