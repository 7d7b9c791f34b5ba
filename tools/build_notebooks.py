"""Write the learner notebooks and the README syllabus from the solution notebooks.

``solutions/`` is the source. For every ``solutions/NN_topic.ipynb`` this script
1. normalizes it in place: outputs, execution counts and volatile metadata stripped; the Colab link
   (plain text, so it stays usable offline, where a badge image would be broken) and the Colab
   install line regenerated from ``[project.urls] Repository`` in pyproject.toml, the
   install line pinned to the release tag ``v<version>`` (``course_lib.__version__``, which
   pyproject.toml reads as the package version), so that a learner's notebook does not change
   under them when the branch moves;
2. writes ``notebooks/NN_topic.ipynb``: the same notebook with the code between
   ``# BEGIN SOLUTION`` and ``# END SOLUTION`` replaced by a stub that raises NotImplementedError,
   and markdown between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` replaced by a
   prompt;
3. regenerates the syllabus table in README.md between ``<!-- syllabus:start -->`` and
   ``<!-- syllabus:end -->`` from each notebook's title line and time estimate, and the README's
   ``git clone`` line from the repository URL.

Usage: ``python tools/build_notebooks.py`` writes everything; ``--check`` writes nothing and exits 1
listing the files that are out of date (the test suite runs this).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
COLAB_LINK_RE = re.compile(r"\[(?:!\[Open In Colab\]\([^)]*\)|Open in Colab)\]\([^)]*\)")
INSTALL_RE = re.compile(r'%pip install -q "course_lib @ git\+[^"]*"')
TITLE_RE = re.compile(r"^# (\d\d) · (.+)$")
TIMES_RE = re.compile(r"cpu ≈ ([^,·]+?), gpu ≈ ([^,·\n]+?)\s*(?:·|$)", re.MULTILINE)
CODE_STUB = 'raise NotImplementedError("Exercise: replace this line with your solution.")'
MARKDOWN_STUB = "*Your answer here.*"
CLONE_RE = re.compile(r"git clone \S+ && cd \S+")
SYLLABUS_START, SYLLABUS_END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "colab", "accelerator")


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The ``Repository`` URL of ``[project.urls]`` (the one place the address is written)."""
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{pyproject}: no 'Repository = \"...\"' line under [project.urls].")
    return match.group(1).rstrip("/")


def package_version(root: Path = ROOT) -> str:
    """``course_lib.__version__``, read from the source (pyproject.toml's dynamic version)."""
    init = root / "course_lib" / "__init__.py"
    match = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{init}: no '__version__ = \"X.Y.Z\"' line.")
    return match.group(1)


def colab_url(repo_url: str, folder: str, name: str) -> str:
    path = repo_url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/{folder}/{name}"


def colab_badge(repo_url: str, folder: str, name: str) -> str:
    """The Colab badge of the README's syllabus (read online, where the image loads)."""
    badge = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({badge})]({colab_url(repo_url, folder, name)})"


def colab_link(repo_url: str, folder: str, name: str) -> str:
    """The Colab link at the top of a notebook: text, which works in an offline classroom."""
    return f"[Open in Colab]({colab_url(repo_url, folder, name)})"


def install_line(repo_url: str, version: str) -> str:
    """The Colab install line, pinned to the release tag of ``version`` (tags are ``vX.Y.Z``)."""
    return f'%pip install -q "course_lib @ git+{repo_url}@v{version}"'


def _stub(source: str, begin: str, end: str, stub: str) -> str:
    """Replace each ``begin`` ... ``end`` block (markers included) by ``stub`` at its indent."""
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        marker = line.strip()
        if marker == begin:
            if inside:
                raise ValueError(f"nested {begin!r} in:\n{source}")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + stub)
        elif marker == end:
            if not inside:
                raise ValueError(f"{end!r} without {begin!r} in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r} in:\n{source}")
    return "\n".join(out)


def normalize(
    nb: nbformat.NotebookNode, repo_url: str, version: str, folder: str, name: str
) -> None:
    """Strip outputs and volatile metadata; regenerate Colab link and install line (in place)."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEPT_NOTEBOOK_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.source = INSTALL_RE.sub(install_line(repo_url, version), cell.source)
        elif cell.cell_type == "markdown":
            cell.source = COLAB_LINK_RE.sub(colab_link(repo_url, folder, name), cell.source)


def learner_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with every exercise body replaced by a stub."""
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _stub(cell.source, "# BEGIN SOLUTION", "# END SOLUTION", CODE_STUB)
        elif cell.cell_type == "markdown":
            cell.source = _stub(
                cell.source, "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->", MARKDOWN_STUB
            )
    return nb


def syllabus_row(path: Path, nb: nbformat.NotebookNode, repo_url: str) -> str:
    """A README table row from the first cell: '# NN · Title' and 'cpu ≈ .., gpu ≈ ..'."""
    header = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    title = TITLE_RE.match(header.split("\n", 1)[0])
    times = TIMES_RE.search(header)
    if title is None or title.group(1) != path.name[:2] or times is None:
        raise SystemExit(
            f"{path}: the first cell must start with '# {path.name[:2]} · Title' and give "
            "'cpu ≈ N min, gpu ≈ N min' (see shared/STYLE.md section 1)."
        )
    badge = colab_badge(repo_url, "notebooks", path.name)
    return (
        f"| {title.group(1)} | [{title.group(2)}](notebooks/{path.name}) | {times.group(1)} "
        f"| {times.group(2)} | {badge} | [solution](solutions/{path.name}) |"
    )


def build(root: Path = ROOT) -> dict[Path, str]:
    """Everything this script writes, as {path: text}."""
    repo_url = repository_url(root / "pyproject.toml")
    version = package_version(root)
    outputs: dict[Path, str] = {}
    rows = []
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        normalize(solution, repo_url, version, "solutions", path.name)
        learner = learner_version(solution)
        normalize(learner, repo_url, version, "notebooks", path.name)
        outputs[path] = nbformat.writes(solution) + "\n"
        outputs[root / "notebooks" / path.name] = nbformat.writes(learner) + "\n"
        rows.append(syllabus_row(path, solution, repo_url))
    readme_path = root / "README.md"
    readme = readme_path.read_text()
    if SYLLABUS_START not in readme or SYLLABUS_END not in readme:
        raise SystemExit(f"{readme_path}: missing {SYLLABUS_START} / {SYLLABUS_END} markers.")
    head, rest = readme.split(SYLLABUS_START, 1)
    _, tail = rest.split(SYLLABUS_END, 1)
    table = "\n".join(
        ["| # | Notebook | cpu | gpu | Colab | |", "|---|---|---|---|---|---|", *rows]
    )
    readme = f"{head}{SYLLABUS_START}\n{table}\n{SYLLABUS_END}{tail}"
    clone = f"git clone {repo_url} && cd {repo_url.rsplit('/', 1)[-1]}"
    outputs[readme_path] = CLONE_RE.sub(clone, readme)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    outputs = build()
    expected_learner = {p.name for p in outputs if p.parent.name == "notebooks"}
    strays = [p for p in (ROOT / "notebooks").glob("*.ipynb") if p.name not in expected_learner]
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale + strays:
            print(f"out of date: {path.relative_to(ROOT)}")
        if stale or strays:
            print("run: python tools/build_notebooks.py")
        return 1 if stale or strays else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs[path])
        print(f"wrote {path.relative_to(ROOT)}")
    for path in strays:
        path.unlink()
        print(f"removed {path.relative_to(ROOT)} (no solution notebook)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
