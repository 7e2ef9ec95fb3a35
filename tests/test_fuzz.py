"""No traceback and no hang on any input: the fuzz corpus (tests/fuzz_corpus.py) through the
command line, and a hypothesis test that mutates config.json.

Every variant must end in exit 2 with exactly one line on stderr, or be a file Keras loads,
inspected normally (exit 0 or 1); never a traceback, never more than 30 s. The variants run
in one subprocess (tests/fuzz_runner.py) through `maskviz.cli.main()`, each with its own
exit code, stderr and timer. A seeded sample of 50 runs by default, the whole corpus under
`-m slow`.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).resolve().parent / "fuzz_runner.py"
TIMEOUT = 30
SAMPLE = 50


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    variants, notes = fuzz_corpus.generate(root)
    return variants, notes, root


def _run(variants, root: Path) -> dict:
    todo = root / f"variants_{len(variants)}.json"
    done = root / f"results_{len(variants)}.json"
    todo.write_text(json.dumps([v.to_json() for v in variants]))
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(todo), str(done), str(TIMEOUT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * len(variants) + 120,
    )
    assert proc.returncode == 0 and done.exists(), proc.stderr[-3000:]
    return json.loads(done.read_text())


def outcome(result: dict) -> str:
    """The variant's outcome, or a string starting with "BAD" that says what broke."""
    stderr, code = result["stderr"], result["code"]
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback" in stderr:
        return f"BAD traceback (exit {code}): {stderr[-1500:]}"
    if code == "timeout" or result["elapsed"] > TIMEOUT:
        return f"BAD no result within {TIMEOUT} s"
    if code == 2:
        if len(lines) != 1 or not lines[0].startswith("maskviz: error: "):
            return f"BAD exit 2 with {len(lines)} stderr lines: {stderr[-1500:]!r}"
        return "exit 2, one line"
    if code in (0, 1):
        return f"loaded and inspected, exit {code}"
    if code == 130 and len(lines) == 1:
        return "exit 130, one line"
    return f"BAD exit {code}: {stderr[-1500:]!r}"


def _check(variants, results) -> collections.Counter:
    bad = []
    counts: collections.Counter = collections.Counter()
    for v in variants:
        what = outcome(results[v.id])
        counts[what] += 1
        if what.startswith("BAD"):
            bad.append(f"{v.id}: {what}")
    assert not bad, "\n".join(bad[:20])
    return counts


def test_corpus_has_every_family_and_300_variants(corpus):
    variants, notes, _ = corpus
    families = collections.Counter(v.family for v in variants)
    assert len(variants) >= 300, families
    assert set(families) == {"truncate", "flip", "zip", "config", "h5attr", "path", "usage"}
    assert len({v.id for v in variants}) == len(variants)


@pytest.mark.slow  # a subprocess; the full suite runs it
def test_fuzz_sample(corpus):
    variants, _, root = corpus
    chosen = fuzz_corpus.sample_of(variants, SAMPLE, seed=0)
    assert len(chosen) == SAMPLE
    _check(chosen, _run(chosen, root))


@pytest.mark.slow
def test_fuzz_whole_corpus(corpus):
    variants, notes, root = corpus
    counts = _check(variants, _run(variants, root))
    summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    print(f"\nfuzz corpus: {len(variants)} variants: {summary}")
    for note in notes:
        print(f"skipped: {note}")


def test_outcome_rejects_what_the_contract_forbids():
    ok = {"code": 2, "stderr": "maskviz: error: Cannot load 'x'.\n", "elapsed": 0.1}
    assert outcome(ok) == "exit 2, one line"
    two_lines = dict(ok, stderr="maskviz: error: a\nmore\n")
    traceback = dict(ok, code=1, stderr="Traceback (most recent call last):\n")
    slow = dict(ok, elapsed=31.0)
    for bad in (two_lines, traceback, slow, dict(ok, code=3), dict(ok, code="timeout")):
        assert outcome(bad).startswith("BAD"), bad


# --------------------------------------------------------------------------- hypothesis

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _spots(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,)
            yield from _spots(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield path + (i,)
            yield from _spots(v, path + (i,))


@pytest.fixture(scope="module")
def base_config():
    sample = fuzz_corpus.SAMPLES_DIR / "conv1d_after_masking.keras"
    with zipfile.ZipFile(sample) as zf:
        members = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    return members, json.loads(members["config.json"])


@pytest.mark.slow  # the whole corpus (slow) covers config mutations too
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
@hypothesis.given(data=st.data())
def test_config_mutations_load_or_fail_in_one_line(base_config, tmp_path_factory, data):
    import copy

    import maskviz
    from maskviz.errors import MaskvizError
    from maskviz.loading import load_model

    members, config = base_config
    config = copy.deepcopy(config)
    spots = list(_spots(config))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(spots), label="where")
        parent = config
        try:
            for step in path[:-1]:
                parent = parent[step]
            key = path[-1]
            action = data.draw(st.sampled_from(["value", "key", "delete"]), label="action")
            if action == "value" or isinstance(parent, list):
                parent[key] = data.draw(ODD, label="value")
            elif action == "key":
                parent[data.draw(st.text(max_size=12), label="new key")] = parent.pop(key)
            else:
                del parent[key]
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the spot
            continue
    path = tmp_path_factory.mktemp("hyp") / "mutated.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, json.dumps(config) if name == "config.json" else raw)
    try:
        model = load_model(path)
    except MaskvizError as e:
        message = str(e)
        assert "\n" not in message and message.startswith("Cannot load"), message
        return
    try:
        maskviz.inspect(model, oracle=False)
    except MaskvizError as e:
        assert "\n" not in str(e), str(e)
