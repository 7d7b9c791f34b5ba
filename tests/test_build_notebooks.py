"""Learner notebooks, badges, install lines and the README syllabus are generated and current."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course_lib

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "tools/build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_notebooks)


def test_generated_files_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/build_notebooks.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_solutions_and_notebooks_have_the_same_names():
    solutions = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert solutions and solutions == notebooks


def test_stub_replaces_solution_blocks_at_their_indent():
    source = (
        "def f(x):\n    '''doc'''\n"
        "    # BEGIN SOLUTION\n    y = x + 1\n    return y\n    # END SOLUTION\n"
    )
    stubbed = build_notebooks._stub(
        source, "# BEGIN SOLUTION", "# END SOLUTION", build_notebooks.CODE_STUB
    )
    assert stubbed == ("def f(x):\n    '''doc'''\n    " + build_notebooks.CODE_STUB + "\n")


@pytest.mark.parametrize(
    "source",
    [
        "# BEGIN SOLUTION\nx = 1\n",
        "x = 1\n# END SOLUTION\n",
        "# BEGIN SOLUTION\n# BEGIN SOLUTION\n",
    ],
)
def test_unbalanced_markers_are_an_error(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        build_notebooks._stub(source, "# BEGIN SOLUTION", "# END SOLUTION", "stub")


def test_colab_links_and_install_lines_come_from_pyproject():
    url = build_notebooks.repository_url()
    version = build_notebooks.package_version()
    assert url.startswith("https://github.com/")
    for folder in ("solutions", "notebooks"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            header = nb.cells[0].source
            # text, not a badge image: it must work offline, where the image cannot load
            assert build_notebooks.colab_link(url, folder, path.name) in header, path
            assert "colab-badge.svg" not in header, path
            setup = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
            assert build_notebooks.install_line(url, version) in setup, path


def test_the_colab_install_line_pins_the_release_tag_of_this_version():
    """Colab installs a tag, not the branch head: a learner's notebook must not change under
    them when the branch moves. The tag is v + course_lib.__version__."""
    assert build_notebooks.package_version() == course_lib.__version__
    version = course_lib.__version__
    line = build_notebooks.install_line("https://github.com/o/r", version)
    assert line == f'%pip install -q "course_lib @ git+https://github.com/o/r@v{version}"'
    assert build_notebooks.INSTALL_RE.fullmatch(line)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)


def test_notebooks_follow_the_template():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        headings = [
            line
            for cell in nb.cells
            if cell.cell_type == "markdown"
            for line in cell.source.split("\n")
            if line.startswith("## ")
        ]
        # Setup, then the numbered sections in order, then Exercises, then Key takeaways
        numbered = [h for h in headings[1:-2] if re.match(r"## \d+\. ", h)]
        assert headings[0] == "## Setup", path
        assert numbered == headings[1:-2], f"{path}: {headings}"
        numbers = [h.split(".")[0] for h in numbered]
        assert numbers == [f"## {i}" for i in range(1, len(numbered) + 1)], path
        assert headings[-2] == "## Exercises", path
        assert headings[-1].startswith("## Key takeaways"), path
        for cell in nb.cells:
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, path


def test_learner_notebooks_contain_no_solution_and_solutions_contain_exercises():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text, path
    for name in ("01", "02"):
        (path,) = (ROOT / "solutions").glob(f"{name}_*.ipynb")
        nb = nbformat.read(path, as_version=4)
        checks = [c for c in nb.cells if c.cell_type == "code" and "check.exercise(" in c.source]
        assert len(checks) >= 2, f"{path} needs at least two checked exercises"


def test_no_notebook_or_readme_contains_a_placeholder():
    """Authoring markers must not reach learners: a results paragraph left as 'PLACEHOLDER'
    would contradict the table above it."""
    marker = re.compile(r"PLACEHOLDER|TODO|FIXME|XXX")
    paths = [*(ROOT / "solutions").glob("*.ipynb"), *(ROOT / "notebooks").glob("*.ipynb")]
    for path in [*paths, ROOT / "README.md"]:
        hits = marker.findall(path.read_text())
        assert not hits, f"{path.name}: {hits}"
