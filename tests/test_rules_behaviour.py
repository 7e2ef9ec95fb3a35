"""Behavioural rules MV106-MV109, asserted by rule id (pyflakes style)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from models import oracle as om

import maskviz
from maskviz.findings import Severity
from maskviz.probe import make_probe
from maskviz.rules import Context, run_rules
from maskviz.trace import run_trace

L = keras.layers
BEHAVIOUR = ("MV106", "MV107", "MV108", "MV109")


def at(report, rule_id: str) -> dict[str, Severity]:
    """call id -> severity of the findings of `rule_id`."""
    return {f.call_id: f.severity for f in report.findings if f.rule == rule_id}


def behaviour_ids(report) -> set[str]:
    return {f.rule for f in report.findings if f.rule in BEHAVIOUR}


# name -> builder (tests/models/oracle.py)
BUILDERS = {
    "conv_chain": om.conv_after_embedding,
    "flatten": om.flatten_after_embedding,
    "gmp_fixed": om.max_pooling_after_embedding_fixed,
    "decoder": lambda: om.seq2seq(False),
    "gap": om.gap_after_embedding,
    "lstm": om.lstm_after_embedding,
    "tagger": om.bilstm_tags,
    "halved": om.halved_tags,
    "masking": om.masking_lstm,
}


def build(name: str):
    return BUILDERS[name]()


@pytest.fixture(scope="module")
def report():
    keras.utils.set_random_seed(7)
    cache = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs)))
        if key not in cache:
            cache[key] = maskviz.inspect(build(name), **kwargs)
        return cache[key]

    return get


# --------------------------------------------------------------------------- MV107


def test_padding_leak_is_reported_at_the_first_leaking_call_only(report):
    r = report("conv_chain")
    assert at(r, "MV107") == {"conv1d": Severity.ERROR}


def test_padding_leak_at_flatten(report):
    assert at(report("flatten"), "MV107") == {"flatten": Severity.ERROR}


def test_masked_max_pooling_does_not_leak(report):
    r = report("gmp_fixed")
    assert "MV107" not in behaviour_ids(r)
    assert r.oracle.sources  # the oracle ran and found a source


def test_decoder_without_its_mask_leaks_in_left_padded_rows(report):
    r = report("decoder")
    assert at(r, "MV107") == {"decoder": Severity.WARNING}
    f = next(f for f in r.findings if f.rule == "MV107")
    assert dict(f.details)["layouts"] == ("left-padded",)
    assert f.fix is not None and dict(f.fix.call_kwargs)  # pass `mask=`


def test_no_oracle_no_behavioural_leak_findings(report):
    r = report("conv_chain", oracle=False)
    assert r.oracle is None
    assert not {"MV107", "MV108"} & behaviour_ids(r)


# --------------------------------------------------------------------------- MV108


def test_fully_masked_sample_nan(report):
    r = report("gap")
    assert at(r, "MV108") == {"gap": Severity.WARNING}
    assert "MV107" not in behaviour_ids(r)


def test_masked_rnn_has_no_fully_masked_finding(report):
    assert behaviour_ids(report("lstm")) == set()


# --------------------------------------------------------------------------- MV109


def test_masked_output_reaches_the_loss(report, passes_mask):
    # The tagger's output keeps its mask only where Bidirectional passes it on (observed).
    expected = {"tags": Severity.INFO} if passes_mask("Bidirectional") else {}
    assert at(report("tagger"), "MV109") == expected
    assert "MV109" not in behaviour_ids(report("lstm"))


def test_output_mask_that_cannot_match_is_an_error(report):
    r = report("halved")
    assert at(r, "MV109") == {"tags": Severity.ERROR}


# --------------------------------------------------------------------------- MV106


def partial_steps(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 8, 3)).astype("float32")
    x[1, 4:] = 0.0  # padding: whole steps
    x[2, 1, 0] = 0.0  # a missing reading: one feature only
    x[3, 2, 1:] = 0.0  # two of three features
    return x


def test_partial_feature_mask_on_data(report):
    model = build("masking")
    r = maskviz.inspect(model, data={"features": partial_steps()})
    assert at(r, "MV106") == {"masking": Severity.WARNING}
    f = next(f for f in r.findings if f.rule == "MV106")
    assert dict(f.details)["partial_steps"] == 2


def test_whole_padded_steps_are_not_partial(report):
    assert "MV106" not in behaviour_ids(report("masking"))


def test_behaviour_rules_read_the_context_only():
    """The rules work from a hand-made Context too (no `inspect`)."""
    model = build("masking")
    probe = make_probe(model)
    probe = type(probe)(
        inputs=probe.inputs,
        values={"features": partial_steps(1)},
        keep=probe.keep,
        structure=probe.structure,
        from_data=True,
    )
    trace = run_trace(model, probe.inputs, probe.feed())
    found = run_rules(Context(trace, probe, None, model), select=["MV106"])
    assert [f.rule for f in found] == ["MV106"]


def test_leak_through_padded_steps_into_right_padded_rows_is_an_error():
    # A causal Conv1D drops the mask; its padded steps carry the noise on to the
    # unmasked GRU, whose output changes in right-padded rows too.
    L = keras.layers
    t = keras.Input((None,), dtype="int32")
    x = L.Embedding(20, 4, mask_zero=True)(t)
    c = L.Conv1D(4, 3, padding="causal", name="causal_conv")(x)
    model = keras.Model(t, L.Dense(2)(L.GRU(3)(c)))
    assert at(maskviz.inspect(model), "MV107") == {"causal_conv": Severity.ERROR}


def test_leak_inside_attention_is_reported_at_the_attention_layer():
    # Causal cross-attention whose keys are left-padded: a leak that only left
    # padding shows, owned by MultiHeadAttention, not its output projection.
    L = keras.layers
    q = keras.Input((None,), dtype="int32", name="q")
    v = keras.Input((None,), dtype="int32", name="v")
    o = L.MultiHeadAttention(2, 4, name="cross")(
        L.Embedding(20, 8, mask_zero=True)(q),
        L.Embedding(20, 8, mask_zero=True)(v),
        use_causal_mask=True,
    )
    model = keras.Model([q, v], L.Dense(2)(L.GlobalAveragePooling1D()(o)))
    assert at(maskviz.inspect(model), "MV107") == {"cross": Severity.WARNING}
