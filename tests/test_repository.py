"""The repository's promises: one install, one test command, the same packages everywhere."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="needs tomllib (Python >= 3.11)")

ROOT = Path(__file__).resolve().parents[1]


def _names(requirements):
    return {re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    environment = (ROOT / "environment.yml").read_text()
    listed = {m.lower() for m in re.findall(r"^\s+- ([A-Za-z][\w.-]*)", environment, re.M)}
    assert wanted <= listed, f"missing from environment.yml: {sorted(wanted - listed)}"


def test_torch_bounds_are_loose_in_the_package_and_pinned_only_for_ci():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_reqs = [r for r in project["dependencies"] if _names([r]) & {"torch", "torchvision"}]
    assert torch_reqs and all(">=" in r and "==" not in r and "<" not in r for r in torch_reqs)
    pins = (ROOT / "constraints.txt").read_text()
    assert "torch==" in pins and "torchvision==" in pins


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and line[0] != "#"]
    assert "make test" in readme
    assert ci[-1] == "make test"


def test_the_digit_classifier_weights_ship_with_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "weights/*.pt" in project["tool"]["setuptools"]["package-data"]["course_lib"]
    weights = ROOT / "course_lib/weights/digit_classifier.pt"
    assert weights.exists() and weights.stat().st_size < 2 * 2**20
