import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.gan import GANTrainer, losses, tricks
from course_lib.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

# ----------------------------------------------------------------------------- initialization


def weight_layers(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


@pytest.mark.parametrize("scheme", tricks.INIT_SCHEMES)
def test_init_schemes_set_the_variance_they_promise(scheme):
    torch.manual_seed(0)
    D = DCGANDiscriminator(image_size=32, channels=3, width=32, norm="none")
    tricks.init_weights_(D, scheme, generator=torch.Generator().manual_seed(1))
    for m in weight_layers(D):
        w = m.weight
        fan_out, fan_in = w.shape[0] * w[0, 0].numel(), w.shape[1] * w[0, 0].numel()
        expected = {
            "dcgan": 0.02,
            "xavier": math.sqrt(2.0 / (fan_in + fan_out)),  # U(-a, a) has std a / sqrt(3)
            "kaiming": math.sqrt(2.0 / fan_in),
            "orthogonal": 1.0 / math.sqrt(max(fan_in, w.shape[0])),
            "default": 1.0
            / math.sqrt(3 * fan_in),  # kaiming_uniform(a=sqrt(5)): bound 1/sqrt(fan_in)
        }[scheme]
        assert w.std().item() == pytest.approx(expected, rel=0.15), (scheme, tuple(w.shape))
        if scheme != "default":
            assert m.bias is None or not m.bias.any()


def test_orthogonal_init_gives_orthonormal_rows_and_a_generator_makes_it_reproducible():
    a, b = nn.Linear(64, 16), nn.Linear(64, 16)
    tricks.init_weights_(a, "orthogonal", generator=torch.Generator().manual_seed(3))
    tricks.init_weights_(b, "orthogonal", generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a.weight @ a.weight.T, torch.eye(16), atol=1e-5)
    assert torch.equal(a.weight, b.weight)


def test_dcgan_scheme_is_the_dcgan_init_and_norm_layers_are_reset():
    G = DCGANGenerator(latent_dim=8, width=8)
    with torch.no_grad():
        for p in G.parameters():
            p.fill_(5.0)
    tricks.init_weights_(G, "kaiming")
    bn = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in bn)
    tricks.init_weights_(G, "dcgan")
    assert all(abs(m.weight.mean().item() - 1) < 0.05 and m.weight.std() > 0 for m in bn)


def test_unknown_init_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="scheme must be one of"):
        tricks.init_weights_(nn.Linear(2, 2), "he")


# ------------------------------------------------------------------------------ spectral norm


def largest_singular_value(m: nn.Module) -> float:
    w = m.weight  # the normalized weight, through the parametrization
    if isinstance(m, nn.ConvTranspose2d):
        w = w.transpose(0, 1)
    return torch.linalg.matrix_norm(w.flatten(1), ord=2).item()


def test_spectral_norm_makes_every_layer_1_lipschitz():
    torch.manual_seed(0)
    D = tricks.spectral_norm_(DCGANDiscriminator(image_size=28, width=8, norm="none"))
    G = tricks.spectral_norm_(DCGANGenerator(latent_dim=8, width=8))
    x, z = torch.randn(4, 1, 28, 28), torch.randn(4, 8)
    for _ in range(50):  # power iteration runs once per training-mode forward pass
        D(x), G(z)
    for m in weight_layers(D) + weight_layers(G):
        assert largest_singular_value(m) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="already parametrized"):
        tricks.spectral_norm_(D)


def test_spectral_norm_rejects_a_bad_iteration_count():
    with pytest.raises(ValueError, match="n_power_iterations"):
        tricks.spectral_norm_(nn.Linear(2, 2), n_power_iterations=0)


# ---------------------------------------------------------------------------- label smoothing


