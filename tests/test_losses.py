import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import check, data
from course_lib.gan import GANTrainer, losses
from course_lib.gan.losses import (
    LOSSES,
    GANLoss,
    clip_weights_,
    d_loss_bce,
    d_loss_hinge,
    d_loss_lsgan,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_lsgan,
    g_loss_nonsaturating,
    g_loss_saturating,
    g_loss_wasserstein,
    get_loss,
    gradient_penalty,
    lsgan,
    r1,
    r1_penalty,
    wgan,
    wgan_gp,
)
from course_lib.gan.models import MLPDiscriminator, MLPGenerator

LOG2 = math.log(2.0)


def test_known_values_at_zero_logits():
    zeros = torch.zeros(6)
    assert d_loss_bce(zeros, zeros).item() == pytest.approx(2 * LOG2)
    assert g_loss_saturating(zeros).item() == pytest.approx(-LOG2)
    assert g_loss_nonsaturating(zeros).item() == pytest.approx(LOG2)


def test_match_binary_cross_entropy_on_probabilities():
    g = torch.Generator().manual_seed(0)
    real, fake = 2 * torch.randn(32, generator=g), 2 * torch.randn(48, generator=g) - 1
    p_real, p_fake = torch.sigmoid(real).double(), torch.sigmoid(fake).double()
    expected_d = F.binary_cross_entropy(p_real, torch.ones_like(p_real)) + F.binary_cross_entropy(
        p_fake, torch.zeros_like(p_fake)
    )
    assert d_loss_bce(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-5)
    assert g_loss_saturating(fake).item() == pytest.approx(
        torch.log1p(-p_fake).mean().item(), rel=1e-5
    )
    assert g_loss_nonsaturating(fake).item() == pytest.approx(
        -torch.log(p_fake).mean().item(), rel=1e-5
    )


def test_hand_computed_values():
    # softplus(-2) = log(1 + e^-2); softplus(1) = log(1 + e)
    real, fake = torch.tensor([2.0]), torch.tensor([1.0])
    assert d_loss_bce(real, fake).item() == pytest.approx(
        math.log1p(math.exp(-2)) + math.log1p(math.e)
    )
    assert g_loss_saturating(fake).item() == pytest.approx(-math.log1p(math.e))
    assert g_loss_nonsaturating(fake).item() == pytest.approx(math.log1p(math.exp(-1)))


def test_stable_for_confident_discriminators():
    real, fake = torch.tensor([100.0, 80.0]), torch.tensor([-100.0, -90.0])
    assert d_loss_bce(real, fake).item() == pytest.approx(0.0, abs=1e-30)
    assert g_loss_nonsaturating(fake).item() == pytest.approx(95.0)  # -log sigmoid(-l) ~ -l
    assert g_loss_saturating(torch.tensor([100.0])).item() == pytest.approx(-100.0)
    # a naive log(sigmoid(.)) gives inf here; the losses stay finite
    assert torch.isinf(-torch.log(torch.sigmoid(torch.tensor(-200.0))))
    assert math.isfinite(g_loss_nonsaturating(torch.tensor([-200.0])).item())


def test_batch_mean_reduction_and_shapes():
    a = torch.tensor([0.3, -1.2, 2.0, 0.0])
    for fn in (g_loss_saturating, g_loss_nonsaturating):
        per_example = torch.stack([fn(v.view(1)) for v in a])
        assert fn(a).item() == pytest.approx(per_example.mean().item())
        assert fn(a).item() == pytest.approx(fn(a.view(4, 1)).item())  # (N, 1) logits work too
        assert fn(a).dim() == 0
    # D loss averages real and fake separately: different batch sizes are fine
    assert d_loss_bce(a, a[:1]).item() == pytest.approx(
        F.softplus(-a).mean().item() + F.softplus(a[:1]).item()
    )


def test_nonsaturating_gradient_is_larger_where_d_rejects_fakes():
    logits = torch.tensor([-8.0], requires_grad=True)  # D is sure these are fake
    (grad_sat,) = torch.autograd.grad(g_loss_saturating(logits), logits)
    (grad_ns,) = torch.autograd.grad(g_loss_nonsaturating(logits), logits)
    # both push the logit up (negative gradient of the loss), with very different strength
    assert grad_sat.item() < 0 and grad_ns.item() < 0
    assert grad_sat.item() == pytest.approx(-torch.sigmoid(torch.tensor(-8.0)).item())
    assert grad_ns.item() == pytest.approx(-torch.sigmoid(torch.tensor(8.0)).item())
    assert abs(grad_ns.item()) > 1000 * abs(grad_sat.item())


