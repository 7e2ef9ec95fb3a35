#!/usr/bin/env bash
# Runs the test suite once per installed Keras backend (tensorflow, jax, torch) and prints
# a table of passed/failed/skipped per backend. Not part of CI's test step (torch is big);
# run it by hand after `pip install -e ".[test,torch]"`.
#
#   scripts/test_backends.sh              # every installed backend
#   scripts/test_backends.sh jax torch    # only these
#   PYTEST_ARGS="-x tests/test_trace.py" scripts/test_backends.sh
#   PYTEST_ARGS='-m "not slow"' scripts/test_backends.sh jax torch   # the quick run
#
# Exit code: 0 when every backend's run passed.
set -uo pipefail
cd "$(dirname "$0")/.."
backends=("$@")
if [[ ${#backends[@]} -eq 0 ]]; then
  for b in tensorflow jax torch; do
    python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$b') is None)" \
      && backends+=("$b")
  done
fi
# PYTEST_ARGS is split like a shell command line, quotes included.
eval "extra=(${PYTEST_ARGS:-})"
logs=$(mktemp -d)
status=0
for b in "${backends[@]}"; do
  echo "== KERAS_BACKEND=$b" >&2
  KERAS_BACKEND=$b TF_CPP_MIN_LOG_LEVEL=3 python -m pytest -q -p no:cacheprovider \
    "${extra[@]}" > "$logs/$b.log" 2>&1 || status=1
  tail -1 "$logs/$b.log" >&2
done
printf '\n| backend | passed | failed | errors | skipped | xfailed | time |\n|---|---|---|---|---|---|---|\n'
for b in "${backends[@]}"; do
  last=$(grep -E "(passed|failed|error)" "$logs/$b.log" | tail -1)
  n() { echo "$last" | grep -oE "[0-9]+ $1" | grep -oE "[0-9]+" || echo 0; }
  t=$(echo "$last" | grep -oE "in [0-9.]+s" | grep -oE "[0-9.]+s" || echo "?")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$b" "$(n passed)" "$(n failed)" "$(n error)" \
    "$(n skipped)" "$(n xfailed)" "$t"
done
echo "logs: $logs" >&2
exit $status
