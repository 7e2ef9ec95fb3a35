"""`python -m maskviz`: the same command line as `maskviz`.

`python -m` puts the current folder first on `sys.path`; it is removed before anything else
is imported, so that a `numpy.py` or `mylayers.py` next to the model is never imported by
accident (the `maskviz` script never had the folder on the path either).
"""

import os
import sys


def _drop_current_folder() -> None:
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        cwd = None
    sys.path[:] = [
        p
        for p in sys.path
        if p not in ("", ".") and not (cwd and isinstance(p, str) and os.path.realpath(p) == cwd)
    ]


_drop_current_folder()

from maskviz.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
