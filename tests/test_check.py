import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_lib.exercises
from course_lib import check

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"""check\.(?:exercise|verify)\(\s*["']([^"']+)["']""")
NOTEBOOK = re.compile(r"Exercises of notebook (\d\d), ")


def _exercise_modules():
    """(name, module) of every module in course_lib/exercises/, found with pkgutil."""
    names = sorted(info.name for info in pkgutil.iter_modules(course_lib.exercises.__path__))
    return [(name, importlib.import_module(f"course_lib.exercises.{name}")) for name in names]


ALL_KEYS = sorted(f"{name}.{key}" for name, mod in _exercise_modules() for key in mod.EXERCISES)


def _keys_used_by_notebooks():
    """{key: {notebook number, ...}} for every check.exercise/verify call in solutions/."""
    used: dict[str, set[str]] = {}
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for key in KEY.findall(code):
            used.setdefault(key, set()).add(path.name[:2])
    return used


@pytest.mark.parametrize("name", ALL_KEYS)
def test_every_check_is_deterministic(name):
    # the reference against itself: only nondeterministic cases or references could fail this
    result = check.verify(name, check.lookup(name).reference)
    assert result.passed, result.message


def test_importing_check_imports_no_other_course_module_and_not_optuna():
    code = (
        "import sys, course_lib.check\n"
        "assert 'optuna' not in sys.modules\n"
        "extra = sorted(m for m in sys.modules if m.startswith('course_lib')"
        " and m not in ('course_lib', 'course_lib.check'))\n"
        "assert not extra, extra\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_each_notebook_key_names_an_exercise_and_each_exercise_has_one_notebook():
    used = _keys_used_by_notebooks()
    assert sorted(used) == ALL_KEYS, "keys used by no notebook or naming no exercise"
    for name, module in _exercise_modules():
        match = NOTEBOOK.match(module.__doc__ or "")
        assert match, f"{name}.py must open with 'Exercises of notebook NN, ...'"
        for key in module.EXERCISES:
            assert used[f"{name}.{key}"] == {match[1]}, f"{name}.{key}: {used[f'{name}.{key}']}"


def test_an_exercise_module_is_imported_on_first_use():
    code = (
        "import sys\nfrom course_lib import check\n"
        "assert check.verify('tour.to_unit_range', lambda x: (x.clamp(-1, 1) + 1) / 2).passed\n"
        "assert 'course_lib.exercises.tour' in sys.modules and 'optuna' not in sys.modules\n"
        "assert 'course_lib.exercises.hpo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_wrong_answer_reports_the_first_failing_case(capsys, monkeypatch):
    monkeypatch.delenv(check.STRICT_ENV, raising=False)

    def naive_d_loss(logits_real, logits_fake):  # unstable: log(sigmoid) overflows
        return -(torch.sigmoid(logits_real).log() + (1 - torch.sigmoid(logits_fake)).log()).mean()

    returned = check.exercise("gan.d_loss_bce", naive_d_loss)
    out = capsys.readouterr().out
    assert "case 4/5 differs" in out and "expected" in out and "got" in out
    assert returned is check.lookup("gan.d_loss_bce").reference


def test_a_stub_gets_the_reference_and_a_friendly_message(capsys, monkeypatch):
    monkeypatch.setenv(check.STRICT_ENV, "1")  # stubs are never an error, even when strict

    def stub(x):
        raise NotImplementedError("Exercise: replace this line with your solution.")

    returned = check.exercise("tour.to_unit_range", stub)
    assert returned is check.lookup("tour.to_unit_range").reference
    assert "not implemented yet" in capsys.readouterr().out


def test_a_correct_answer_is_returned(capsys):
    def mine(x):
        return torch.clamp(0.5 * x + 0.5, 0.0, 1.0)

    assert check.exercise("tour.to_unit_range", mine) is mine
    assert "3/3 cases match" in capsys.readouterr().out


def test_a_crashing_answer_is_reported_not_raised(capsys, monkeypatch):
    monkeypatch.delenv(check.STRICT_ENV, raising=False)
    check.exercise("tour.to_unit_range", lambda x: x.reshape(7))
    assert "raised RuntimeError" in capsys.readouterr().out


def test_strict_mode_raises_on_a_wrong_answer(monkeypatch):
    monkeypatch.setenv(check.STRICT_ENV, "1")
    with pytest.raises(AssertionError, match="tour.to_unit_range: case 1/3 differs"):
        check.exercise("tour.to_unit_range", lambda x: x)


def test_init_check_rejects_pytorch_default_init():
    def default_init(module):
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    assert not check.verify("dcgan.init", default_init).passed


def test_discriminator_check_rejects_a_different_architecture():
    from torch import nn

    from course_lib.gan import models

    class NoBatchNorm(models.DCGANDiscriminator):
        def __init__(self, image_size, channels, width):
            super().__init__(image_size=image_size, channels=channels, width=width)
            for child in list(self.modules()):
                for child_name, grandchild in list(child.named_children()):
                    if isinstance(grandchild, nn.BatchNorm2d):
                        setattr(child, child_name, nn.Identity())

    assert not check.verify("dcgan.discriminator", NoBatchNorm).passed


# ------------------------------------------------- the classic mistakes the notebooks warn about


def naive_nonsaturating(logits_fake):
    return -torch.log(torch.sigmoid(logits_fake)).mean()  # inf once sigmoid underflows to 0


def per_example_bce(logits_real, logits_fake):
    return (F.softplus(-logits_real) + F.softplus(logits_fake)).mean()  # needs N == M


def per_example_hinge(logits_real, logits_fake):
    return (F.relu(1 - logits_real) + F.relu(1 + logits_fake)).mean()


def penalty_without_create_graph(critic, real, fake):
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)  # right value, no path to weights
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def one_sided_penalty(critic, real, fake):
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return F.relu(grad.flatten(1).norm(dim=1) - 1).pow(2).mean()  # only penalizes norms > 1


class DefaultSlopeDiscriminator(nn.Module):
    """DCGAN's discriminator with PyTorch's default LeakyReLU slope 0.01 instead of 0.2."""

    def __new__(cls, image_size, channels, width):
        from course_lib.gan import models

        module = models.DCGANDiscriminator(image_size=image_size, channels=channels, width=width)
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.LeakyReLU):
                    setattr(parent, name, nn.LeakyReLU())
        return module


