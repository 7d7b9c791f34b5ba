import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from course_lib import check, vae
from course_lib.data import augment
from course_lib.train import (
    CheckpointError,
    Evaluate,
    NonFiniteLossError,
    load_checkpoint,
    save_checkpoint,
)
from course_lib.vae import models

# ------------------------------------------------------------------- tiny models and data


def tiny_vae(init_seed: int = 0, latent_dim: int = 3, batch_norm: bool = False, **kwargs):
    torch.manual_seed(init_seed)
    enc = models.MLPEncoder(latent_dim, image_size=8, hidden=16, depth=1, batch_norm=batch_norm)
    dec = models.MLPDecoder(latent_dim, image_size=8, hidden=16, depth=1, batch_norm=batch_norm)
    return models.VAE(enc, dec, **kwargs)


def binary_images(n: int = 48, seed: int = 123) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 8, 8, generator=g) < 0.3).float()


def trainer(init_seed: int = 0, model_kwargs=None, **kwargs) -> vae.VAETrainer:
    return vae.VAETrainer(tiny_vae(init_seed, **(model_kwargs or {})), device="cpu", **kwargs)


def weights(t: vae.VAETrainer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v for k, v in t.model.state_dict().items()}
    for i, state in t.opt.state_dict()["state"].items():
        out.update({f"opt.{i}.{k}": v for k, v in state.items()})
    return out


def assert_identical(a: vae.VAETrainer, b: vae.VAETrainer) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"differ: {different[:5]}"


# --------------------------------------------------------------- KL and reparameterization


def test_kl_of_two_gaussians_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(2, 7, 5, generator=g) * 2
    logvar_q, logvar_p = torch.randn(2, 7, 5, generator=g) * 1.5
    ours = vae.kl_gaussians(mu_q, logvar_q, mu_p, logvar_p)
    ref = kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert (ours >= 0).all()
    assert vae.kl_gaussians(mu_q, logvar_q, mu_q, logvar_q).abs().max() < 1e-6  # KL(q || q) = 0


def test_kl_to_standard_normal_by_hand_and_against_the_general_formula():
    mu = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0], [math.log(4.0), 0.0]])
    # N(0,1): 0; mean 1: 1/2; variance 4: (4 - 1 - log 4) / 2
    expected = torch.tensor([0.0, 0.5, 0.5 * (4 - 1 - math.log(4))])
    torch.testing.assert_close(vae.kl_to_standard_normal(mu, logvar), expected)
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(2, 6, 4, generator=g)
    torch.testing.assert_close(
        vae.kl_to_standard_normal(mu, logvar), vae.kl_gaussians(mu, logvar).sum(dim=1)
    )
    with pytest.raises(ValueError, match="mu and logvar must be tensors of the same shape"):
        vae.kl_to_standard_normal(mu, logvar[:, :2])


def test_reparameterize_samples_the_right_gaussian_and_gradients_flow():
    mu = torch.tensor([[1.0, -2.0]]).expand(20000, 2).clone().requires_grad_(True)
    logvar = torch.tensor([[0.0, math.log(0.25)]]).expand(20000, 2).clone().requires_grad_(True)
    z = vae.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.02, rtol=0)
    # dz/dmu = 1 and dz/dlogvar = exp(logvar / 2) * eps / 2, with eps = (z - mu) / sigma
    z.sum().backward()
    assert torch.equal(mu.grad, torch.ones_like(mu))
    eps = (z - mu) / (0.5 * logvar).exp()
    torch.testing.assert_close(logvar.grad, 0.5 * (0.5 * logvar).exp() * eps.detach())
    eps = torch.randn(3, 2)
    z = vae.reparameterize(torch.zeros(3, 2), torch.zeros(3, 2), eps=eps)
    assert torch.equal(z, eps)
    with pytest.raises(ValueError, match="eps must be a tensor of the shape of mu"):
        vae.reparameterize(torch.zeros(3, 2), torch.zeros(3, 2), eps=torch.zeros(2, 3))


# ------------------------------------------------------------------------------ likelihoods


