import pytest
import torch
from torch import nn

from course_lib.gan.models import (
    DCGAN_CHANNELS,
    DCGAN_IMAGE_SIZES,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    dcgan_init_,
)


def leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


@pytest.mark.parametrize("image_size", DCGAN_IMAGE_SIZES)
@pytest.mark.parametrize("channels", DCGAN_CHANNELS)
def test_dcgan_shapes_dtypes_and_range(image_size, channels):
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=8, image_size=image_size, channels=channels, width=4)
    D = DCGANDiscriminator(image_size=image_size, channels=channels, width=4)
    x = G(torch.randn(5, 8))
    assert x.shape == (5, channels, image_size, image_size) and x.dtype == torch.float32
    assert x.abs().max() <= 1.0  # tanh output
    logits = D(x)
    assert logits.shape == (5,) and logits.dtype == torch.float32
    assert G.latent_dim == 8


def test_generator_accepts_4d_z_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=8, image_size=32, channels=3, width=4)
    D = DCGANDiscriminator(image_size=32, channels=3, width=4)
    z = torch.randn(4, 8)
    assert torch.equal(G(z), G(z.view(4, 8, 1, 1)))
    D(G(z)).sum().backward()
    for p in list(G.parameters()) + list(D.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("image_size, levels", [(28, 2), (32, 3), (64, 4)])
def test_dcgan_follows_radford_rules(image_size, levels):
    w = 4
    G = DCGANGenerator(latent_dim=8, image_size=image_size, channels=1, width=w)
    D = DCGANDiscriminator(image_size=image_size, channels=1, width=w)
    g_types = [type(m) for m in leaves(G)]
    d_types = [type(m) for m in leaves(D)]
    for types in (g_types, d_types):  # no pooling, no fully connected layers
        assert not any(issubclass(t, nn.Linear | nn.MaxPool2d | nn.AvgPool2d) for t in types)
    # G: ConvT, BN, ReLU per level, ConvT + Tanh at the output (no BN there)
    assert g_types == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU] * levels + [
        nn.ConvTranspose2d,
        nn.Tanh,
    ]
    # D: Conv + LeakyReLU on the input (no BN), then Conv, BN, LeakyReLU, and a final Conv
    assert d_types == [nn.Conv2d, nn.LeakyReLU] + [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU] * (
        levels - 1
    ) + [nn.Conv2d]
    assert all(m.negative_slope == 0.2 for m in leaves(D) if isinstance(m, nn.LeakyReLU))
    convs = [m for m in leaves(D) if isinstance(m, nn.Conv2d)]
    assert all(c.stride == (2, 2) for c in convs[:-1])  # strided convs instead of pooling
    # width multiplier: the coarsest level has w * 2**(levels - 1) channels in both nets
    assert leaves(G)[0].out_channels == w * 2 ** (levels - 1)
    assert convs[-1].in_channels == w * 2 ** (levels - 1)


def test_width_scales_parameter_count():
    small = sum(p.numel() for p in DCGANGenerator(width=4).parameters())
    large = sum(p.numel() for p in DCGANGenerator(width=8).parameters())
    assert 2 < large / small < 4.5  # conv weights grow ~ width**2, the z projection ~ width


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=100, image_size=64, channels=3, width=32)
    D = DCGANDiscriminator(image_size=64, channels=3, width=32)
    for module in (G, D):
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        weights = torch.cat([c.weight.flatten() for c in convs])
        assert abs(weights.mean().item()) < 1e-3
        assert weights.std().item() == pytest.approx(0.02, rel=0.02)
        for c in convs:
            if c.weight.numel() > 5000:  # each layer, not just the pooled weights
                assert c.weight.std().item() == pytest.approx(0.02, rel=0.1)
            assert c.bias is None or torch.all(c.bias == 0)
        norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        scale = torch.cat([n.weight for n in norms])
        assert scale.mean().item() == pytest.approx(1.0, abs=3e-3)
        assert scale.std().item() == pytest.approx(0.02, rel=0.15)
        assert all(torch.all(n.bias == 0) for n in norms)
        assert all(torch.all(n.running_var == 1) for n in norms)  # buffers untouched


