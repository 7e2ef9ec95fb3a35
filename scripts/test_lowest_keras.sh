#!/usr/bin/env bash
# Runs `maskviz demo` and the test suite against one Keras version (default: the lowest
# that pyproject.toml declares), in a throwaway virtual env that reuses this machine's
# site-packages (TensorFlow, JAX, ...) and swaps in only that Keras.
#
#   scripts/test_lowest_keras.sh            # the declared minimum
#   scripts/test_lowest_keras.sh 3.12.0     # any other version
#   DEMO_ONLY=1 scripts/test_lowest_keras.sh 3.10.0   # only: do the samples load?
#   PYTEST_ARGS="tests/test_render.py" scripts/test_lowest_keras.sh   # a part of the suite
#
# Not run by CI (it installs from PyPI). Exit code: pytest's (or the demo's).
set -euo pipefail
cd "$(dirname "$0")/.."
min=$(python - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(re.search(r">=\s*([\d.]+)", d).group(1) for d in deps if d.startswith("keras")))
PY
)
version="${1:-$min}"
venv="$(mktemp -d)/keras-$version"
python -m venv --system-site-packages "$venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=3
"$venv/bin/python" -m pip install -q --no-deps "keras==$version"
"$venv/bin/python" -m pip install -q --no-deps -e .
echo "keras $("$venv/bin/python" -c 'import keras; print(keras.__version__)') in $venv"
"$venv/bin/python" -m maskviz demo > "$(dirname "$venv")/demo.txt" 2>&1 || true
if grep -q "Traceback" "$(dirname "$venv")/demo.txt" || ! grep -q "clean_transformer" "$(dirname "$venv")/demo.txt"; then
  echo "maskviz demo failed on keras $version:"; tail -20 "$(dirname "$venv")/demo.txt"; exit 1
fi
echo "maskviz demo: ok"
grep -E "^(error|maskviz:)" "$(dirname "$venv")/demo.txt" | head -20 || true
[[ "${DEMO_ONLY:-}" == 1 ]] && exit 0
"$venv/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-}
