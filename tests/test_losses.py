import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.losses import (
    LOSSES,
    GANLoss,
    d_loss_bce,
    g_loss_nonsaturating,
    g_loss_saturating,
    get_loss,
)

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


def test_registry_and_get_loss():
    assert set(LOSSES) == {"minimax", "nonsaturating"}
    assert get_loss("minimax").g_loss is g_loss_saturating
    assert get_loss("nonsaturating").g_loss is g_loss_nonsaturating
    assert all(loss.d_loss is d_loss_bce and loss.name == name for name, loss in LOSSES.items())
    custom = GANLoss("mine", d_loss_bce, g_loss_nonsaturating)
    assert get_loss(custom) is custom
    assert custom.d_penalty is None and custom.after_d_step is None
    with pytest.raises(ValueError, match="unknown loss 'wgan'.*'minimax', 'nonsaturating'"):
        get_loss("wgan")
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
