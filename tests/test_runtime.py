import os
import random

import numpy as np
import pytest
import torch

from course_lib import runtime


def test_pick_returns_the_value_of_the_profile():
    for name in runtime.PROFILES:
        profile = runtime.Profile(name=name, device=torch.device("cpu"))
        assert profile.pick(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[name]


def test_profile_name_from_environment():
    assert runtime.get_profile_name({"COURSE_PROFILE": "smoke"}) == "smoke"
    assert runtime.get_profile_name({"COURSE_PROFILE": " CPU "}) == "cpu"
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert runtime.get_profile_name({}) == expected
    assert runtime.get_profile_name({"COURSE_PROFILE": ""}) == expected


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="COURSE_PROFILE='fast'.*smoke, cpu, gpu"):
        runtime.get_profile_name({"COURSE_PROFILE": "fast"})


def test_amp_only_on_cuda():
    assert not runtime.Profile("cpu", torch.device("cpu")).amp
    assert runtime.Profile("gpu", torch.device("cuda")).amp


def test_choose_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    device = runtime.choose_device()
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device.type == "cpu"
    assert runtime.choose_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.choose_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="'cuda' is not available"):
        runtime.choose_device("cuda")


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first


def test_seed_everything_deterministic_mode_is_switchable():
    try:
        runtime.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        runtime.seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seed_is_a_clear_error(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        runtime.seed_everything(seed)


def test_environment_report_lists_versions_and_device():
    report = runtime.environment_report(torch.device("cpu"))
    assert report["torch"] == torch.__version__
    assert report["device"] == "cpu"
    assert all(isinstance(v, str) for v in report.values())


def test_setup_seeds_and_returns_profile(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    profile = runtime.setup(seed=7)
    first = torch.rand(3)
    runtime.setup(seed=7)
    assert torch.equal(torch.rand(3), first)
    assert profile.name == "smoke"
    assert "profile=smoke" in capsys.readouterr().out


def test_setup_caps_cpu_threads_and_checks_the_argument(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    before = torch.get_num_threads()
    try:
        runtime.setup(seed=0, cpu_threads=1)
        assert torch.get_num_threads() == 1
        runtime.setup(seed=0, cpu_threads=10_000)  # never more than the cores there are
        assert torch.get_num_threads() == (os.cpu_count() or 1)
        for bad in (0, 1.5, "2"):
            with pytest.raises(ValueError, match="cpu_threads"):
                runtime.setup(seed=0, cpu_threads=bad)
    finally:
        torch.set_num_threads(before)


def test_set_cpu_threads_caps_at_the_cores_and_checks_the_argument():
    before = torch.get_num_threads()
    try:
        assert runtime.set_cpu_threads(1) == 1 == torch.get_num_threads()
        assert runtime.set_cpu_threads(10_000) == (os.cpu_count() or 1)
        for bad in (0, 1.5, "2", True):
            with pytest.raises(ValueError, match="whole number of threads"):
                runtime.set_cpu_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_check_requirements_finds_nothing_wrong_in_the_course_environment():
    assert runtime.check_requirements() == []


def test_check_requirements_reports_an_old_version(monkeypatch):
    from importlib import metadata

    real_version = metadata.version
    monkeypatch.setattr(
        metadata, "version", lambda name: "0.1" if name == "tqdm" else real_version(name)
    )
    (problem,) = runtime.check_requirements()
    assert problem.startswith("tqdm 0.1 is too old: pip install 'tqdm>=")


def test_run_dir_is_keyed_by_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path))
    profile = runtime.Profile("smoke", torch.device("cpu"))
    assert runtime.run_dir("02_dcgan", profile) == tmp_path / "02_dcgan" / "smoke"
    monkeypatch.delenv("COURSE_RUNS")
    monkeypatch.chdir(tmp_path)
    assert str(runtime.run_dir("x", profile)) == "runs/x/smoke"
    with pytest.raises(ValueError, match="plain folder name"):
        runtime.run_dir("../x", profile)


def test_run_dir_is_created_and_a_bad_course_runs_fails_at_once(monkeypatch, tmp_path):
    profile = runtime.Profile("cpu", torch.device("cpu"))
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    assert runtime.run_dir("08_healthy", profile).is_dir()
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "a_file"))
    with pytest.raises(ValueError, match=r"^\$COURSE_RUNS .* is a file, not a folder.*COURSE_RUNS"):
        runtime.run_dir("08_healthy", profile)