def test_smoothed_d_loss_is_bce_against_soft_targets():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, generator=g), torch.randn(16, generator=g)
    expected = F.binary_cross_entropy_with_logits(
        real, torch.full_like(real, 0.9)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    assert torch.allclose(tricks.d_loss_bce_smoothed(real, fake, 0.9), expected)
    assert torch.allclose(
        tricks.d_loss_bce_smoothed(real, fake, 1.0), losses.d_loss_bce(real, fake)
    )


def test_smoothing_moves_the_optimal_real_logit_to_logit_0_9():
    logit = torch.tensor([math.log(0.9 / 0.1)], requires_grad=True)
    tricks.d_loss_bce_smoothed(logit, torch.zeros(1), 0.9).backward()
    assert abs(logit.grad.item()) < 1e-6  # stationary: D no longer pushes real logits to +inf


def test_one_sided_label_smoothing_wraps_bce_losses_only():
    smoothed = tricks.one_sided_label_smoothing("nonsaturating", 0.9)
    assert smoothed.name == "nonsaturating+ls0.9"
    assert smoothed.g_loss is losses.g_loss_nonsaturating
    other = losses.GANLoss("mine", lambda r, f: f.mean() - r.mean(), lambda f: -f.mean())
    with pytest.raises(ValueError, match="needs a BCE discriminator loss"):
        tricks.one_sided_label_smoothing(other)
    with pytest.raises(ValueError, match="real_label"):
        tricks.one_sided_label_smoothing("nonsaturating", 1.2)


# ------------------------------------------------------------------------ instance noise


def test_instance_noise_anneals_linearly_to_zero():
    noise = tricks.InstanceNoise(0.2, anneal_steps=100)
    assert [noise.sigma_at(s) for s in (0, 50, 100, 200)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    x = torch.zeros(20000)
    torch.manual_seed(0)
    assert noise(x, 50).std().item() == pytest.approx(0.1, rel=0.03)
    assert noise(x, 100) is x
    assert tricks.InstanceNoise(0.3).sigma_at(10**6) == 0.3  # no annealing: constant


@pytest.mark.parametrize("kwargs", [{"sigma": -0.1}, {"anneal_steps": 0}, {"sigma": math.nan}])
def test_instance_noise_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        tricks.InstanceNoise(**kwargs)


# ------------------------------------------------------------------------------- DiffAugment


def test_translation_shifts_each_image_with_zero_fill():
    torch.manual_seed(0)
    x = torch.arange(8 * 16 * 16, dtype=torch.float32).reshape(8, 1, 16, 16) + 1
    out = tricks.DiffAugment("translation")(x, 0)
    for img, src in zip(out[:, 0], x[:, 0], strict=True):
        found = False
        for dy in range(-2, 3):  # 0.125 * 16 = 2 pixels
            for dx in range(-2, 3):
                shifted = torch.zeros_like(src)
                ys, xs = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, -dx), 16 - max(0, dx))
                yd, xd = slice(max(0, dy), 16 - max(0, -dy)), slice(max(0, dx), 16 - max(0, -dx))
                shifted[ys, xs] = src[yd, xd]
                found |= torch.equal(img, shifted)
        assert found


def test_cutout_zeroes_one_square_of_at_most_a_quarter_of_the_image():
    torch.manual_seed(0)
    out = tricks.DiffAugment("cutout")(torch.ones(64, 1, 28, 28), 0)
    zeros = (out == 0).float()
    assert (zeros.sum(dim=(1, 2, 3)) <= 14 * 14).all() and (zeros.sum(dim=(1, 2, 3)) > 0).all()
    rows, cols = zeros.amax(dim=(1, 3)), zeros.amax(dim=(1, 2))  # which rows / columns are cut
    assert torch.equal(zeros.sum(dim=(1, 2, 3)), rows.sum(1) * cols.sum(1))  # a rectangle


