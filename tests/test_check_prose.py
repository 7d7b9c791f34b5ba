"""tools/check_prose.py: the check that numbers quoted in a notebook's prose come from its run."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_prose", ROOT / "tools/check_prose.py")
check_prose = importlib.util.module_from_spec(spec)
sys.modules["check_prose"] = check_prose  # dataclasses look their module up
spec.loader.exec_module(check_prose)


def notebook(tmp_path, prose: str, code: str = "", printed: str = "", html: str = "") -> Path:
    outputs = [{"output_type": "stream", "name": "stdout", "text": printed}]
    if html:
        outputs.append({"output_type": "display_data", "data": {"text/html": html}})
    cells = [
        {"cell_type": "markdown", "source": "# 99 · header, ignored: cpu ≈ 7 min"},
        {"cell_type": "code", "source": code, "outputs": outputs},
        {"cell_type": "markdown", "source": prose},
    ]
    path = tmp_path / "99_test.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    return path


def unbacked(tmp_path, prose, **kw) -> list[str]:
    return [q.text for q in check_prose.check(notebook(tmp_path, prose, **kw), {})]


def test_a_stale_number_is_reported_and_a_printed_one_passes(tmp_path):
    printed = "baseline FID 1054 ± 150, classes 6.2"
    assert unbacked(tmp_path, "The baseline reached FID 1054 ± 150.", printed=printed) == []
    assert unbacked(tmp_path, "The baseline reached FID 1073 ± 174.", printed=printed) == [
        "1073",
        "174",
    ]


def test_rounding_sign_and_percent_are_allowed(tmp_path):
    printed = "r = -0.806, fraction 0.383, loss 12.7, 1.2e+03"
    prose = "r of 0.8 (−0.81), 38 % of steps, about 13 nats, about 1,200 in all"
    assert unbacked(tmp_path, prose, printed=printed) == []
    assert unbacked(tmp_path, "r of 0.79", printed=printed) == ["0.79"]


def test_html_tables_count_as_printed(tmp_path):
    prose = "TTUR: Δ +687 ± 224"
    assert unbacked(tmp_path, prose, html="<td>+687 ± 224</td>") == []


def test_settings_in_code_citations_and_references_are_not_results(tmp_path):
    prose = (
        "We train for 350 steps with `lr = 3e-4` (Goodfellow et al. 2014, arXiv:1406.2661, "
        "Section 3.2, Eq. 4, Algorithm 1; notebook 04; exercise 3; 28×28 images), see $\\log 4$."
    )
    assert unbacked(tmp_path, prose, code="steps = 350") == []
    assert unbacked(tmp_path, prose) == ["350"]


def test_facts_file_entries_are_skipped_for_their_notebook(tmp_path):
    path = notebook(tmp_path, "scikit-learn ships 1,797 digits.")
    assert [q.text for q in check_prose.check(path, {})] == ["1,797"]
    assert check_prose.check(path, {"99": {"1,797"}}) == []


def test_the_shipped_facts_file_names_real_notebooks():
    numbers = {p.name[:2] for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")}
    for notebook_number in check_prose.load_facts():
        assert notebook_number in numbers
