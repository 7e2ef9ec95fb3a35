"""Each structural rule flags its bug and stays quiet on the corrected twin.

Assertions are by rule id (pyflakes style), never by message text.
"""

from __future__ import annotations

import pytest
from models import zoo

# rule id -> (model that shows the bug, where it must be reported, its true twin: the
# same model with only the bug repaired, see tests/models/zoo.py)
CASES = {
    "MV101": ("conv1d_after_masking", "conv1d", "conv1d_after_masking_fixed"),
    "MV101-weakened": ("weakened_mask", "unmask_all", "weakened_mask_fixed"),
    "MV101-accepts-mask": ("mask_arg_dropped", "scale", "mask_arg_dropped_fixed"),
    "MV102": ("seq2seq_initial_state", "decoder", "seq2seq_initial_state_fixed"),
    "MV103": ("masking_5d_convlstm_same", None, "masking_5d_convlstm_same_fixed"),
    "MV104": ("strided_mask", "downsample", "strided_mask_fixed"),
    "MV104-td": ("timedistributed_embedding", None, "timedistributed_embedding_fixed"),
    "MV104-backwards": ("backwards_sequence", "backwards", "backwards_sequence_fixed"),
    "MV105": ("explicit_mask_override", "lstm_b", "explicit_mask_override_fixed"),
    "MV110": ("flatten_after_embedding", None, "flatten_after_embedding_fixed"),
    "MV111": ("compute_mask_ignored", "ignored", "compute_mask_ignored_fixed"),
    "MV112": ("masking_5d_convlstm_valid", None, "masking_5d_convlstm_fixed"),
}


def rules_at(report, rule):
    return [f for f in report.findings if f.rule == rule]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_flags_bug(case, inspected, passes_mask):
    rule = case.split("-")[0]
    bug, where, _ = CASES[case]
    if case == "MV104-backwards" and not passes_mask("SimpleRNN-backwards"):
        # This Keras's RNN passes no mask on: nothing to misalign, but the LSTM after
        # it gets none, so the reversed RNN drops it.
        rule = "MV101"
    report = inspected(bug, oracle=False)
    found = rules_at(report, rule)
    assert found, f"{rule} did not fire on {bug}: {report.rule_ids}\n{report}"
    if where is not None:
        assert where in {f.layer for f in found}, [f.path for f in found]
    for f in found:
        assert f.message and f.suggestion
        assert f.fix is not None


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_quiet_on_twin(case, inspected):
    rule = case.split("-")[0]
    _, _, twin = CASES[case]
    report = inspected(twin, oracle=False)
    assert not rules_at(report, rule), report.to_text()


@pytest.mark.parametrize("name", zoo.CLEAN)
def test_correct_models_have_no_structural_findings(name, inspected, passes_mask):
    report = inspected(name, oracle=False)
    dropper = NEEDS_MASK_PASSED_ON.get(name)
    if dropper is not None and not passes_mask(dropper):
        # This Keras's `dropper` does not pass the mask on: the model is no longer
        # correct, and the layer that drops it is named (MV101), once, and nothing else.
        by_id = report.trace.by_id()
        found = report.at_or_above("warning")
        assert found and {f.rule for f in found} == {"MV101"}, report.to_text()
        assert {by_id[f.call_id].class_name for f in found} == {dropper}, report.to_text()
        assert len(found) == len({f.call_id for f in found})
        return
    # Info findings (MV109: the mask reaches the loss) describe, they do not warn.
    assert report.at_or_above("warning") == [], report.to_text()


# Correct models whose correctness needs this Keras layer to pass its mask on.
NEEDS_MASK_PASSED_ON = {
    "bidirectional_tagger": "Bidirectional",
    "nested_encoder": "LSTM",
    "subclassed_tagger": "GRU",
    "timedistributed_dense": "GRU",
}


def test_one_root_cause_one_finding(inspected):
    # Conv1D drops the mask Masking made: MV101 at conv1d, not also MV110 at masking.
    report = inspected("conv1d_after_masking", oracle=False)
    assert [f.rule for f in report.findings] == ["MV101"]


def test_crash_is_reported_at_its_layer_with_the_rest_from_the_graph(inspected):
    report = inspected("masking_5d_convlstm_valid", oracle=False)
    crash = rules_at(report, "MV112")[0]
    assert crash.layer.startswith("conv_lstm2d")
    calls = {c.class_name: c for c in report.trace.calls}
    assert calls["ConvLSTM2D"].error
    # Calls after the crash come from the symbolic graph.
    assert calls["Dense"].observed is False
    assert report.at_or_above("error")


def test_mask_rank_mismatch_names_the_mask_source(inspected):
    report = inspected("masking_5d_convlstm_same", oracle=False)
    (f,) = rules_at(report, "MV103")
    assert dict(f.details)["mask_source"].startswith("masking")


def test_a_longer_probe_is_tried_when_the_time_length_is_open(inspected):
    # Two strided valid convolutions need more than the default 8 steps.
    report = inspected("strided_conv_text", oracle=False)
    assert report.trace.error is None
    assert report.probe.values["text"].shape[1] > 8


def test_one_finding_per_wrapper_not_per_inner_rnn(inspected):
    report = inspected("bidirectional_initial_state")
    assert [(f.rule, f.layer) for f in report.findings if f.rule in ("MV102", "MV107")] == [
        ("MV102", "bi"),
        ("MV107", "bi"),
    ], report.to_text()
    # The state input (batch, 3) does not set the probe's time length.
    assert report.probe.values["tokens"].shape[1] == 8