def test_diff_augment_is_differentiable_and_keeps_shapes():
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    out = tricks.DiffAugment()(x, 0)
    assert out.shape == x.shape and not torch.equal(out, x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G keeps its gradient


def test_diff_augment_rejects_bad_input():
    with pytest.raises(ValueError, match="policy"):
        tricks.DiffAugment("flip")
    with pytest.raises(ValueError, match="policy must be a string such as"):
        tricks.DiffAugment(["color"])
    with pytest.raises(ValueError, match="images"):
        tricks.DiffAugment()(torch.randn(4, 2), 0)


# --------------------------------------------------------------------------------- TTUR, EMA


def test_ttur_returns_trainer_learning_rates():
    assert tricks.ttur() == {"lr_g": 1e-4, "lr_d": 4e-4}
    with pytest.raises(ValueError, match="lr_d"):
        tricks.ttur(lr_d=0)


def test_ema_generator_follows_the_ema_update_rule():
    G = MLPGenerator(latent_dim=2, hidden=4, depth=1)
    ema = tricks.ema_generator(G, decay=0.9)
    first = [p.detach().clone() for p in G.parameters()]
    ema.update_parameters(G)  # the first update copies G
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update_parameters(G)
    for p_ema, p0 in zip(ema.module.parameters(), first, strict=True):
        assert torch.allclose(p_ema, 0.9 * p0 + 0.1 * (p0 + 1.0))
    with pytest.raises(ValueError, match="decay"):
        tricks.ema_generator(G, decay=1.0)


# ----------------------------------------------------------------------------- gradient norms


def test_layer_grad_norms_match_a_hand_computation():
    torch.manual_seed(0)
    D = MLPDiscriminator(hidden=8, depth=2)
    assert tricks.layer_grad_norms(D) == {}  # no gradients yet
    D(torch.randn(5, 2)).sum().backward()
    norms = tricks.layer_grad_norms(D)
    assert list(norms) == ["net.0", "net.2", "net.4"]
    layer = D.net[2]
    expected = torch.cat([layer.weight.grad.flatten(), layer.bias.grad]).norm().item()
    assert norms["net.2"] == pytest.approx(expected, rel=1e-6)


def test_spectrally_normalized_layers_keep_their_layer_name():
    D = tricks.spectral_norm_(MLPDiscriminator(hidden=8, depth=1))
    D(torch.randn(5, 2)).sum().backward()
    assert list(tricks.layer_grad_norms(D)) == ["net.0", "net.2"]


def test_grad_norms_callback_logs_totals_and_layers():
    torch.manual_seed(0)
    trainer = GANTrainer(
        MLPGenerator(hidden=8, depth=1), MLPDiscriminator(hidden=8, depth=1), device="cpu"
    )
    trainer.train_step(torch.randn(16, 2))
    row = tricks.GradNorms(every=1)(trainer)
    for player in ("G", "D"):
        layers = [v for k, v in row.items() if k.startswith(f"grad_norm/{player}/")]
        assert len(layers) == 2
        assert row[f"grad_norm/{player}"] == pytest.approx(math.sqrt(sum(v * v for v in layers)))
    assert "grad_norm/G/net.0" not in tricks.GradNorms(every=1, per_layer=False)(trainer)
    with pytest.raises(ValueError, match="every"):
        tricks.GradNorms(every=0)


# ------------------------------------ notebook 04 exercises: a plausible wrong answer fails
# (grads.init_std, grads.clip_grad_norm, grads.layer_grad_norms: exercises/grads.py)


def _fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def test_init_std_check_rejects_fan_out_and_the_uniform_bound():
    from course_lib import check
    from course_lib.exercises.grads import init_std as reference

    def kaiming_on_fan_out(shape, scheme):  # He's backward variant: not what init_weights_ uses
        fan_in, fan_out = _fans(shape)
        return math.sqrt(2.0 / fan_out) if scheme == "kaiming" else reference(shape, scheme)

    def xavier_bound_as_std(shape, scheme):  # forgets that U(-a, a) has std a / sqrt(3)
        fan_in, fan_out = _fans(shape)
        if scheme == "xavier":
            return math.sqrt(6.0 / (fan_in + fan_out))
        return reference(shape, scheme)

    assert not check.verify("grads.init_std", kaiming_on_fan_out).passed
    assert not check.verify("grads.init_std", xavier_bound_as_std).passed


def test_clip_check_rejects_per_tensor_clipping_rescaling_always_and_the_clipped_norm():
    from course_lib import check

    def per_tensor(parameters, max_norm):  # clips each tensor on its own: not the global rule
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in parameters))
        for p in parameters:
            p.grad.mul_(min(1.0, max_norm / (p.grad.norm().item() + 1e-6)))
        return total

    def always_rescale(parameters, max_norm):  # sets the norm to max_norm even when below it
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in parameters))
        for p in parameters:
            p.grad.mul_(max_norm / (total + 1e-6))
        return total

    def returns_clipped_norm(parameters, max_norm):  # clips right, reports the norm after
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        return torch.sqrt(sum(p.grad.pow(2).sum() for p in parameters))

    for wrong in (per_tensor, always_rescale, returns_clipped_norm):
        assert not check.verify("grads.clip_grad_norm", wrong).passed, wrong.__name__


