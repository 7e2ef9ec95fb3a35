"""The notebook view: the quickstart runs in a real Jupyter kernel; `show` without IPython."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from models.render import build_nested, build_seq2seq

import maskviz
from maskviz import notebook
from maskviz.report import call_rows

QUICKSTART = Path(__file__).parent.parent / "examples" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def executed():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(QUICKSTART, as_version=4)
    nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(QUICKSTART.parent)}},
    ).execute()
    return nb


def _outputs(cell, key):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            if key == "text":
                out.append(o["text"])
        elif key in o.get("data", {}):
            out.append(o["data"][key])
    return "".join(out)


def _show_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and "maskviz.show(" in c.source]


@pytest.mark.slow  # runs the notebook in a Jupyter kernel; the full suite runs it
def test_quickstart_shows_the_finding_then_the_fix(executed):
    before, after = _show_cells(executed)
    html_before = _outputs(before, "text/html")
    assert "<svg" in html_before
    # Every finding the notebook printed is in the displayed report.
    printed = "".join(_outputs(c, "text") for c in executed.cells if c.cell_type == "code")
    rules = set(re.findall(r"^(MV\d{3}) (?:error|warning|info) ", printed, re.M))
    assert "MV102" in rules
    for rule in rules:
        assert rule in html_before, rule

    html_after = _outputs(after, "text/html")
    assert "<svg" in html_after
    assert "MV102" not in html_after
    assert "errors after the fix: none" in printed


def test_show_without_ipython_returns_the_report(monkeypatch):
    monkeypatch.setattr(notebook, "IPython", None)
    report = notebook.show(build_nested(), oracle=False)
    assert isinstance(report, maskviz.Report)
    lines = report.to_text().splitlines()
    # The nested call is listed under its container, indented (a tree).
    block = next(i for i, ln in enumerate(lines) if ln.startswith("block "))
    assert any(ln.startswith("  proj ") for ln in lines[block + 1 :])


def test_show_displays_the_report(monkeypatch):
    ipython = pytest.importorskip("IPython.display")
    shown = []
    monkeypatch.setattr(ipython, "display", lambda obj, **kw: shown.append(obj))
    report = maskviz.show(build_seq2seq(), oracle=False)
    assert shown == [report]
    assert "MV102" in report.to_text()


def test_report_html_holds_graph_findings_and_calls():
    report = maskviz.inspect(build_seq2seq(), oracle=False)
    text = report._repr_html_()
    assert "<svg" in text and "MV102" in text
    for f in report.findings:
        assert f.rule in text
    for row in call_rows(report):
        assert row[0] in text


def test_import_maskviz_without_ipython():
    code = (
        "import sys; sys.modules['IPython'] = None\n"
        "import maskviz, maskviz.notebook\n"
        "assert maskviz.notebook.IPython is None\n"
        "assert maskviz.show is maskviz.notebook.show\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