def test_bernoulli_log_likelihood_matches_torch_and_refuses_the_wrong_range():
    g = torch.Generator().manual_seed(2)
    logits = 4 * torch.randn(5, 1, 4, 4, generator=g)
    x = (torch.rand(5, 1, 4, 4, generator=g) < 0.5).float()
    ref = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(vae.bernoulli_log_likelihood(x, logits), ref)
    # stable for confident logits, where log(sigmoid) underflows
    big = vae.bernoulli_log_likelihood(torch.ones(1, 2), torch.tensor([[200.0, -200.0]]))
    assert torch.isfinite(big).all() and big.item() == pytest.approx(-200.0)
    with pytest.raises(ValueError, match=r"needs x in \[0, 1\].*\(x \+ 1\) / 2"):
        vae.bernoulli_log_likelihood(2 * x - 1, logits)  # images in [-1, 1]
    with pytest.raises(ValueError, match="same shape"):
        vae.bernoulli_log_likelihood(x, logits[:, :, :2])
    x[0, 0, 0, 0] = math.nan  # NaN passes a min/max range check: it must not come back as NaN
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        vae.bernoulli_log_likelihood(x, logits)
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        vae.gaussian_log_likelihood(x, logits, 0.0)


def test_gaussian_log_likelihood_includes_its_constants():
    g = torch.Generator().manual_seed(3)
    x, mean = torch.randn(2, 4, 3, 5, generator=g)
    for log_sigma in (0.0, math.log(0.1), torch.tensor(0.7)):
        sigma = math.exp(float(log_sigma))
        ref = Normal(mean, sigma).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(vae.gaussian_log_likelihood(x, mean, log_sigma), ref)
    # mean squared error averaged over D pixels is the Gaussian with sigma^2 = D / 2
    d = x[0].numel()
    mse_mean = ((x - mean) ** 2).flatten(1).mean(1)
    ll = vae.gaussian_log_likelihood(x, mean, 0.5 * math.log(d / 2))
    const = d * (0.5 * math.log(d / 2) + 0.5 * math.log(2 * math.pi))
    torch.testing.assert_close(-ll - const, mse_mean)


# ------------------------------------------------------- ELBO and IWAE on a linear Gaussian


