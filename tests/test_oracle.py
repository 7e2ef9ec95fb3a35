"""The leak oracle: verdicts checked against what direct perturbation shows.

Every model is built here; verdicts are never hard-coded: where a layer's
behaviour depends on the installed Keras (GlobalMaxPooling1D and the mask), the
test perturbs the padding itself and asserts the oracle agrees.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from models import oracle as om
from models.oracle import (
    attention_pooling_after_embedding,
    conv_after_embedding,
    gap_after_embedding,
)

from maskviz import _keras_internals as ki
from maskviz.oracle import ATOL, RTOL, run_oracle
from maskviz.oracle.invariance import run_invariances
from maskviz.probe import make_probe
from maskviz.trace import run_trace

L = keras.layers


def oracle_of(model, *, seed=0, mask_inputs=None, probe=None):
    probe = probe or make_probe(model, seed=seed, mask_inputs=mask_inputs)
    trace = run_trace(model, probe.inputs, probe.feed())
    assert trace.error is None, trace.error
    return probe, trace, run_oracle(model, probe, trace, seed=seed)


def leaks(result) -> set[str]:
    return {lk.call_id for _, lk in result.leaks}


BERT_PAIRS = {"padding_mask": "token_ids"}


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(1234)
    built = {}

    def get(name):
        if name not in built:
            built[name] = getattr(om, name)() if name != "seq2seq_fixed" else om.seq2seq(True)
        return built[name]

    built["seq2seq"] = om.seq2seq(False)
    return get


# --------------------------------------------------------------------------- leaks


def test_conv1d_after_embedding_leaks_at_the_conv_only():
    keras.utils.set_random_seed(0)
    _, _, r = oracle_of(conv_after_embedding())
    assert leaks(r) == {"conv1d"}
    (src,) = r.sources
    changed = {c.call_id for c in src.changed}
    # The denses changed too (they inherit the leak) but are not leaks themselves.
    assert {"conv1d", "dense_a", "dense_b"} <= changed
    (leak,) = src.leaks
    assert leak.outputs == ("dense_b",)
    assert leak.paths == (("conv1d", "dense_a", "dense_b"),)
    assert next(c for c in src.changed if c.call_id == "conv1d").compared == "source-keep"
    assert "right-padded" in leak.layouts


def test_masking_zeros_are_not_replaced_by_noise(models):
    """Issue 10: `Masking` emits exact zeros at padded steps whatever the padding,
    and a `Conv1D(padding="same")` pads with zeros too, so the old verdict (a leak
    at `conv1d`, from noise put where no input can put anything) was a false alarm.
    Truth, measured here: the same weights with an open time axis give the same
    outputs at real steps for a padded row and for that row truncated."""
    model = models("conv_after_masking")
    _, _, r = oracle_of(model)
    assert r.sources == ()
    assert any("exact zeros" in why for _, why in r.skipped), r.skipped
    i = keras.Input((None, 3))
    x = L.Masking(0.0)(i)
    x = L.Conv1D(4, 3, padding="same")(x)
    twin = keras.Model(i, L.Dense(2)(L.Dense(4)(x)))
    twin.set_weights(model.get_weights())
    rng = np.random.default_rng(0)
    row = np.zeros((1, 8, 3), "float32")
    row[0, :5] = rng.standard_normal((5, 3))
    padded = keras.ops.convert_to_numpy(twin(row))[0, :5]
    short = keras.ops.convert_to_numpy(twin(row[:, :5]))[0]
    np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-6)


def test_flatten_after_embedding_mask_leaks(models):
    _, _, r = oracle_of(models("flatten_after_embedding"))
    assert leaks(r) == {"flatten"}
    assert r.sources[0].outputs_changed == ("head",)


def test_decoder_with_initial_state_leaks_unless_given_its_mask(models):
    _, trace, r = oracle_of(models("seq2seq"))
    assert not trace.call("decoder").received  # the structural bug
    assert leaks(r) == {"decoder"}
    dec = next(s for s in r.sources if s.source == "dec_embedding")
    enc = next(s for s in r.sources if s.source == "enc_embedding")
    assert not enc.leaks
    assert dec.leaks[0].outputs == ("logits",)
    # A forward decoder's kept steps come before right padding: only the
    # left-padded row can change.
    assert dec.leaks[0].left_padding_only
    _, _, fixed = oracle_of(models("seq2seq_fixed"))
    assert not fixed.leaks
    assert len(fixed.sources) == 2


def test_global_max_pooling_verdict_matches_direct_perturbation(models):
    model = models("max_pooling_after_embedding")
    probe, trace, r = oracle_of(model)
    # Direct experiment: the pooling layer alone, on the embedding output with its
    # mask attached, versus the same with huge values at the padded steps.
    x = trace.values["embedding"][0]
    mask = trace.masks["embedding"][0].astype(bool)
    gmp = model.get_layer("gmp")

    def pooled(values):
        t = keras.ops.convert_to_tensor(values)
        ki.set_mask(t, keras.ops.convert_to_tensor(mask))
        return keras.ops.convert_to_numpy(gmp(t))

    noisy = np.where(mask[..., None], x, 100.0).astype(x.dtype)
    ignores_mask = not np.allclose(pooled(x), pooled(noisy))
    assert ("gmp" in leaks(r)) == ignores_mask
    assert leaks(r) <= {"gmp"}


# --------------------------------------------------------------------------- no leaks

CLEAN = [
    "embedding_lstm_dense",
    "masking_gru_time_distributed",
    "bilstm_tagger",
    "transformer_block",
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", CLEAN)
def test_clean_models_do_not_leak_on_several_seeds(models, name, seed):
    model = models(name)
    probe, trace, r = oracle_of(model, seed=seed)
    # Masking's exact zeros are not perturbed (see above): the length, side and
    # truncation invariances check those models.
    assert r.sources or any("exact zeros" in why for _, why in r.skipped), r.skipped
    assert not r.leaks
    inv = run_invariances(model, probe, trace, seed=seed)
    assert inv.checked and not inv.violations, inv.summary_lines()
    outputs = {o.source for o in trace.outputs}
    for src in r.sources:
        assert not src.outputs_changed
        assert not [c for c in src.changed if c.call_id in outputs]
        assert src.outputs_reached


def right_padded_bert_data(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = np.array([16, 3, 9, 12])
    keep = np.arange(16)[None, :] < lengths[:, None]
    return {
        "token_ids": np.where(keep, rng.integers(1, 50, (4, 16)), 0).astype("int32"),
        "segment_ids": np.zeros((4, 16), "int32"),
        "padding_mask": keep.astype("int32"),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bert_backbone_with_right_padding_does_not_leak(models, seed):
    from maskviz.probe import probe_from_arrays

    model = models("bert")
    probe = probe_from_arrays(model, right_padded_bert_data(seed), mask_inputs=BERT_PAIRS)
    _, _, r = oracle_of(model, seed=seed, probe=probe)
    assert [s.source for s in r.sources] == ["input:token_ids"]
    assert not r.leaks
    assert not r.sources[0].outputs_changed


def test_bert_pooled_output_reads_padding_when_left_padded(models):
    """With a left-padded row (user data: the default probe pads explicit-mask models
    on the right, as their preprocessors do), BERT's pooled output reads position 0
    ([CLS]), which is padding there. The oracle must say exactly that: the sequence
    output is clean, the pooled output leaks in that row only."""
    from maskviz.probe import probe_from_arrays

    model = models("bert")
    base = make_probe(model, mask_inputs=BERT_PAIRS)
    assert base.values["padding_mask"][:, 0].all(), "default probe: right padding only"
    keep = base.values["padding_mask"].astype(bool).copy()
    keep[2] = keep[2][::-1]  # the half row, padded on the left instead
    data = {k: np.array(v) for k, v in base.values.items()}
    data["padding_mask"] = keep.astype(data["padding_mask"].dtype)
    data["token_ids"] = np.where(keep, np.maximum(data["token_ids"][:, ::-1], 1), 0).astype(
        data["token_ids"].dtype
    )
    probe = probe_from_arrays(model, data, mask_inputs=BERT_PAIRS)
    probe, trace, r = oracle_of(model, mask_inputs=BERT_PAIRS, probe=probe)
    (src,) = r.sources
    seq_out = next(o.name for o in trace.outputs if len(o.shape) == 3)
    k, pooled = next((k, o.name) for k, o in enumerate(trace.outputs) if len(o.shape) == 2)
    assert seq_out not in src.outputs_changed
    keep = probe.values["padding_mask"].astype(bool)
    left_rows = [i for i, row in enumerate(keep) if not row[0] and row.any()]
    assert left_rows
    # Direct experiment: another token at a padded position of the left-padded row.
    values = {k: np.array(v) for k, v in probe.values.items()}
    row = left_rows[0]
    values["token_ids"][row, 0] = values["token_ids"][row, 0] % 49 + 1
    # Flattened like the trace's outputs.
    before = keras.tree.flatten(model(probe.feed(), training=False))[k]
    after = keras.tree.flatten(model(probe.feed(values), training=False))[k]
    changed = not np.allclose(
        keras.ops.convert_to_numpy(before),
        keras.ops.convert_to_numpy(after),
        rtol=RTOL,
        atol=ATOL,
    )
    assert (pooled in src.outputs_changed) == changed
    assert bool(src.leaks) == changed
    for lk in src.leaks:
        assert lk.left_padding_only
        assert lk.outputs == (pooled,)


# --------------------------------------------------------------------------- fully masked


def test_fully_masked_sample_nan_is_found_at_the_average():
    _, _, r = oracle_of(gap_after_embedding())
    (src,) = r.sources
    assert src.fully_masked_checked
    assert not src.leaks
    assert [(i.call_id, i.kind) for i in src.fully_masked] == [("gap", "nonfinite")]
    assert src.fully_masked[0].outputs == ("head",)


def test_fully_masked_sample_depending_on_padding_is_non_neutral():
    _, _, r = oracle_of(attention_pooling_after_embedding())
    (src,) = r.sources
    assert not src.leaks  # rows with a kept step are fine
    assert [(i.call_id, i.kind) for i in src.fully_masked] == [("attention_pooling", "non-neutral")]


def test_fully_masked_check_does_not_repeat_a_leak():
    """Conv1D drops the mask, so the LSTM after it reads the padding of an empty
    sample too; that is the Conv1D leak again, not a second finding."""
    i = keras.Input((8,), dtype="int32")
    x = L.Embedding(30, 3, mask_zero=True)(i)
    x = L.Conv1D(4, 3, padding="same", name="conv1d")(x)
    model = keras.Model(i, L.Dense(1)(L.LSTM(4, name="lstm")(x)))
    _, _, r = oracle_of(model)
    (src,) = r.sources
    assert leaks(r) == {"conv1d"}
    assert src.fully_masked_checked
    assert src.fully_masked == ()


def test_masked_rnn_gives_a_neutral_output_for_empty_samples(models):
    _, _, r = oracle_of(models("embedding_lstm_dense"))
    (src,) = r.sources
    assert src.fully_masked_checked
    assert src.fully_masked == ()


# --------------------------------------------------------------------------- mechanics


def test_one_run_per_source_deterministic_and_model_untouched(models):
    model = models("seq2seq")
    probe = make_probe(model)
    before = keras.ops.convert_to_numpy(model(probe.feed(), training=False))
    trace = run_trace(model, probe.inputs, probe.feed())
    a = run_oracle(model, probe, trace, seed=3)
    b = run_oracle(model, probe, trace, seed=3)
    assert a == b
    assert a.runs == len(a.sources) == 2
    assert all("call" not in layer.__dict__ for layer in ki.flatten_layers(model))
    after = keras.ops.convert_to_numpy(model(probe.feed(), training=False))
    np.testing.assert_array_equal(before, after)
    d = a.to_dict()
    assert d["sources"][1]["leaks"][0]["call"] == "decoder"


def test_a_model_without_mask_source_is_skipped_with_a_reason():
    i = keras.Input((8, 3))
    model = keras.Model(i, L.Dense(2)(L.Conv1D(4, 3)(i)))
    _, _, r = oracle_of(model)
    assert r.sources == ()
    assert r.skipped and "no mask source" in r.skipped[0][1]
