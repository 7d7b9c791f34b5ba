"""Where and how a notebook runs: device, seeds, run profile and an environment report.

Nothing here runs at import time; a notebook calls :func:`setup` once in its setup cell.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from course_lib._io import check_folder

PROFILES = ("smoke", "cpu", "gpu")
"""Run profiles: ``smoke`` (tests: seconds per notebook), ``cpu`` (a laptop: minutes), ``gpu``."""

T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """The run profile of a notebook and the device it trains on.

    ``name`` is one of :data:`PROFILES`; sizes that depend on it are chosen with :meth:`pick`,
    so the same cell runs in seconds under test and gives good results for a learner.
    """

    name: str
    device: torch.device

    def pick(self, *, smoke: T, cpu: T, gpu: T) -> T:
        """The value for this profile: ``steps = profile.pick(smoke=20, cpu=3000, gpu=20000)``."""
        return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[self.name]

    @property
    def amp(self) -> bool:
        """Whether to use mixed precision: on CUDA only (CPU autocast slows these models down)."""
        return self.device.type == "cuda"


def get_profile_name(environ: dict[str, str] | None = None) -> str:
    """The profile named by ``COURSE_PROFILE``; unset or empty: ``gpu`` with CUDA, else ``cpu``.

    Raises ValueError for a name that is not one of :data:`PROFILES`.
    """
    environ = os.environ if environ is None else environ
    name = environ.get("COURSE_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"COURSE_PROFILE={name!r} is not a run profile; use one of {', '.join(PROFILES)} "
            "or leave it unset to pick gpu/cpu automatically."
        )
    return name


def choose_device(preferred: str | None = None) -> torch.device:
    """The device to train on: ``preferred`` (or ``COURSE_DEVICE``) if given, else cuda, mps, cpu.

    Raises ValueError if the requested device is not available on this machine.
    """
    preferred = preferred or os.environ.get("COURSE_DEVICE") or None
    if preferred is not None:
        device = torch.device(preferred)
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": torch.backends.mps.is_available(),
        }.get(device.type, False)
        if not available:
            raise ValueError(
                f"device {preferred!r} is not available here; use 'cpu' or unset COURSE_DEVICE."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (all devices) with ``seed``.

    With ``deterministic=True`` torch also refuses nondeterministic kernels and cuDNN autotuning,
    so a GPU run repeats bit for bit at some cost in speed (CPU runs repeat anyway).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and torch.cuda.is_available()


def environment_report(device: torch.device | None = None) -> dict[str, str]:
    """Versions and hardware, as a dict of strings: what to paste into a question about a bug."""
    import matplotlib
    import torchvision

    device = device or choose_device()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(device),
        "cpu threads": str(torch.get_num_threads()),
        "profile": get_profile_name(),
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        report["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
        report["bf16"] = str(torch.cuda.is_bf16_supported())
    return report


def check_requirements() -> list[str]:
    """Problems with the installed dependencies of ``course_lib``, one readable line each.

    Reads the requirements from the installed package's metadata (pyproject.toml is the one
    source), so the minimum versions are never written twice. An empty list means all is well.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        requirements = metadata.requires("course_lib") or []
    except metadata.PackageNotFoundError:
        return ["course_lib is not installed as a package: run `make install` in the repository."]
    problems = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an optional extra such as [dev]
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is missing: pip install '{requirement}'")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(
                f"{requirement.name} {installed} is too old: pip install '{requirement}'"
            )
    return problems


def run_dir(name: str, profile: Profile) -> Path:
    """A run's folder for checkpoints and samples: ``$COURSE_RUNS`` (or ``runs``)/name/profile.

    Keyed by profile so that a ``smoke`` test run never resumes from a learner's ``cpu`` run.
    Created and checked here (ValueError, one line, when it cannot be written), so that a bad
    ``$COURSE_RUNS`` fails before training, not at the first checkpoint.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain folder name, got {name!r}.")
    runs = os.environ.get("COURSE_RUNS")
    return check_folder(
        Path(runs or "runs") / name / profile.name,
        "$COURSE_RUNS" if runs else "the runs folder",
        instead="set $COURSE_RUNS to a folder you can write to",
    )


def _check_thread_count(name: str, n: object) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a whole number of threads >= 1, got {n!r}.")


def set_cpu_threads(n: int) -> int:
    """Cap PyTorch's CPU threads at ``n`` (at most the cores there are); return the count set.

    For a notebook whose sections want different counts, e.g. one thread for tiny MLPs (more
    threads only add overhead) and two for a DCGAN's convolutions.
    """
    _check_thread_count("n", n)
    torch.set_num_threads(min(n, os.cpu_count() or 1))
    return torch.get_num_threads()


def setup(
    seed: int = 0,
    deterministic: bool = False,
    verbose: bool = True,
    cpu_threads: int | None = None,
) -> Profile:
    """Seed everything, choose device and profile, print one line about them; return the profile.

    The notebooks' setup cell: ``profile = runtime.setup(seed=0, cpu_threads=2)``. On a CPU,
    ``cpu_threads`` caps PyTorch's threads (``torch.set_num_threads``, at most the cores there
    are): the course's models are small, so more threads gain little, and a fixed count keeps
    wall times comparable between runs (:func:`set_cpu_threads`). ``None`` keeps PyTorch's default.
    """
    if cpu_threads is not None:
        _check_thread_count("cpu_threads", cpu_threads)  # before anything else happens
    seed_everything(seed, deterministic=deterministic)
    profile = Profile(name=get_profile_name(), device=choose_device())
    if cpu_threads is not None and profile.device.type == "cpu":
        set_cpu_threads(cpu_threads)
    if verbose:
        print(
            f"profile={profile.name}  device={profile.device}  seed={seed}  "
            f"torch={torch.__version__}  python={sys.version.split()[0]}"
        )
    return profile
