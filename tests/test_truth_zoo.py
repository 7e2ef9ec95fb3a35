"""maskviz's verdict on the truth zoo agrees with the truth measured in the test.

For every model in `tests/models/zoo_truth.py`: when truncation or value changes show that
real outputs depend on the padding, maskviz reports a padding-invariance finding
(MV107 or MV113); when they do not, maskviz reports no error at all. Loss entries:
MV114 exactly when changing only the targets at padded steps changes the loss.
"""

from __future__ import annotations

import warnings

import pytest
from marks import slow_except
from models.zoo_truth import ZOO, loss_truth, truth

import maskviz

LEAK_RULES = {"MV107", "MV113"}


@pytest.fixture(scope="module")
def judged():
    cache = {}

    def get(name):
        if name not in cache:
            entry = ZOO[name]()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = maskviz.inspect(entry.model, data=entry.x)
            cache[name] = (entry, truth(entry), report)
        return cache[name]

    return get


@pytest.mark.parametrize(
    "name",
    # The quick run keeps a leaking and a clean model of each kind; the full suite all.
    slow_except(
        sorted(ZOO),
        [
            "no_mask_average",
            "masked_average",
            "hand_made_mask_wrong_id",
            "transformer_classifier_hand_made_mask",
            "tagger_loss_counts_padding",
            "tagger_masked_loss",
        ],
    ),
)
def test_verdict_matches_measured_truth(judged, name):
    entry, measured, report = judged(name)
    leaks = measured["truncation"] or measured["values"]
    found = {f.rule for f in report.findings} & LEAK_RULES
    if leaks:
        assert found, f"{name}: truth {measured}, maskviz found nothing\n{report}"
    else:
        errors = [f for f in report.findings if f.severity.value == "error"]
        if entry.loss is not None:
            # Judged below by the loss truth; a mask dropped on the way to a per-step
            # output (MV101) is an error exactly when the loss then counts padding.
            explained = {"MV114", "MV101"} if loss_truth(entry) else {"MV114"}
            errors = [f for f in errors if f.rule not in explained]
        assert not errors, f"{name}: truth {measured}, maskviz errors\n{report}"
        # Truncation keeps each row's side: a model that only depends on the side
        # of the padding (BERT reads position 0) is a warning, nothing more.
        side_only = [
            f
            for f in report.findings
            if f.rule == "MV113" and dict(f.details)["invariances"] == ("side",)
        ]
        assert found <= ({"MV113"} if side_only else set()), f"{name}: {measured}\n{report}"
    if entry.loss is not None:
        assert ("MV114" in report.rule_ids) == loss_truth(entry), report


@pytest.mark.slow
def test_the_zoo_holds_correct_and_broken_models(judged):
    verdicts = {name: judged(name)[1] for name in ZOO}
    broken = [n for n, t in verdicts.items() if t["truncation"] or t["values"]]
    clean = [n for n in verdicts if n not in broken]
    assert len(ZOO) >= 15
    assert len(broken) >= 5 and len(clean) >= 5, (broken, clean)
    # The classes issue 10 names, measured broken on this Keras:
    for name in ("no_mask_average", "rnn_sequences_then_mask_drop", "hand_made_mask_wrong_id"):
        assert name in broken, verdicts[name]
    assert loss_truth(ZOO["tagger_loss_counts_padding"]())
    assert not loss_truth(ZOO["tagger_masked_loss"]())


def test_report_of_a_model_with_no_mask_whose_padding_leaks(judged):
    _, measured, report = judged("no_mask_average")
    assert measured["truncation"]
    (finding,) = [f for f in report.findings if f.rule == "MV113"]
    assert finding.severity.value == "error"
    assert "global_average_pooling1d" in finding.path
    text = report.to_text()
    assert "MV113" in text and "truncated" in text