class LinearEncoder(nn.Module):
    """q(z|x) = N(A (x - b), diag(exp(logvar))): a linear Gaussian encoder."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor, logvar: torch.Tensor):
        super().__init__()
        self.latent_dim = A.shape[0]
        self.A, self.b, self.logvar = A, b, logvar

    def forward(self, x):
        mu = (x - self.b) @ self.A.T
        return mu, self.logvar.expand_as(mu)


class LinearDecoder(nn.Module):
    def __init__(self, W: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.latent_dim = W.shape[1]
        self.W, self.b = W, b

    def forward(self, z):
        return z @ self.W.T + self.b


def ppca(double: bool = True):
    """Probabilistic PCA, z ~ N(0, I_2), x | z ~ N(W z + b, sigma^2 I_5), with orthogonal columns
    in W so that the exact posterior is a diagonal Gaussian; returns (model parts, log p(x))."""
    torch.manual_seed(0)
    dtype = torch.float64 if double else torch.float32
    Q, _ = torch.linalg.qr(torch.randn(5, 2, dtype=dtype))
    W = Q * torch.tensor([2.0, 0.7], dtype=dtype)
    b = torch.randn(5, dtype=dtype)
    sigma = 0.5
    p_x = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(5, dtype=dtype))
    M = W.T @ W + sigma**2 * torch.eye(2, dtype=dtype)  # diagonal: W^T W = diag(4, 0.49)
    A = torch.linalg.solve(M, W.T)  # posterior mean = A (x - b), Tipping & Bishop 1999
    post_logvar = torch.log(sigma**2 / torch.diagonal(M))
    x = p_x.sample((400,))
    return W, b, sigma, A, post_logvar, x, p_x.log_prob(x)


def test_elbo_is_a_lower_bound_and_tight_at_the_true_posterior():
    W, b, sigma, A, post_logvar, x, log_px = ppca()
    decoder = LinearDecoder(W, b)
    exact = models.VAE(
        LinearEncoder(A, b, post_logvar), decoder, likelihood="gaussian", sigma=sigma
    ).double()
    gen = torch.Generator().manual_seed(0)
    terms = [vae.elbo(exact, x, generator=gen) for _ in range(20)]
    # with q(z|x) = p(z|x), log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z
    elbo_exact, iwae_exact = vae.iwae_bounds(exact, x, k=7)
    torch.testing.assert_close(elbo_exact, log_px, atol=1e-6, rtol=0)
    torch.testing.assert_close(iwae_exact, log_px, atol=1e-6, rtol=0)
    assert terms[0].elbo.dtype == torch.float64  # the precision of the model
    # the one-sample estimator B is unbiased: its average over draws approaches log p(x)
    elbo_b = torch.stack([t.elbo for t in terms]).mean()
    torch.testing.assert_close(elbo_b, log_px.mean(), atol=0.03, rtol=0)

    worse = models.VAE(
        LinearEncoder(0.5 * A, b, post_logvar + 1.0), decoder, likelihood="gaussian", sigma=sigma
    ).double()
    elbo_k, _ = vae.iwae_bounds(worse, x, k=2000, generator=torch.Generator().manual_seed(1))
    gap = log_px - elbo_k.double()  # = KL(q || posterior) > 0, up to Monte Carlo error
    assert gap.mean() > 0.5 and (gap > -0.1).all()


def test_iwae_bound_tightens_towards_log_likelihood_with_k():
    W, b, sigma, A, post_logvar, x, log_px = ppca()
    worse = models.VAE(
        LinearEncoder(0.5 * A, b, post_logvar + 1.0),
        LinearDecoder(W, b),
        likelihood="gaussian",
        sigma=sigma,
    ).double()
    bounds = []
    for k in (1, 10, 100, 1000):
        elbo_k, iwae_k = vae.iwae_bounds(worse, x, k=k, generator=torch.Generator().manual_seed(k))
        bounds.append(iwae_k.double().mean().item())
        if k == 1:
            torch.testing.assert_close(elbo_k, iwae_k)  # L_1 is the ELBO
    assert bounds == sorted(bounds), bounds  # L_1 < L_10 < L_100 < L_1000
    assert bounds[0] + 0.5 < bounds[-1] <= log_px.mean().item() + 0.01
    assert log_px.mean().item() - bounds[-1] < 0.1 * (log_px.mean().item() - bounds[0])


def test_elbo_terms_and_loss_conventions():
    model = tiny_vae()
    x = binary_images(6)
    terms = vae.elbo(model, x, generator=torch.Generator().manual_seed(0))
    assert terms.elbo.shape == terms.log_px_z.shape == terms.kl.shape == (6,)
    assert terms.kl_per_dim.shape == (6, 3)
    torch.testing.assert_close(terms.elbo, terms.log_px_z - terms.kl)
    torch.testing.assert_close(vae.vae_loss(terms), -terms.elbo.mean())
    # the mismatched-scale mistake: mean over pixels + summed KL = (beta = D loss) / D
    d = x[0].numel()
    mismatched = -(terms.log_px_z / d).mean() + terms.kl.mean()
    torch.testing.assert_close(mismatched, vae.vae_loss(terms, beta=float(d)) / d)
    with pytest.raises(ValueError, match=r"x in \[0, 1\]"):
        vae.elbo(model, 2 * x - 1)


# ------------------------------------------------------------------------------- free bits


def test_free_bits_clamps_the_batch_mean_of_each_dimension():
    kl = torch.tensor([[0.1, 2.0], [0.3, 1.0]])  # batch means 0.2 and 1.5
    assert vae.free_bits_kl(kl, 0.5).item() == pytest.approx(0.5 + 1.5)
    assert vae.free_bits_kl(kl, 0.0).item() == pytest.approx(kl.sum(1).mean().item())
    assert vae.free_bits_kl(kl, 3.0).item() == pytest.approx(6.0)
    assert vae.free_bits_kl(kl, 1.0, groups=1).item() == pytest.approx(1.7)  # one group: 1.7
    assert vae.free_bits_kl(kl, 2.0, groups=1).item() == pytest.approx(2.0)
    # the batch mean comes first: clamping each example first is a different objective
    kl = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # dimension 0: examples 0 and 1, mean 0.5
    assert vae.free_bits_kl(kl, 0.25).item() == pytest.approx(0.5 + 0.25)
    # no gradient pushes a dimension below lambda
    kl = torch.tensor([[0.1, 2.0], [0.3, 1.0]], requires_grad=True)
    vae.free_bits_kl(kl, 0.5).backward()
    assert torch.equal(kl.grad, torch.tensor([[0.0, 0.5], [0.0, 0.5]]))
    with pytest.raises(ValueError, match="groups=3 must divide latent_dim=2"):
        vae.free_bits_kl(kl, 0.5, groups=3)
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0"):
        vae.free_bits_kl(kl, -1.0)


# --------------------------------------------------------------------- annealing schedules


def test_linear_annealing_values():
    schedule = vae.LinearAnnealing(100)
    assert [schedule(s) for s in (0, 25, 50, 100, 101, 10_000)] == [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert vae.LinearAnnealing(100, start=0.2)(50) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 1"):
        vae.LinearAnnealing(0)


def test_cyclical_annealing_values():
    # Fu et al. 2019: ramp over the first R = ratio of each period, then 1; restart each period
    schedule = vae.CyclicalAnnealing(period=100, ratio=0.5)
    values = [schedule(s) for s in (0, 25, 50, 75, 99, 100, 125, 150, 200)]
    assert values == [0.0, 0.5, 1.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0]
    assert vae.CyclicalAnnealing(10, ratio=1.0)(5) == 0.5
    with pytest.raises(ValueError, match=r"ratio must lie in \(0, 1\]"):
        vae.CyclicalAnnealing(10, ratio=0.0)


def test_logistic_annealing_values():
    schedule = vae.LogisticAnnealing(midpoint=100, rate=0.1)
    assert schedule(100) == 0.5
    assert schedule(0) == pytest.approx(1 / (1 + math.exp(10)))
    values = [schedule(s) for s in range(0, 300, 10)]
    assert values == sorted(values) and values[-1] > 0.999
    assert vae.LogisticAnnealing(0, rate=1.0)(10**6) == 1.0  # no overflow


# ---------------------------------------------------------------------------- active units


def test_active_units_counts_dimensions_whose_mean_varies_over_the_data():
    g = torch.Generator().manual_seed(4)
    stds = torch.tensor([0.0, 0.05, 0.2, 1.0])  # variances 0, 0.0025, 0.04, 1
    mu = torch.randn(2000, 4, generator=g) * stds + 5.0  # a constant offset does not count
    assert vae.active_units(mu) == 2
    assert vae.active_units(mu, threshold=0.001) == 3
    with pytest.raises(ValueError, match="mu must be the encoder means"):
        vae.active_units(mu[0])


def test_collapsed_encoder_has_no_active_units():
    model = tiny_vae()
    nn.init.zeros_(model.encoder.net[-1].weight)  # mu and logvar no longer depend on x
    mu = vae.encoder_means(model, binary_images(30))
    assert mu.shape == (30, 3) and vae.active_units(mu) == 0
    metrics = vae.evaluate(model, binary_images(30), k=5)
    assert set(metrics) == {"elbo", "nll", "kl", "active_units"}
    assert metrics["active_units"] == 0 and metrics["nll"] <= -metrics["elbo"] + 1e-4


# ---------------------------------------------------------------------------------- models


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize(
    "enc_cls, dec_cls, image_size, channels",
    [
        (models.MLPEncoder, models.MLPDecoder, 28, 1),
        (models.MLPEncoder, models.MLPDecoder, 8, 1),
        (models.ConvEncoder, models.ConvDecoder, 28, 1),
        (models.ConvEncoder, models.ConvDecoder, 32, 3),
        (models.ConvEncoder, models.ConvDecoder, 64, 3),
    ],
)
def test_vae_model_shapes_and_gradients(enc_cls, dec_cls, image_size, channels, batch_norm):
    kw = {"latent_dim": 5, "image_size": image_size, "channels": channels, "batch_norm": batch_norm}
    size = {"width": 4} if enc_cls is models.ConvEncoder else {"hidden": 8}
    model = models.VAE(enc_cls(**kw, **size), dec_cls(**kw, **size))
    x = torch.rand(4, channels, image_size, image_size)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 5)
    assert model.decode(mu).shape == x.shape
    vae.vae_loss(vae.elbo(model, x)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    n_bn = sum(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in model.modules())
    assert (n_bn > 0) == batch_norm


def test_vae_input_normalization_and_likelihood_settings():
    model = tiny_vae(input_shift=0.5, input_scale=0.25)
    x = binary_images(3)
    torch.testing.assert_close(model.encode(x)[0], model.encoder((x - 0.5) / 0.25)[0])
    assert "input_shift" in model.state_dict() and "log_sigma" in model.state_dict()
    assert torch.equal(model.decoder_mean(torch.zeros(1)), torch.tensor([0.5]))
    gauss = tiny_vae(likelihood="gaussian", sigma=0.1, learn_sigma=True)
    assert any(p is gauss.log_sigma for p in gauss.parameters())
    assert gauss.log_sigma.item() == pytest.approx(math.log(0.1))
    fixed = tiny_vae(likelihood="gaussian", sigma=0.1)
    assert not any(p is fixed.log_sigma for p in fixed.parameters())
    x = torch.randn(2, 1, 8, 8)  # a Gaussian decoder models any range
    assert torch.isfinite(vae.elbo(gauss, x).elbo).all()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: tiny_vae(likelihood="poisson"), "likelihood must be one of bernoulli, gaussian"),
        (lambda: tiny_vae(learn_sigma=True), "learn_sigma=True needs likelihood='gaussian'"),
        (lambda: tiny_vae(likelihood="gaussian", sigma=0.0), "sigma must be a number > 0"),
        (lambda: tiny_vae(input_scale=0.0), "input_scale must be > 0"),
        (
            lambda: models.VAE(models.MLPEncoder(3), models.MLPDecoder(4)),
            "the same int attribute latent_dim",
        ),
        (lambda: models.MLPEncoder(latent_dim=0), "latent_dim must be an int >= 1"),
        (lambda: models.ConvEncoder(image_size=30), "image_size must be one of 28, 32, 64"),
        (lambda: models.ConvDecoder(channels=2), "channels must be one of 1, 3"),
    ],
)
def test_bad_model_arguments_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_model_inputs_say_what_was_expected():
    model = tiny_vae()
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 8, 8\), got \(2, 1, 28, 28\)"):
        model.encode(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 3\), got \(2, 4\)"):
        model.decode(torch.zeros(2, 4))
    conv = models.ConvDecoder(latent_dim=3, width=4)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 3\)"):
        conv(torch.zeros(2, 3, 1, 1))


def test_evaluation_uses_eval_mode_and_restores_it():
    model = tiny_vae(batch_norm=True)
    x = binary_images(20)
    with torch.no_grad():  # running statistics unlike any batch's, so the two modes differ
        model.encoder.net[1].running_mean.fill_(0.5)
    model.eval()
    in_eval = vae.iwae_bounds(model, x, k=3, generator=torch.Generator().manual_seed(0))[1]
    model.train()
    in_train = vae.iwae_bounds(model, x, k=3, generator=torch.Generator().manual_seed(0))[1]
    assert model.training  # restored
    torch.testing.assert_close(in_train, in_eval)
    torch.testing.assert_close(vae.encoder_means(model, x[:1])[0], vae.encoder_means(model, x)[0])
    assert model.training


# --------------------------------------------------------------------------------- trainer


def test_train_step_matches_a_hand_written_step():
    t = trainer(beta=2.0, free_bits=0.1)
    model = tiny_vae(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = binary_images(8)
    gen = torch.Generator()
    gen.set_state(t.generator("eps").get_state())

    out = t.train_step(x)

    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
    log_px_z = -nn.functional.binary_cross_entropy_with_logits(
        model.decode(z), x, reduction="none"
    ).sum((1, 2, 3))
    kl_dims = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    loss = -log_px_z.mean() + 2.0 * kl_dims.mean(0).clamp(min=0.1).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()

    assert out["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert out["recon"] == pytest.approx(-log_px_z.mean().item(), rel=1e-6)
    assert out["elbo"] == pytest.approx((log_px_z - kl_dims.sum(1)).mean().item(), rel=1e-6)
    for (name, a), b in zip(t.model.state_dict().items(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0, msg=name)
    assert t.step == 1


def test_fit_logs_rows_kl_weight_lr_and_validation():
    t = trainer(
        kl_schedule=vae.LinearAnnealing(10),
        lr_schedule=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5),
    )
    history = t.fit(
        binary_images(), steps=20, batch_size=8, log_every=5, val_data=binary_images(10, 1),
        eval_every=10, progress=False,
    )  # fmt: skip
    assert list(history["step"]) == [5, 10, 15, 20]
    assert set(vae.LOSS_KEYS) <= set(history.keys())
    # the weight and lr of the last step of each row: steps 4, 9, 14, 19 (counted from 0)
    assert list(history["kl_weight"]) == [0.4, 0.9, 1.0, 1.0]
    assert list(history["lr"]) == [1e-3, 1e-3, 5e-4, 5e-4]
    assert math.isnan(history["val_loss"][0]) and math.isfinite(history["val_loss"][1])
    assert t.best_step in (10, 20) and t.best_val_loss == min(history["val_loss"][[1, 3]])
    samples = t.sample(4)
    assert samples.shape == (4, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1
    assert t.reconstruct(binary_images(3)).shape == (3, 1, 8, 8)


def test_fit_refuses_images_in_the_wrong_range():
    t = trainer()
    with pytest.raises(ValueError, match=r"data lies in \[-1, 1\].*Bernoulli.*\(x \+ 1\) / 2"):
        t.fit(2 * binary_images() - 1, steps=2, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"val_data lies in"):
        t.fit(binary_images(), steps=2, batch_size=8, val_data=-binary_images(), progress=False)


def test_early_stopping_keeps_the_best_weights_and_is_remembered(tmp_path, capsys):
    path = tmp_path / "run.pt"
    t = trainer()
    x, x_val = binary_images(), binary_images(16, 7)
    # min_delta so large that nothing after the first evaluation counts as an improvement
    t.fit(x, steps=100, batch_size=8, val_data=x_val, eval_every=5, patience=3, min_delta=1e6,
          checkpoint_path=path, progress=False)  # fmt: skip
    assert t.step == 20 and t.early_stopped_at == 20 and t.best_step == 5
    assert "stopped at step 20: early stopping" in capsys.readouterr().out
    assert load_checkpoint(path)["step"] == 20
    last = {k: v.clone() for k, v in t.model.state_dict().items()}
    assert t.restore_best() == 5
    assert not torch.equal(
        t.model.state_dict()["encoder.net.0.weight"], last["encoder.net.0.weight"]
    )
    assert t._val_loss(x_val) == pytest.approx(t.best_val_loss)

    again = trainer(init_seed=3)
    again.fit(x, steps=100, batch_size=8, val_data=x_val, eval_every=5, patience=3,
              min_delta=1e6, checkpoint_path=path, progress=False)  # fmt: skip
    assert "stopped early at step 20" in capsys.readouterr().out and again.step == 20
    assert again.restore_best() == 5
    assert torch.equal(again.model.state_dict()["decoder.net.0.weight"],
                       t.model.state_dict()["decoder.net.0.weight"])  # fmt: skip


KWARGS = {
    "lr_schedule": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40),
    "kl_schedule": vae.CyclicalAnnealing(16),
    "free_bits": 0.05,
    "augment": augment.RandomShift(1),
}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_resume_is_bit_exact(tmp_path, capsys, batch_norm):
    path = tmp_path / "run.pt"
    x, x_val = binary_images(), binary_images(16, 7)
    fit = {"batch_size": 8, "val_data": x_val, "eval_every": 10, "progress": False}
    mk = {"batch_norm": batch_norm}
    reference = trainer(0, mk, **KWARGS)
    reference.fit(x, steps=40, **fit)

    first = trainer(0, mk, **KWARGS)
    first.fit(x, steps=20, checkpoint_path=path, **fit)
    torch.manual_seed(999)  # disturb the global RNG (the augmentation's): resume restores it
    second = trainer(1, mk, **KWARGS)  # different init: everything must come from the file
    history = second.fit(x, steps=40, checkpoint_path=path, **fit)
    assert f"resumed from {path} at step 20" in capsys.readouterr().out
    assert second.step == 40
    assert_identical(reference, second)
    assert second.scheduler.state_dict() == reference.scheduler.state_dict()
    assert second.best_step == reference.best_step
    assert second.early_stopped_at == reference.early_stopped_at
    assert history.rows == reference.history.rows
    for k, v in reference.early.best_state["model"].items():
        assert torch.equal(v, second.early.best_state["model"][k]), k


def test_resume_refuses_other_settings_and_other_data(tmp_path):
    path = tmp_path / "run.pt"
    trainer(beta=1.0).fit(binary_images(), steps=4, batch_size=8, checkpoint_path=path,
                          progress=False)  # fmt: skip
    with pytest.raises(CheckpointError, match=r"beta=1.0 \(here 2.0\)"):
        trainer(beta=2.0).resume(path)
    with pytest.raises(CheckpointError, match="this fit uses"):
        trainer(beta=1.0).fit(binary_images(32), steps=8, batch_size=8, checkpoint_path=path,
                              progress=False)  # fmt: skip
    other = vae.VAETrainer(tiny_vae(latent_dim=4), device="cpu")
    with pytest.raises(CheckpointError, match="latent_dim=3 \\(here 4\\)"):
        other.resume(path)
    save_checkpoint({"format": "course_lib.GANTrainer"}, tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="not written by VAETrainer"):
        trainer().resume(tmp_path / "gan.pt")


def test_checkpoint_keeps_the_early_stopping_record_and_refuses_a_foreign_file(tmp_path):
    """The held-out record (best step, value, weights) travels in the trainer's checkpoint, and
    a checkpoint with a missing entry is refused before anything loads."""
    path = tmp_path / "run.pt"
    fit = {"batch_size": 8, "val_data": binary_images(10, 1), "eval_every": 2, "progress": False}
    first = trainer()
    first.fit(binary_images(), steps=4, checkpoint_path=path, **fit)
    fresh = trainer(init_seed=1)
    fresh.fit(binary_images(), steps=4, checkpoint_path=path, **fit)  # resumes, nothing to train
    assert fresh.best_step == first.best_step and fresh.best_val_loss == first.best_val_loss
    state = load_checkpoint(path)
    del state["state"]["opt"]
    fresh = trainer(init_seed=1)
    before = {k: v.clone() for k, v in fresh.model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"missing \['state.opt'\]"):
        fresh.load_state_dict(state)
    assert fresh.step == 0
    assert all(torch.equal(v, before[k]) for k, v in fresh.model.state_dict().items())


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    t = trainer()

    class Poison:
        every = 1

        def __call__(self, trainer):
            if trainer.step == 7:
                with torch.no_grad():
                    trainer.model.decoder.net[-1].bias.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"step 8: loss is nan.*kept at .*\(step 6\)"):
        t.fit(binary_images(), steps=20, batch_size=8, log_every=1, checkpoint_path=path,
              checkpoint_every=3, callbacks=[Poison()], progress=False)  # fmt: skip
    assert load_checkpoint(path)["step"] == 6
    assert math.isnan(t.history["loss"][-1])  # the bad row is kept, to be seen in plots
    with pytest.raises(NonFiniteLossError, match="weights are not finite"):
        t.save(path)
    assert load_checkpoint(path)["step"] == 6


def test_callbacks_and_request_stop():
    t = trainer()

    def count_active(tr):
        return {"au": vae.active_units(vae.encoder_means(tr.model, binary_images(20)))}

    class StopAt:
        every = 1

        def __call__(self, trainer):
            if trainer.step == 6:
                trainer.request_stop("enough")

    history = t.fit(binary_images(), steps=20, batch_size=8, progress=False,
                    callbacks=[Evaluate(count_active, every=4), StopAt()])  # fmt: skip
    assert t.step == 6 and t.stop_reason == "enough"
    assert list(history["step"]) == [1, 2, 3, 4, 5, 6]  # a row wherever a callback runs
    assert history["au"][3] in (0, 1, 2, 3) and np.isnan(history["au"][[0, 1, 2, 4, 5]]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of adam, adamw, sgd, rmsprop"),
        ({"optimizer_kwargs": {"momentum": 0.9}}, "optimizer_kwargs .* do not fit"),
        ({"beta": -1.0}, "beta must be a finite number >= 0"),
        ({"free_bits": -0.5}, "free_bits must be a finite number >= 0"),
        ({"kl_schedule": 3}, "kl_schedule must be None or callable"),
        ({"amp": True}, "amp=True needs a CUDA device"),
        (
            {"lr_schedule": lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt)},
            "ReduceLROnPlateau needs a metric",
        ),
    ],
)
def test_bad_trainer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trainer(**kwargs)


def test_bad_fit_arguments():
    t = trainer()
    with pytest.raises(ValueError, match="eval_every and patience need val_data"):
        t.fit(binary_images(), steps=2, patience=2, progress=False)
    with pytest.raises(ValueError, match="batch_size=64 is larger than the data"):
        t.fit(binary_images(), steps=2, progress=False)
    with pytest.raises(ValueError, match="model must be a course_lib.vae.models.VAE"):
        vae.VAETrainer(nn.Linear(2, 2), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_training_and_resume(tmp_path):
    path = tmp_path / "cuda.pt"
    torch.manual_seed(0)
    model = models.VAE(models.ConvEncoder(8, width=8), models.ConvDecoder(8, width=8))
    t = vae.VAETrainer(model, device="cuda", seed=0)
    assert t.amp
    x = (torch.rand(64, 1, 28, 28) < 0.3).float()
    t.fit(x, steps=10, batch_size=16, val_data=x[:16], checkpoint_path=path, progress=False)
    assert all(math.isfinite(v) for v in t.history.rows[-1].values())
    model2 = models.VAE(models.ConvEncoder(8, width=8), models.ConvDecoder(8, width=8))
    t2 = vae.VAETrainer(model2, device="cuda", seed=0)
    t2.fit(x, steps=12, batch_size=16, val_data=x[:16], checkpoint_path=path, progress=False)
    assert t2.step == 12
    assert t2.evaluate(x[:16], k=4)["nll"] > 0


# ---------------------------------------------------------------------------- augmentations


def test_shift_and_flip_augmentations():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 2:4] = 1.0
    torch.manual_seed(0)
    shifted = augment.RandomShift(2)(x, 0)
    assert torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing leaves the frame
    assert set(shifted.unique().tolist()) == {0.0, 1.0} and not torch.equal(shifted, x)
    assert torch.equal(augment.RandomShift(0)(x, 0), x)
    assert torch.equal(augment.RandomHorizontalFlip(1.0)(x, 0), x.flip(-1))
    assert torch.equal(augment.RandomHorizontalFlip(0.0)(x, 0), x)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        augment.RandomHorizontalFlip(2.0)


# ------------------------------------------------------------------------ exercise checks


def test_reparameterize_check_rejects_wrong_answers():
    def wrong_std(mu, logvar, eps):  # exp(logvar) is the variance, not the standard deviation
        return mu + logvar.exp() * eps

    def not_reparameterized(mu, logvar, eps):  # samples right, but no gradient reaches mu
        return torch.normal(mu.detach(), (0.5 * logvar).exp().detach())

    def detached_eps_scale(mu, logvar, eps):  # right values, no gradient to logvar
        return mu + (0.5 * logvar).exp().detach() * eps

    for wrong in (wrong_std, not_reparameterized, detached_eps_scale):
        assert not check.verify("vae.reparameterize", wrong).passed, wrong.__name__


def test_kl_check_rejects_wrong_answers():
    def mean_over_dims(mu, logvar):
        return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).mean(dim=1)

    def logvar_as_log_std(mu, logvar):
        return 0.5 * (mu**2 + (2 * logvar).exp() - 1 - 2 * logvar).sum(dim=1)

    def batch_sum(mu, logvar):
        return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()

    for wrong in (mean_over_dims, logvar_as_log_std, batch_sum):
        assert not check.verify("vae.kl", wrong).passed, wrong.__name__


def test_cyclical_annealing_check_rejects_wrong_answers():
    class NoPlateau(vae.CyclicalAnnealing):  # ramps over the whole period
        def __call__(self, step):
            return (step % self.period) / self.period

    class NeverRestarts(vae.CyclicalAnnealing):  # a linear warm-up, not cyclical
        def __call__(self, step):
            return min(1.0, step / (self.ratio * self.period))

    for wrong in (NoPlateau, NeverRestarts):
        assert not check.verify("vae_tips.cyclical_annealing", wrong).passed, wrong.__name__


def test_free_bits_check_rejects_clamping_each_example():
    def per_example(kl_per_dim, free_bits):
        return kl_per_dim.clamp(min=free_bits).mean(dim=0).sum()

    def total_kl(kl_per_dim, free_bits):  # one group for all dimensions
        return kl_per_dim.sum(dim=1).mean().clamp(min=free_bits)

    for wrong in (per_example, total_kl):
        assert not check.verify("vae_tips.free_bits", wrong).passed, wrong.__name__


def test_active_units_check_rejects_wrong_answers():
    def std_threshold(mu, threshold=0.01):
        return int((mu.std(dim=0) > threshold).sum())

    def wrong_axis(mu, threshold=0.01):
        return int((mu.var(dim=1) > threshold).sum())

    def ignores_threshold(mu, threshold=0.01):
        return int((mu.var(dim=0) > 0.01).sum())

    for wrong in (std_threshold, wrong_axis, ignores_threshold):
        assert not check.verify("vae_tips.active_units", wrong).passed, wrong.__name__