def test_dcgan_init_is_in_place_reproducible_and_covers_linear_layers():
    net = nn.Sequential(nn.Linear(200, 300), nn.Conv2d(3, 8, 3), nn.BatchNorm1d(5))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(5.0)
    state = torch.get_rng_state()
    assert dcgan_init_(net, generator=torch.Generator().manual_seed(1)) is None
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not consumed
    first = [p.clone() for p in net.parameters()]
    dcgan_init_(net, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(first, net.parameters(), strict=True))
    assert net[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(net[0].bias == 0) and torch.all(net[1].bias == 0)
    assert net[2].weight.mean().item() == pytest.approx(1.0, abs=0.05)


def test_mlp_shapes_and_depth():
    torch.manual_seed(0)
    G = MLPGenerator(latent_dim=3, out_dim=2, hidden=16, depth=4)
    D = MLPDiscriminator(in_dim=2, hidden=16, depth=2)
    x = G(torch.randn(7, 3))
    assert x.shape == (7, 2) and G.latent_dim == 3
    assert D(x).shape == (7,)
    assert sum(isinstance(m, nn.Linear) for m in G.modules()) == 5
    assert sum(isinstance(m, nn.Linear) for m in D.modules()) == 3
    assert x.abs().max() > 0  # unbounded output head, not squashed


@pytest.mark.parametrize(
    "build, arg",
    [
        (lambda: DCGANGenerator(image_size=48), "image_size"),
        (lambda: DCGANGenerator(channels=2), "channels"),
        (lambda: DCGANGenerator(latent_dim=0), "latent_dim"),
        (lambda: DCGANGenerator(width=0), "width"),
        (lambda: DCGANDiscriminator(image_size=16), "image_size"),
        (lambda: DCGANDiscriminator(channels=4), "channels"),
        (lambda: DCGANDiscriminator(width=2.5), "width"),
        (lambda: MLPGenerator(latent_dim=True), "latent_dim"),
        (lambda: MLPGenerator(depth=0), "depth"),
        (lambda: MLPDiscriminator(hidden=-3), "hidden"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(build, arg):
    with pytest.raises(ValueError, match=arg):
        build()


def test_bad_input_shapes_say_what_was_expected():
    G = DCGANGenerator(latent_dim=16, image_size=28, channels=1, width=4)
    D = DCGANDiscriminator(image_size=28, channels=1, width=4)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 16\), got \(4, 8\)"):
        G(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 16\)"):
        G(torch.randn(4, 16, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(1, 28, 28\)"):
        D(torch.randn(1, 28, 28))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 2\)"):
        MLPGenerator()(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\), got \(3, 1, 2\)"):
        MLPDiscriminator()(torch.randn(3, 1, 2))


def test_every_generator_has_latent_dim():
    for G in (MLPGenerator(latent_dim=5), DCGANGenerator(latent_dim=7, width=4)):
        z = torch.randn(2, G.latent_dim)
        assert G(z).shape[0] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_models_run_on_cuda():
    G = DCGANGenerator(latent_dim=8, image_size=32, channels=3, width=4).cuda()
    D = DCGANDiscriminator(image_size=32, channels=3, width=4).cuda()
    logits = D(G(torch.randn(3, 8, device="cuda")))
    assert logits.shape == (3,) and logits.device.type == "cuda"


@pytest.mark.parametrize("norm", ["layer", "instance", "none"])
def test_discriminator_norms_other_than_batch_treat_each_example_alone(norm):
    torch.manual_seed(0)
    D = DCGANDiscriminator(image_size=28, channels=1, width=8, norm=norm).train()
    x = torch.randn(6, 1, 28, 28)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    # a per-example gradient penalty needs D(x_i) to depend on x_i only
    assert torch.allclose(D(x)[:3], D(x[:3]), atol=1e-6)


def test_batch_norm_discriminator_mixes_examples_in_training_mode():
    torch.manual_seed(0)
    D = DCGANDiscriminator(image_size=28, channels=1, width=8).train()
    x = torch.randn(6, 1, 28, 28)
    assert D.norm == "batch" and not torch.allclose(D(x)[:3], D(x[:3]), atol=1e-4)


def test_unknown_discriminator_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="norm must be one of"):
        DCGANDiscriminator(norm="spectral")
