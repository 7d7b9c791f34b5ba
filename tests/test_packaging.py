"""The wheel that Colab installs holds every sub-package and the weights.

An editable install (``make install``) imports course_lib from this folder, so a sub-package that
the wheel leaves out goes unnoticed everywhere except on Colab, where ``pip install git+...``
builds and installs the wheel. This test builds the wheel offline, installs it into an empty
folder and imports every module of the source tree from there, in a fresh interpreter that does
not see this repository.
"""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import course_lib

ROOT = Path(__file__).resolve().parents[1]
# What a build reads: the package and the files pyproject.toml points at (readme, license).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "course_lib")

IMPORT_EVERYTHING = r"""
import importlib, importlib.metadata, importlib.resources, json, pkgutil, sys
# Drop the editable-install finder of the course environment: it would fill in, from the
# repository, any sub-package the wheel lacks. Imports now resolve as on Colab.
editable = [f for f in sys.meta_path if getattr(f, "__module__", "").startswith("__editable__")]
sys.meta_path[:] = [f for f in sys.meta_path if f not in editable]
expected, weights = json.loads(sys.argv[1]), json.loads(sys.argv[2])
import course_lib
found = {"course_lib": course_lib.__file__}
errors = {}
walked = pkgutil.walk_packages(course_lib.__path__, "course_lib.", onerror=lambda n: None)
names = [m.name for m in walked if not m.name.endswith(".__main__")]
for name in sorted(set(names) | set(expected)):
    try:
        found[name] = importlib.import_module(name).__file__
    except Exception as error:
        errors[name] = f"{type(error).__name__}: {error}"
root = importlib.resources.files("course_lib")
print(json.dumps({
    "walked": names,
    "files": found,
    "errors": errors,
    "weights": {w: str(root.joinpath("weights", w)) for w in weights
                if root.joinpath("weights", w).is_file()},
    "version": course_lib.__version__,
    "metadata_version": importlib.metadata.version("course_lib"),
}))
"""


def _source_modules() -> list[str]:
    """Every importable module of course_lib in this checkout (``__main__`` excluded)."""
    names = []
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        in_packages = all(
            (ROOT.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))
        )
        if in_packages and "__pycache__" not in parts and parts[-1] != "__main__":
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _pip(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """Build the wheel from a copy of the sources (the checkout stays untouched), install it
    into an empty folder, return (wheel path, install folder)."""
    setuptools_major = int(importlib.metadata.version("setuptools").split(".")[0])
    assert setuptools_major >= 77, "needs setuptools>=77 (the [dev] extra): pip install -e '.[dev]'"
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist, site = tmp / "src", tmp / "dist", tmp / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=ignore)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(source, src / name)
    # --no-index and no build isolation: offline, with the setuptools of this environment.
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, src, cwd=tmp)
    (wheel,) = dist.glob("course_lib-*.whl")
    _pip("install", "--no-deps", "--no-index", "--target", site, wheel, cwd=tmp)
    return wheel, site


def test_the_wheel_is_named_after_the_package_version(installed_wheel):
    wheel, _ = installed_wheel
    assert wheel.name.startswith(f"course_lib-{course_lib.__version__}-"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        licenses = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert re.search(rf"^Version: {re.escape(course_lib.__version__)}$", text, re.M)
    assert re.search(r"^License-Expression: MIT$", text, re.M) and licenses


def test_every_module_and_the_weights_import_from_the_installed_wheel(installed_wheel, tmp_path):
    _, site = installed_wheel
    expected = _source_modules()
    weights = sorted(p.name for p in (ROOT / "course_lib/weights").glob("*.pt"))
    assert {"course_lib.gan", "course_lib.vae", "course_lib.train"} <= set(expected)
    assert weights, "course_lib/weights/*.pt: the digit classifier is missing from the checkout"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(site)  # the wheel's copy first; cwd is an empty folder
    env["PYTHONNOUSERSITE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING, json.dumps(expected), json.dumps(weights)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["errors"], f"modules that do not import from the wheel: {report['errors']}"
    outside = {n: f for n, f in report["files"].items() if not Path(f).is_relative_to(site)}
    assert not outside, f"imported from outside the installed wheel: {outside}"
    assert set(expected) <= set(report["walked"]) | {"course_lib"}, (
        f"missing from the wheel: {sorted(set(expected) - set(report['walked']) - {'course_lib'})}"
    )
    assert sorted(report["weights"]) == weights, f"weights in the wheel: {report['weights']}"
    assert all(Path(f).is_relative_to(site) for f in report["weights"].values())
    assert report["version"] == report["metadata_version"] == course_lib.__version__
