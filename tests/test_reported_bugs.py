"""maskviz against reproduced public masking reports (tests/models/reported_bugs.py).

For each case the padding truth is measured on the installed Keras, independently
of maskviz (append / truncate / perturb / pad-side / loss; see `reported_bugs`).
maskviz must report an error-level finding exactly when that truth is "leak" or
"crash". `scripts/score_reported_bugs.py` prints the same comparison as a table.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import pytest
from marks import slow_except
from models import reported_bugs as rb


@functools.cache
def _rnn_passes_mask_on() -> bool:
    """Observed: does a layer after LSTM(return_sequences=True) receive a mask?"""
    keras = rb.keras

    class SeesMask(keras.layers.Layer):
        def call(self, x, mask=None):
            return keras.ops.ones_like(x[..., 0]) * (0.0 if mask is None else 1.0)

    i = keras.Input((None,), dtype="int32")
    x = rb.L.Embedding(5, 2, mask_zero=True)(i)
    x = rb.L.LSTM(2, return_sequences=True)(x)
    model = keras.Model(i, SeesMask()(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seen = keras.ops.convert_to_numpy(model(rb.np.array([[1, 2, 0]])))
    return bool(seen.min() == 1.0)


def LEAK(t):  # noqa: N802 - used as a constant in XFAIL
    return t.verdict in ("leak", "crash")


def CLEAN(t):  # noqa: N802
    return t.verdict == "clean"


def RNN_DROPS_MASK(t):  # noqa: N802
    return LEAK(t) and not _rnn_passes_mask_on()


# Cases maskviz currently gets wrong: name -> (reason, when). The xfail is strict and
# applies when `when(truth)` holds: the truth, or what the installed Keras does, can
# differ between Keras releases (RNNs stop passing masks on in 3.16), and both are
# observed here, never assumed from a version number. When a case starts passing,
# its strict xfail fails: delete its entry.
XFAIL: dict[str, tuple[str, Callable[[rb.Truth], bool]]] = {}

CASE_NAMES = list(rb.CASES)
# The quick run (`-m "not slow"`) keeps these: leaks through a dropped mask, a loss, a
# crash, explicit masks and correct models; the full suite runs every case.
QUICK = slow_except(
    CASE_NAMES,
    [
        "conv1d_after_masking_gru",
        "operator_drops_mask_before_loss",
        "masked_dense_loss",
        "seq2seq_initial_state",
        "seq2seq_explicit_decoder_mask",
        "mha_attention_mask_keys",
        "masking_5d_convlstm2d",
        "unmasked_rnn_left_padding",
    ],
)


@functools.cache
def _truth(name: str) -> rb.Truth:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rb.truth(rb.CASES[name])


def test_corpus_shape():
    kinds = [c.kind for c in rb.CASES.values()]
    assert len(kinds) >= 25
    assert 0.25 <= kinds.count("correct") / len(kinds) <= 0.5
    assert all(c.url.startswith("https://github.com/") for c in rb.CASES.values())
    assert set(XFAIL) <= set(rb.CASES)


@pytest.mark.parametrize("name", QUICK)
def test_truth_is_measurable(name):
    t = _truth(name)
    assert t.verdict in ("leak", "crash", "clean"), t
    if t.verdict == "crash":
        assert t.detail, t
    else:
        # At least one invariance test ran, and a clean verdict really is small.
        assert t.checks, t
        assert not math.isnan(t.max_change), t
        assert (t.max_change > rb.RTOL) == (t.verdict == "leak"), t


@pytest.mark.parametrize("name", QUICK)
def test_maskviz_agrees_with_truth(name, request):
    t = _truth(name)
    if "build" in t.checks:
        # Keras itself refuses the model on masked input (the report's crash): there is
        # no model to inspect, and the refusal is reproducible.
        assert t.verdict == "crash", t
        with pytest.raises(Exception), warnings.catch_warnings():  # noqa: B017 (any Keras error)
            warnings.simplefilter("ignore")
            rb.CASES[name].build()
        return
    if name in XFAIL and XFAIL[name][1](t):
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=XFAIL[name][0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errors = rb.maskviz_errors(rb.CASES[name])
    if t.verdict == "clean":
        assert not errors, f"false alarm {errors} on a padding-invariant model ({t.detail})"
    else:
        assert errors, f"no error-level finding, truth is {t.verdict}: {t.detail}"


# ------------------------------------------------------------- the truth oracle itself


def _case(**kw):
    return rb.Case(
        name="t",
        kind="bug",
        url="https://github.com/x/y",
        summary="",
        pad={"ids": 0},
        **kw,
    )


def test_truth_detects_a_leak_and_passes_a_masked_model():
    keras = rb.keras
    L = rb.L

    def model(mask_zero):
        def build():
            keras.utils.set_random_seed(1)
            i = keras.Input((None,), dtype="int32", name="ids")
            x = L.Embedding(10, 4, mask_zero=mask_zero)(i)
            return keras.Model(i, L.LSTM(3)(x))

        return build

    data = rb.tokens("ids", lengths=(5, 2), time=6, vocab=10, left=(1,))
    assert rb.truth(_case(build=model(False), data=data)).verdict == "leak"
    assert rb.truth(_case(build=model(True), data=data)).verdict == "clean"


def test_truth_reports_a_crash():
    keras = rb.keras

    def build():
        i = keras.Input((None,), dtype="int32", name="ids")
        return keras.Model(i, rb.ops.reshape(rb.ops.cast(i, "float32"), (-1, 4)))

    t = rb.truth(_case(build=build, data=rb.tokens("ids", lengths=(5, 2), time=7)))
    assert t.verdict == "crash" and t.detail