def test_layer_grad_norms_check_rejects_per_parameter_keys_summed_norms_and_frozen_layers():
    from course_lib import check

    def per_parameter(module):  # keys "net.0.weight", "net.0.bias": not per layer
        return {n: p.grad.norm().item() for n, p in module.named_parameters() if p.grad is not None}

    def summed_norms(module):  # ||grad W|| + ||grad b|| instead of sqrt(||grad W||^2 + ...)
        out = {}
        for n, p in module.named_parameters():
            if p.grad is not None:
                layer = n.rsplit(".", 1)[0]
                out[layer] = out.get(layer, 0.0) + p.grad.norm().item()
        return out

    def keeps_frozen_layers(module):  # reports 0 for a layer that has no gradient
        out = {}
        for n, p in module.named_parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            out[n.rsplit(".", 1)[0]] = out.get(n.rsplit(".", 1)[0], 0.0) + g.pow(2).sum().item()
        return {k: math.sqrt(v) for k, v in out.items()}

    for wrong in (per_parameter, summed_norms, keeps_frozen_layers):
        assert not check.verify("grads.layer_grad_norms", wrong).passed, wrong.__name__


# ------------------------------------ notebook 05 exercises: a plausible wrong answer fails
# (tricks.label_smoothing, tricks.instance_noise_sigma, tricks.ema_update: exercises/tricks.py)


def test_label_smoothing_check_rejects_two_sided_plain_and_naive_losses():
    from course_lib import check

    def two_sided(logits_real, logits_fake, real_label=0.9):  # fakes get target 0.1 too
        t = real_label
        real = (t * F.softplus(-logits_real) + (1 - t) * F.softplus(logits_real)).mean()
        fake = ((1 - t) * F.softplus(-logits_fake) + t * F.softplus(logits_fake)).mean()
        return real + fake

    def unsmoothed(logits_real, logits_fake, real_label=0.9):  # ignores the label
        return losses.d_loss_bce(logits_real, logits_fake)

    def naive_log_sigmoid(logits_real, logits_fake, real_label=0.9):  # overflows at +-40
        d_real, d_fake = torch.sigmoid(logits_real), torch.sigmoid(logits_fake)
        real = -(real_label * d_real.log() + (1 - real_label) * (1 - d_real).log()).mean()
        return real - (1 - d_fake).log().mean()

    for wrong in (two_sided, unsmoothed, naive_log_sigmoid):
        assert not check.verify("tricks.label_smoothing", wrong).passed, wrong.__name__


def test_instance_noise_check_rejects_a_schedule_that_goes_negative_or_ignores_none():
    from course_lib import check

    def no_floor(sigma, anneal_steps, step):  # negative noise std after anneal_steps
        return sigma if anneal_steps is None else sigma * (1 - step / anneal_steps)

    def exponential(sigma, anneal_steps, step):  # a different schedule
        return sigma if anneal_steps is None else sigma * 0.5 ** (step / anneal_steps)

    def always_annealed(sigma, anneal_steps, step):  # crashes on None (constant noise)
        return sigma * max(0.0, 1 - step / anneal_steps)

    for wrong in (no_floor, exponential, always_annealed):
        assert not check.verify("tricks.instance_noise_sigma", wrong).passed, wrong.__name__


def test_ema_check_rejects_swapped_weights_and_accepts_an_in_place_answer():
    from course_lib import check
    from course_lib.exercises.tricks import ema_update

    def swapped(theta_ema, theta, decay):  # the average follows the new weights too fast
        return (1 - decay) * theta_ema + decay * theta

    def in_place(theta_ema, theta, decay):  # correct, written in place as optimizers do
        return theta_ema.mul_(decay).add_(theta, alpha=1 - decay)

    assert not check.verify("tricks.ema_update", swapped).passed
    assert check.verify("tricks.ema_update", in_place).passed
    out = ema_update(torch.zeros(3), torch.ones(3), 0.9)
    assert torch.allclose(out, torch.full((3,), 0.1))  # the trainer's EMA: 0.9 * 0 + 0.1 * 1


def test_default_init_is_reproducible_with_a_generator():
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    tricks.init_weights_(a, "default", generator=torch.Generator().manual_seed(5))
    state = torch.get_rng_state()
    tricks.init_weights_(b, "default", generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.weight, b.weight) and torch.equal(torch.get_rng_state(), state)
