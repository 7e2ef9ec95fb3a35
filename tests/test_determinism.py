"""Same model, same bytes: the JSON report and the DOT graph are byte-identical across two
processes, for a bundled sample, the keras-hub encoder of the zoo and a tiny keras-hub
BertBackbone with random weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys
from pathlib import Path

import maskviz
from maskviz.loading import load_model

out = Path(sys.argv[1])
for path in sys.argv[2:]:
    report = maskviz.inspect(load_model(path))
    stem = Path(path).stem
    (out / f"{stem}.json").write_text(report.to_json())
    (out / f"{stem}.dot").write_text(report.to_dot())
"""


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    pytest.importorskip("keras_hub")
    import keras
    from models import zoo
    from models.oracle import bert

    root = tmp_path_factory.mktemp("same_bytes")
    keras.utils.set_random_seed(0)
    zoo.keras_hub_encoder().save(root / "keras_hub_encoder.keras")
    bert = bert(num_layers=1, hidden_dim=8)
    bert.save(root / "bert_backbone.keras")
    sample = REPO / "maskviz" / "samples" / "seq2seq_initial_state.keras"
    return [str(sample), str(root / "keras_hub_encoder.keras"), str(root / "bert_backbone.keras")]


@pytest.mark.slow  # a subprocess; the full suite runs it
def test_json_and_dot_are_byte_identical_across_processes(model_files, tmp_path):
    """Two fresh processes, run side by side. (Inside one long-lived process, sublayers that
    Keras names at load time, such as an attention layer's inner softmax, take the next
    free number, so a second copy of a model there is a different model by name.)"""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    outs = [tmp_path / "first", tmp_path / "second"]
    procs = []
    for out in outs:
        out.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(out), *model_files],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir())
    assert len(names) == 2 * len(model_files)
    for name in names:
        first = (outs[0] / name).read_bytes()
        assert first, name
        assert first == (outs[1] / name).read_bytes(), name
