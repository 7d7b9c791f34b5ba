"""The repository's promises: one install, lint and test commands, the same packages everywhere,
and a `make lab` that reaches every folder a learner needs."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import course_lib

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


def test_ci_runs_exactly_the_readme_lint_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and line[0] != "#"]
    commands = [line for line in ci if not line.startswith(("set ", "cd "))]
    assert commands == ["make lint", "make test"]
    missing = [c for c in commands if c not in readme]
    assert not missing, f"README.md does not tell contributors to run {missing}"


def test_github_workflows_run_ci_and_a_nightly_against_the_newest_torch():
    yaml = pytest.importorskip("yaml")
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    nightly = yaml.safe_load((ROOT / ".github/workflows/nightly.yml").read_text())
    ci_steps = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert "bash .ci/run" in ci_steps
    triggers = nightly[True]  # YAML 1.1 reads the key `on` as True
    assert "cron" in triggers["schedule"][0] and "workflow_dispatch" in triggers
    runs = "\n".join(s.get("run", "") for job in nightly["jobs"].values() for s in job["steps"])
    assert "constraints.txt" not in runs and "--upgrade torch torchvision" in runs
    assert "COURSE_PROFILE=smoke python -m pytest" in runs


def test_the_package_ships_every_sub_package_and_the_weights():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["packages"]["find"]["include"] == ["course_lib*"]
    assert "weights/*.pt" in setuptools["package-data"]["course_lib"]
    weights = ROOT / "course_lib/weights/digit_classifier.pt"
    assert weights.exists() and weights.stat().st_size < 2 * 2**20


def test_the_version_is_written_once_and_has_a_changelog_entry():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "course_lib.__version__"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{course_lib.__version__}]" in changelog


def test_the_license_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_make_lab_serves_notebooks_and_solutions_and_opens_notebook_00(tmp_path):
    """A learner stuck on an exercise opens its solution from JupyterLab's file browser: the
    server `make lab` starts must reach solutions/ too (it started in notebooks/ before)."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "course-test"
    args = f"--no-browser --allow-root --port={port} --ServerApp.token={token}"
    env = os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path)}
    server = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def status(path: str) -> int:
            url = f"http://127.0.0.1:{port}/api/contents/{path}?content=0&token={token}"
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    return reply.status
            except urllib.error.HTTPError as error:
                return error.code

        deadline = time.monotonic() + 90
        while True:
            try:
                first = status("notebooks")
                break
            except OSError:  # not listening yet
                assert server.poll() is None and time.monotonic() < deadline, "lab did not start"
                time.sleep(0.5)
        assert first == 200
        assert status("solutions") == 200
        assert status("solutions/00_setup_and_tour.ipynb") == 200
        opened = "".join(p.read_text() for p in tmp_path.glob("jpserver-file-to-run-*-open.html"))
        assert "/lab/tree/notebooks/00_setup_and_tour.ipynb" in opened
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