def test_d_loss_gradients_push_real_up_and_fake_down():
    real = torch.zeros(3, requires_grad=True)
    fake = torch.zeros(3, requires_grad=True)
    d_loss_bce(real, fake).backward()
    assert torch.all(real.grad < 0) and torch.all(fake.grad > 0)


def test_bad_logits_are_rejected():
    with pytest.raises(ValueError, match="logits_real"):
        d_loss_bce(torch.empty(0), torch.zeros(2))
    with pytest.raises(ValueError, match="logits_fake.*before sigmoid"):
        g_loss_nonsaturating(torch.ones(3, dtype=torch.long))


@pytest.mark.parametrize("name", ["bce", "wasserstein", "lsgan", "hinge"])
def test_d_losses_refuse_real_and_fake_outputs_of_different_shapes(name):
    """(8,) against (8, 10) would broadcast inside each mean and return a number; two heads or
    a missing .view(-1) is a bug, so it is refused. N != M and patch outputs stay allowed."""
    d_loss = {
        "bce": d_loss_bce,
        "wasserstein": losses.d_loss_wasserstein,
        "lsgan": losses.d_loss_lsgan,
        "hinge": losses.d_loss_hinge,
    }[name]
    with pytest.raises(ValueError, match=r"has shape \(8,\) but .* \(8, 10\)"):
        d_loss(torch.zeros(8), torch.zeros(8, 10))
    with pytest.raises(ValueError, match="outputs of one shape"):
        d_loss(torch.zeros(4, 1, 3, 3), torch.zeros(4, 1, 2, 2))
    assert torch.isfinite(d_loss(torch.zeros(8), torch.zeros(5, 1)))  # N != M, (N,) vs (N, 1)
    assert torch.isfinite(d_loss(torch.zeros(4, 1, 3, 3), torch.zeros(6, 1, 3, 3)))  # PatchGAN


def test_registry_and_get_loss():
    assert list(LOSSES) == [
        "minimax",
        "nonsaturating",
        "wgan",
        "wgan-gp",
        "lsgan",
        "hinge",
        "nonsaturating-r1",
    ]
    assert get_loss("minimax").g_loss is g_loss_saturating
    assert get_loss("nonsaturating").g_loss is g_loss_nonsaturating
    assert all(get_loss(name) is loss for name, loss in LOSSES.items())
    custom = GANLoss("mine", d_loss_bce, g_loss_nonsaturating)
    assert get_loss(custom) is custom
    assert custom.d_penalty is None and custom.after_d_step is None
    with pytest.raises(ValueError, match="unknown loss 'wgan_gp'.*'minimax', 'nonsaturating'"):
        get_loss("wgan_gp")
    with pytest.raises(TypeError, match="GANLoss"):
        get_loss(3)  # type: ignore[arg-type]


def test_gan_loss_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LOSSES["minimax"].name = "other"  # type: ignore[misc]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_losses_follow_the_device():
    logits = torch.zeros(4, device="cuda")
    assert d_loss_bce(logits, logits).device.type == "cuda"
    assert g_loss_nonsaturating(logits).item() == pytest.approx(LOG2)


# ------------------------------------------------------------------ the loss variants (03)


def linear_critic(w: list[float], bias: float = 0.3) -> nn.Module:
    """x -> w . x + bias on (N, len(w)) inputs: its input gradient is w everywhere."""
    critic = nn.Linear(len(w), 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([w]))
        critic.bias.fill_(bias)
    return critic


