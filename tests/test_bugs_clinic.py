"""Notebook 06 (bugs clinic): its exercise rejects each bug, and the facts it teaches hold."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import check
from course_lib.gan import losses, models


def _step(bugs=()):
    """The clinic's training step with some of its bugs switched on (signature of the exercise).

    With no bugs it is the exercise's reference, course_lib.exercises.clinic.clinic_train_step,
    which has no switches; the first test checks that the two agree.
    """

    def step(G, D, opt_g, opt_d, x_real, z):
        x_fake = G(z)
        logits_real, logits_fake = D(x_real), D(x_fake.detach())
        d_loss = losses.d_loss_bce(logits_real, logits_fake)
        if "fakes_labelled_real" in bugs:
            d_loss = F.softplus(-logits_fake).mean()
        if "no_zero_grad_d" not in bugs:
            opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if "detach_in_g_step" in bugs:
            x_fake = x_fake.detach()
        g_loss = losses.g_loss_nonsaturating(D(x_fake))
        if "no_zero_grad_g" not in bugs:
            opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss.item(), g_loss.item()

    return step


def test_the_clinic_step_without_bugs_passes():
    assert check.verify("clinic.train_step", _step()).passed


@pytest.mark.parametrize(
    "bugs",
    [
        {"fakes_labelled_real"},
        {"detach_in_g_step"},
        {"no_zero_grad_d"},
        {"no_zero_grad_g"},
        {"detach_in_g_step", "no_zero_grad_d"},  # the colleague's loop of the notebook
    ],
)
def test_each_bug_fails_the_train_step_check(bugs):
    result = check.verify("clinic.train_step", _step(bugs))
    assert result.status == "fail", result.message


def test_the_saturating_generator_loss_fails_the_train_step_check():
    def saturating(G, D, opt_g, opt_d, x_real, z):
        x_fake = G(z)
        d_loss = losses.d_loss_bce(D(x_real), D(x_fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = losses.g_loss_saturating(D(x_fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss.item(), g_loss.item()

    assert not check.verify("clinic.train_step", saturating).passed


def test_the_wrong_lsgan_target_fails_the_lsgan_check():
    assert not check.verify("clinic.g_loss_lsgan", lambda out: 0.5 * (out**2).mean()).passed
    assert check.verify("clinic.g_loss_lsgan", lambda out: 0.5 * ((out - 1) ** 2).mean()).passed


def _mlps(seed=0):
    torch.manual_seed(seed)
    return models.MLPGenerator(latent_dim=2, hidden=16, depth=2), models.MLPDiscriminator(
        hidden=16, depth=2
    )


def test_a_detached_fake_leaves_g_without_gradient_and_unchanged():
    G, D = _mlps()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in G.parameters()]
    g_loss = losses.g_loss_nonsaturating(D(G(torch.randn(8, 2)).detach()))
    opt_g.zero_grad()
    g_loss.backward()  # no error: D's weights still need gradients
    opt_g.step()
    assert all(p.grad is None for p in G.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters(), strict=True))


def test_without_zero_grad_the_gradient_is_the_sum_of_all_backward_calls():
    G, D = _mlps()
    z = torch.randn(8, 2)
    for k in range(1, 4):
        losses.g_loss_nonsaturating(D(G(z))).backward()
        if k == 1:
            first = [p.grad.clone() for p in G.parameters()]
    for grad, p in zip(first, G.parameters(), strict=True):
        torch.testing.assert_close(p.grad, 3 * grad)


def test_probabilities_fed_to_a_logit_loss_give_a_floor_of_softplus_minus_1_plus_log_2():
    p = torch.linspace(0, 1, 51)  # D's outputs after a sigmoid, used as "logits"
    grid = torch.stack([losses.d_loss_bce(a[None], b[None]) for a in p for b in p])
    floor = math.log1p(math.exp(-1)) + math.log(2)  # at p_real = 1, p_fake = 0
    assert grid.min().item() == pytest.approx(floor, abs=1e-6)
    # and the course's loss is exactly PyTorch's BCE-with-logits on labels 1 and 0
    real, fake = torch.randn(16), torch.randn(16)
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(
        losses.d_loss_bce(real, fake), bce(real, torch.ones(16)) + bce(fake, torch.zeros(16))
    )


def _cross_talk(D: nn.Module, x: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x)[0], x)
    norms = grad.flatten(1).norm(dim=1)
    return (norms[1:].norm() / norms[0]).item()


def test_batchnorm_in_training_mode_mixes_the_examples_of_a_batch_and_layer_norm_does_not():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    batch_norm = models.DCGANDiscriminator(width=8, norm="batch")
    assert _cross_talk(batch_norm, x) > 1e-3
    assert _cross_talk(batch_norm.eval(), x) == 0.0  # running statistics: no mixing
    assert _cross_talk(models.DCGANDiscriminator(width=8, norm="layer"), x) == 0.0


def test_the_gradient_penalty_warns_about_batchnorm_in_training_mode():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    with pytest.warns(UserWarning, match="BatchNorm"):
        losses.gradient_penalty(models.DCGANDiscriminator(width=8, norm="batch"), real, fake)


def test_a_discriminator_in_eval_mode_never_updates_its_running_statistics():
    torch.manual_seed(0)
    D = models.DCGANDiscriminator(width=8).eval()
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    for _ in range(3):
        loss = losses.d_loss_bce(D(torch.randn(8, 1, 28, 28)), D(torch.randn(8, 1, 28, 28)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in D.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var))