@pytest.mark.parametrize(
    "key, wrong",
    [
        ("gan.g_loss_nonsaturating", naive_nonsaturating),
        ("gan.d_loss_bce", per_example_bce),
        ("losses.d_loss_hinge", per_example_hinge),
        ("losses.gradient_penalty", penalty_without_create_graph),
        ("losses.gradient_penalty", one_sided_penalty),
        ("dcgan.discriminator", DefaultSlopeDiscriminator),
    ],
)
def test_the_checks_reject_the_classic_mistakes(key, wrong):
    """Each wrong answer is one the notebooks warn about; each passed an earlier version of
    its check (review-00-05, top-10 #5)."""
    result = check.verify(key, wrong)
    assert result.status == "fail", result.message


def test_the_gradient_penalty_check_passes_an_answer_with_create_graph():
    def with_create_graph(critic, real, fake):
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), dtype=real.dtype)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    assert check.verify("losses.gradient_penalty", with_create_graph).passed


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown exercise 'gan.nope'; known: gan.d_loss_bce, "):
        check.verify("gan.nope", lambda: None)
    with pytest.raises(ValueError, match=r"no exercise module 'nope'; modules: clinic, dcgan, "):
        check.exercise("nope.d_loss_bce", lambda: None)
    # notebook 11's exercises have their own module: the old key names the module of notebook 10
    with pytest.raises(ValueError, match=r"'vae.free_bits'; known: vae.kl, vae.reparameterize\."):
        check.verify("vae.free_bits", lambda: None)