class HalfSquaredNorm(nn.Module):
    """x -> 0.5 ||x||^2 per example: its input gradient at x is x itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(dim=1)


def test_wasserstein_losses_known_values():
    real, fake = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, -3.0])
    assert d_loss_wasserstein(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert g_loss_wasserstein(fake).item() == pytest.approx(1.0)
    # the critic's estimate of W_1 is -d_loss = mean(real) - mean(fake)
    assert -d_loss_wasserstein(real, real).item() == pytest.approx(0.0)


def test_lsgan_losses_known_values_for_both_label_settings():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    # 0-1 coding (a=0, b=1, c=1): 0.5*mean(0, 1) + 0.5*mean(0, 4); G: 0.5*mean(1, 1)
    assert d_loss_lsgan(real, fake).item() == pytest.approx(0.25 + 1.0)
    assert g_loss_lsgan(fake).item() == pytest.approx(0.5)
    # Pearson chi^2 setting (a=-1, b=1, c=0): 0.5*mean(0, 1) + 0.5*mean(1, 9); G: 0.5*mean(0, 4)
    assert d_loss_lsgan(real, fake, a=-1.0, b=1.0).item() == pytest.approx(0.25 + 2.5)
    assert g_loss_lsgan(fake, c=0.0).item() == pytest.approx(1.0)


def test_lsgan_registry_entry_uses_the_right_generator_target():
    loss = LOSSES["lsgan"]
    at_real_label = torch.ones(5)  # D says "real" (b = 1) to every fake: G has nothing to gain
    assert loss.g_loss(at_real_label).item() == pytest.approx(0.0)
    at_fake_label = torch.zeros(5)
    assert loss.g_loss(at_fake_label).item() == pytest.approx(0.5)  # not the wrong c = 0 target
    assert loss.d_loss(torch.ones(3), torch.zeros(3)).item() == pytest.approx(0.0)
    pearson = lsgan(a=-1.0, b=1.0, c=0.0)
    assert pearson.name == "lsgan(a=-1, c=0)"
    assert pearson.g_loss(torch.zeros(4)).item() == pytest.approx(0.0)
    assert pearson.d_loss(torch.ones(2), -torch.ones(2)).item() == pytest.approx(0.0)


def test_lsgan_rejects_a_generator_target_equal_to_the_fake_label():
    with pytest.raises(ValueError, match="c = 0 equals the fake label a"):
        lsgan(a=0.0, b=1.0, c=0.0)  # the wrong setting of COURSE.md section 8
    with pytest.raises(ValueError, match="a and b must differ"):
        lsgan(a=1.0, b=1.0, c=0.0)
    with pytest.raises(ValueError, match="c must be a finite number"):
        lsgan(c=float("nan"))


def test_hinge_losses_known_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = (0, 0.5, 2), relu(1 + fake) = (0, 1, 2)
    assert d_loss_hinge(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert g_loss_hinge(fake).item() == pytest.approx(1.0 / 3)
    # beyond the margin nothing is left to learn: zero loss and zero gradient
    real = torch.tensor([1.5, 3.0], requires_grad=True)
    fake = torch.tensor([-1.5, -4.0], requires_grad=True)
    loss = d_loss_hinge(real, fake)
    loss.backward()
    assert loss.item() == 0.0 and real.grad.abs().sum() == 0 and fake.grad.abs().sum() == 0


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wgan", "wgan-gp", "lsgan", "hinge"])
def test_every_d_loss_rewards_real_up_and_fake_down(name):
    loss = LOSSES[name]
    real = torch.full((4,), 0.5, requires_grad=True)
    fake = torch.full((4,), 0.5, requires_grad=True)
    loss.d_loss(real, fake).backward()
    assert torch.all(real.grad < 0) and torch.all(fake.grad > 0)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wgan", "wgan-gp", "lsgan", "hinge"])
def test_every_g_loss_rewards_fake_up(name):
    fake = torch.full((4,), 0.5, requires_grad=True)
    LOSSES[name].g_loss(fake).backward()
    assert torch.all(fake.grad < 0)


def test_wasserstein_generator_gradient_does_not_saturate():
    fake = torch.tensor([-50.0, 0.0, 50.0], requires_grad=True)
    g_loss_wasserstein(fake).backward()
    assert torch.allclose(fake.grad, torch.full((3,), -1.0 / 3))


def test_new_losses_upcast_half_precision_and_keep_float64():
    half = torch.tensor([0.5, -1.0], dtype=torch.bfloat16)
    for value in (
        d_loss_wasserstein(half, half),
        d_loss_lsgan(half, half),
        d_loss_hinge(half, half),
    ):
        assert value.dtype == torch.float32
    assert g_loss_lsgan(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "fn", [d_loss_wasserstein, d_loss_lsgan, d_loss_hinge, g_loss_wasserstein, g_loss_hinge]
)
def test_new_losses_reject_integer_outputs(fn):
    bad = torch.ones(3, dtype=torch.long)
    args = (bad,) if fn.__name__.startswith("g_") else (bad, torch.zeros(3))
    with pytest.raises(ValueError, match="float tensor"):
        fn(*args)


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic():
    critic = linear_critic([0.6, 0.8])  # ||w|| = 1: exactly 1-Lipschitz
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("w, expected", [([3.0, 4.0], 16.0), ([0.3, 0.4], 0.25), ([0.0, 0.0], 1.0)])
def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared(w, expected):
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(expected)


def test_gradient_penalty_interpolates_with_one_eps_per_example():
    # critic 0.5 ||x||^2 has gradient x_hat: the penalty depends on where x_hat lies
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(6, 1, 3, 3, generator=g), torch.randn(6, 1, 3, 3, generator=g)
    got = gradient_penalty(
        HalfSquaredNorm(), real, fake, generator=torch.Generator().manual_seed(7)
    )
    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(7))
    x_hat = eps * real + (1 - eps) * fake  # Gulrajani et al., Algorithm 1, line 6
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # real == fake: x_hat = real whatever eps is
    same = gradient_penalty(HalfSquaredNorm(), real, real)
    assert same.item() == pytest.approx(((real.flatten(1).norm(dim=1) - 1) ** 2).mean().item())


def test_gradient_penalty_backpropagates_to_the_critic_weights():
    critic = linear_critic([3.0, 4.0])  # ||w|| = 5
    gradient_penalty(critic, torch.randn(4, 2), torch.randn(4, 2)).backward()
    w = critic.weight.detach()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic.weight.grad, 2 * (5.0 - 1.0) * w / 5.0)
    assert critic.bias.grad is None or critic.bias.grad.abs().max() == 0


def test_gradient_penalty_works_under_no_grad_and_detaches_the_fakes():
    fake = torch.randn(4, 2, requires_grad=True)
    with torch.no_grad():
        value = gradient_penalty(linear_critic([3.0, 4.0]), torch.randn(4, 2), fake)
    assert value.item() == pytest.approx(16.0)
    gradient_penalty(linear_critic([3.0, 4.0]), torch.randn(4, 2), fake).backward()
    assert fake.grad is None  # G gets nothing from D's penalty


def test_gradient_penalty_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(linear_critic([1.0, 0.0]), torch.zeros(4, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\).*got \(4, 2\)"):
        gradient_penalty(nn.Linear(2, 2), torch.zeros(4, 2), torch.zeros(4, 2))


def test_penalties_warn_about_batchnorm_in_the_critic():
    critic = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    with pytest.warns(UserWarning, match="BatchNorm"):
        gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2))
    with pytest.warns(UserWarning, match="BatchNorm"):
        r1_penalty(critic, torch.randn(8, 2))


def test_r1_penalty_known_values():
    assert r1_penalty(linear_critic([3.0, 4.0]), torch.randn(5, 2)).item() == pytest.approx(25.0)
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    # gradient of 0.5 ||x||^2 is x: mean of ||x||^2 = (5 + 9) / 2
    assert r1_penalty(HalfSquaredNorm(), x).item() == pytest.approx(7.0)
    critic = linear_critic([3.0, 4.0])
    r1_penalty(critic, torch.randn(3, 2)).backward()
    assert torch.allclose(critic.weight.grad, 2 * critic.weight.detach())  # d||w||^2/dw = 2w


def test_clip_weights_clamps_every_parameter():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(10)
    inside = [p.detach().clone() for p in module.parameters()]
    clip_weights_(module, clip=0.05)
    for before, p in zip(inside, module.parameters(), strict=True):
        assert p.abs().max() <= 0.05
        small = before.abs() <= 0.05
        assert torch.equal(p[small], before[small])  # values inside the box are untouched
    with pytest.raises(ValueError, match="clip must be a finite number > 0"):
        clip_weights_(module, clip=0.0)


def test_factories_and_weighted_penalties():
    x_real, x_fake = torch.randn(6, 2), torch.randn(6, 2)
    critic = linear_critic([3.0, 4.0])  # GP = 16, R1 = 25
    assert LOSSES["wgan-gp"].d_penalty(critic, x_real, x_fake).item() == pytest.approx(160.0)
    assert wgan_gp(gp_weight=1.0).d_penalty(critic, x_real, x_fake).item() == pytest.approx(16.0)
    assert wgan_gp(1.0).name == "wgan-gp(gp_weight=1)" and wgan_gp().name == "wgan-gp"
    # R1 with gamma = 10 adds gamma / 2 * E||grad D(x_real)||^2 (Mescheder et al. 2018, eq. 9)
    assert LOSSES["nonsaturating-r1"].d_penalty(critic, x_real, x_fake).item() == pytest.approx(
        125.0
    )
    assert r1(gamma=1.0).d_penalty(critic, x_real, x_fake).item() == pytest.approx(12.5)
    hinge_r1 = r1(gamma=2.0, base="hinge")
    assert hinge_r1.name == "hinge-r1(gamma=2)" and hinge_r1.d_loss is d_loss_hinge
    with pytest.raises(ValueError, match="already has a penalty"):
        r1(base="wgan-gp")
    for factory, kwargs in (
        (wgan, {"clip": -1.0}),
        (wgan_gp, {"gp_weight": 0}),
        (r1, {"gamma": True}),
    ):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            factory(**kwargs)
    clipped = linear_critic([3.0, -4.0], bias=0.5)
    LOSSES["wgan"].after_d_step(clipped)
    assert torch.equal(clipped.weight.detach(), torch.tensor([[0.01, -0.01]]))
    assert wgan(clip=0.1).name == "wgan(clip=0.1)"


def test_registry_entries_pair_the_right_functions():
    assert LOSSES["wgan"].d_loss is d_loss_wasserstein and LOSSES["wgan"].d_penalty is None
    assert LOSSES["wgan-gp"].g_loss is g_loss_wasserstein and LOSSES["wgan-gp"].after_d_step is None
    assert LOSSES["hinge"].d_loss is d_loss_hinge and LOSSES["hinge"].g_loss is g_loss_hinge
    r1_loss = LOSSES["nonsaturating-r1"]
    assert r1_loss.d_loss is d_loss_bce and r1_loss.g_loss is g_loss_nonsaturating
    assert all(loss.name == name for name, loss in LOSSES.items())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_trains_one_step_on_the_ring(name):
    torch.manual_seed(0)
    G = MLPGenerator(latent_dim=2, hidden=16, depth=2)
    D = MLPDiscriminator(in_dim=2, hidden=16, depth=2)
    n_critic = 2 if name.startswith("wgan") else 1
    trainer = GANTrainer(G, D, loss=name, n_critic=n_critic, device="cpu", seed=0)
    before = [p.detach().clone() for p in D.parameters()]
    stats = trainer.train_step(data.ring().sample(32, torch.Generator().manual_seed(0)))
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True))
    if name == "wgan":
        assert all(p.abs().max() <= 0.01 for p in D.parameters())


# --------------------------------------------------------------- exercises of notebook 03


def test_exercise_hinge_rejects_plausible_wrong_answers():
    def no_margin(real, fake):  # the WGAN critic loss, not the hinge
        return fake.mean() - real.mean()

    def wrong_sign(real, fake):
        return F.relu(1 + real).mean() + F.relu(1 - fake).mean()

    def relu_outside_mean(real, fake):
        return F.relu(1 - real.mean()) + F.relu(1 + fake.mean())

    for wrong in (no_margin, wrong_sign, relu_outside_mean):
        assert not check.verify("losses.d_loss_hinge", wrong).passed, wrong.__name__


def test_exercise_lsgan_rejects_the_fake_label_as_target():
    assert not check.verify("losses.g_loss_lsgan", lambda out: 0.5 * (out**2).mean()).passed
    assert not check.verify("losses.g_loss_lsgan", lambda out: ((out - 1) ** 2).mean()).passed
    assert check.verify("losses.g_loss_lsgan", lambda out: 0.5 * ((1 - out) ** 2).mean()).passed


def test_exercise_gradient_penalty_rejects_plausible_wrong_answers():
    def grad_at(critic, x):
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(critic(x).sum(), x, create_graph=True)[0].flatten(1)

    def on_real_only(critic, real, fake):
        return ((grad_at(critic, real).norm(dim=1) - 1) ** 2).mean()

    def one_eps_per_batch(critic, real, fake):
        eps = torch.rand(1)
        return ((grad_at(critic, eps * real + (1 - eps) * fake).norm(dim=1) - 1) ** 2).mean()

    def squared_norm(critic, real, fake):
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1))
        return (grad_at(critic, eps * real + (1 - eps) * fake).pow(2).sum(dim=1)).mean()

    def norm_of_first_dim_only(critic, real, fake):
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1))
        x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
        grad = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
        return ((grad.norm(dim=1) - 1) ** 2).mean()  # wrong for images: norm over channels only

    for wrong in (on_real_only, one_eps_per_batch, squared_norm, norm_of_first_dim_only):
        assert not check.verify("losses.gradient_penalty", wrong).passed, wrong.__name__

    def mine(critic, real, fake):  # a correct answer written differently passes
        eps = torch.rand(real.shape[0]).view(-1, *([1] * (real.dim() - 1)))
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
        return ((grad.reshape(len(grad), -1).norm(dim=1) - 1) ** 2).mean()

    assert check.verify("losses.gradient_penalty", mine).passed


def test_exercise_checks_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check.verify("losses.gradient_penalty", losses.gradient_penalty)
    assert torch.equal(torch.rand(3), expected)
