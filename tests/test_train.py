import copy
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from course_lib._io import derive_seed
from course_lib.gan import LOSS_KEYS, GANTrainer, tricks
from course_lib.gan.losses import GANLoss, d_loss_bce, g_loss_nonsaturating
from course_lib.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from course_lib.train import (
    CheckpointError,
    EarlyStopping,
    Evaluate,
    History,
    LossExplodedError,
    NonFiniteLossError,
    SampleGrid,
    load_checkpoint,
    save_checkpoint,
)

TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------- tiny models and data


def dcgan_trainer(init_seed: int = 0, **kwargs) -> GANTrainer:
    torch.manual_seed(init_seed)
    G = DCGANGenerator(latent_dim=8, image_size=28, channels=1, width=4)
    D = DCGANDiscriminator(image_size=28, channels=1, width=4)
    return GANTrainer(G, D, device="cpu", **kwargs)


def mlp_trainer(init_seed: int = 0, **kwargs) -> GANTrainer:
    torch.manual_seed(init_seed)
    G = MLPGenerator(latent_dim=2, hidden=16, depth=2)
    D = MLPDiscriminator(hidden=16, depth=2)
    return GANTrainer(G, D, device="cpu", **kwargs)


def images(n: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = 2 * math.pi * torch.randint(0, 8, (n,), generator=generator) / 8
    noise = 0.02 * torch.randn(n, 2, generator=generator)
    return 2 * torch.stack([angle.cos(), angle.sin()], dim=1) + noise


def weights(trainer: GANTrainer) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    if trainer.G_ema is not None:
        out.update({f"G_ema.{k}": v for k, v in trainer.G_ema.state_dict().items()})
    for name, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
        for i, state in opt.state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": v for k, v in state.items()})
    return out


def assert_identical(a: GANTrainer, b: GANTrainer) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"differ: {different[:5]}"


class ExitAt:
    """A callback that kills the process without cleanup, as a crash or `kill -9` would."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, trainer):
        os._exit(17)


# ------------------------------------------------------------------------- train_step


def test_train_step_matches_a_hand_written_step():
    """One step = Goodfellow et al. Algorithm 1 with k=1: D on a detached fake, then G through D."""
    trainer = dcgan_trainer()
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = images(8)
    gen = torch.Generator()
    gen.set_state(trainer.generator("z").get_state())

    out = trainer.train_step(x)

    x_fake = G(torch.randn(8, 8, generator=gen))
    d_loss = d_loss_bce(D(x), D(x_fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = g_loss_nonsaturating(D(x_fake))  # the updated D, the same fakes, not detached
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()

    assert out["d_loss"] == pytest.approx(d_loss.item(), rel=1e-6)
    assert out["g_loss"] == pytest.approx(g_loss.item(), rel=1e-6)
    for mine, ref in ((trainer.G, G), (trainer.D, D)):
        for (name, a), b in zip(mine.state_dict().items(), ref.state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-7), name
    assert trainer.step == 1
    assert all(p.requires_grad for p in trainer.D.parameters())  # restored after the G step


def test_train_step_returns_finite_floats_and_moves_both_players():
    trainer = dcgan_trainer()
    before = {k: v.clone() for k, v in weights(trainer).items()}
    for _ in range(3):
        out = trainer.train_step(images(8))
    assert set(out) == set(LOSS_KEYS)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    after = weights(trainer)
    assert not torch.equal(before["G.net.0.weight"], after["G.net.0.weight"])
    assert not torch.equal(before["D.net.0.weight"], after["D.net.0.weight"])


def test_n_critic_updates_d_n_times_per_step():
    trainer = mlp_trainer(n_critic=3)
    gen = torch.Generator().manual_seed(0)
    trainer.train_step([ring(16, gen) for _ in range(3)])
    trainer.train_step(ring(16, gen))  # one batch reused by all D updates
    d_steps = {int(s["step"]) for s in trainer.opt_d.state_dict()["state"].values()}
    g_steps = {int(s["step"]) for s in trainer.opt_g.state_dict()["state"].values()}
    assert d_steps == {6} and g_steps == {2}
    with pytest.raises(ValueError, match="n_critic=3"):
        trainer.train_step([ring(16, gen)] * 2)


def test_gan_loss_hooks_run_on_the_discriminator_step():
    calls = {"penalty": 0, "after": 0}

    def penalty(D, x_real, x_fake):
        calls["penalty"] += 1
        assert not x_fake.requires_grad and x_real.shape == x_fake.shape
        return 0.0 * D(x_real).sum()

    def after(D):
        calls["after"] += 1
        assert not torch.is_grad_enabled()

    loss = GANLoss("hooked", d_loss_bce, g_loss_nonsaturating, penalty, after)
    trainer = mlp_trainer(loss=loss, n_critic=2)
    trainer.train_step(ring(8, torch.Generator().manual_seed(0)))
    assert calls == {"penalty": 2, "after": 2}


# ------------------------------------------------------------------------------- fit


def test_fit_history_rows_and_continuation():
    trainer = dcgan_trainer()
    history = trainer.fit(images(), steps=10, batch_size=8, log_every=3, progress=False)
    assert history is trainer.history and trainer.step == 10
    assert list(history["step"]) == [3, 6, 9, 10]  # every 3 steps and the last one
    for key in LOSS_KEYS:
        assert history[key].shape == (4,) and np.isfinite(history[key]).all()
    history = trainer.fit(images(), steps=15, batch_size=8, log_every=3, progress=True)
    assert trainer.step == 15 and list(history["step"]) == [3, 6, 9, 10, 12, 15]


def test_fit_rows_are_means_since_the_previous_row():
    a, b = mlp_trainer(), mlp_trainer()
    per_step = a.fit(ring, steps=4, batch_size=16, log_every=1, progress=False)
    pooled = b.fit(ring, steps=4, batch_size=16, log_every=2, progress=False)
    assert pooled["d_loss"][0] == pytest.approx(per_step["d_loss"][:2].mean(), rel=1e-6)
    assert pooled["g_loss"][1] == pytest.approx(per_step["g_loss"][2:].mean(), rel=1e-6)


def test_default_log_every_gives_about_100_rows():
    assert len(mlp_trainer().fit(ring, steps=7, batch_size=8, progress=False)) == 7
    assert len(mlp_trainer().fit(ring, steps=250, batch_size=8, progress=False)) == 125


def test_fit_accepts_a_tensor_dataset_and_warns_about_pixel_range():
    trainer = dcgan_trainer()
    data = torch.utils.data.TensorDataset(images(16), torch.zeros(16))
    trainer.fit(data, steps=2, batch_size=8, progress=False)
    with pytest.warns(UserWarning, match="rescale"):
        trainer.fit((images(16) + 1) * 127.5, steps=3, batch_size=8, progress=False)


def test_fit_with_nothing_to_do_warns():
    trainer = mlp_trainer()
    trainer.fit(ring, steps=3, batch_size=8, progress=False)
    with pytest.warns(UserWarning, match="already at step 3"):
        trainer.fit(ring, steps=3, batch_size=8, progress=False)
    assert trainer.step == 3


def test_callbacks_sample_grid_and_evaluate():
    trainer = dcgan_trainer()
    z = torch.randn(6, 8)
    grid = SampleGrid(z, every=5)
    evaluate = Evaluate(lambda t: t.generate(z=z).mean().item(), every=4, name="mean_pixel")
    both = Evaluate(lambda t: {"a": 1.0, "b": 2}, every=8)
    history = trainer.fit(
        images(),
        steps=10,
        batch_size=8,
        log_every=3,
        callbacks=[grid, evaluate, both],
        progress=False,
    )
    assert [step for step, _ in grid.images] == [5, 10]
    assert all(x.shape == (6, 1, 28, 28) and x.device.type == "cpu" for _, x in grid.images)
    assert not torch.equal(grid.images[0][1], grid.images[1][1])  # training moved G
    assert list(history["step"]) == [3, 4, 5, 6, 8, 9, 10]
    values = history["mean_pixel"]
    assert np.isfinite(values[[1, 4]]).all() and np.isnan(values[[0, 2, 3, 5, 6]]).all()
    assert history["a"][4] == 1.0 and history["b"][4] == 2.0
    with pytest.raises(ValueError, match="every"):
        SampleGrid(z, every=0)
    with pytest.raises(ValueError, match="callback"):
        trainer.fit(images(), steps=12, batch_size=8, callbacks=[lambda t: None], progress=False)


def test_save_and_best_path_refuse_a_folder(tmp_path):
    with pytest.raises(ValueError, match=r"^path .* is a folder; pass a file path"):
        mlp_trainer().save(tmp_path)
    evaluate = Evaluate(lambda t: 1.0, every=5, name="score")
    with pytest.raises(ValueError, match=r"^best_path .* is a folder; .*best\.pt"):
        EarlyStopping(evaluate, patience=2, best_path=tmp_path)


def test_evaluate_needs_a_function():
    with pytest.raises(ValueError, match="fn must be a function fn\\(trainer\\)"):
        Evaluate(None, every=10, name="fid")


def test_generate_and_sample_z():
    trainer = dcgan_trainer()
    trainer.fit(images(), steps=3, batch_size=8, progress=False)
    z = trainer.sample_z(5)
    assert z.shape == (5, 8) and z.device == trainer.device
    assert not torch.equal(z, trainer.sample_z(5))  # the stream moves on
    x = trainer.generate(z=z)
    assert x.shape == (5, 1, 28, 28) and not x.requires_grad
    assert trainer.G.training  # eval mode only during generate
    trainer.G.eval()
    assert torch.equal(x, trainer.G(z))  # BatchNorm used its running statistics
    assert trainer.generate(n=4).shape == (4, 1, 28, 28) and not trainer.G.training
    with pytest.raises(ValueError, match="exactly one"):
        trainer.generate()
    with pytest.raises(ValueError, match="exactly one"):
        trainer.generate(n=2, z=z)


def test_sampling_does_not_change_training():
    a, b = mlp_trainer(), mlp_trainer()
    a.fit(ring, steps=6, batch_size=8, progress=False)
    b.fit(ring, steps=3, batch_size=8, progress=False)
    b.generate(n=10)
    b.fit(ring, steps=6, batch_size=8, progress=False)
    assert_identical(a, b)


# ------------------------------------------------------------------- checkpoint / resume


@pytest.mark.parametrize(
    "make, data, kwargs",
    [
        (dcgan_trainer, images(), {}),
        (mlp_trainer, ring, {}),
        (mlp_trainer, ring, {"n_critic": 2}),
        (
            dcgan_trainer,
            images(),
            {"augment": tricks.DiffAugment(), "ema_decay": 0.9, "grad_clip": 0.5},
        ),
        (mlp_trainer, ring, {"augment": tricks.InstanceNoise(0.1, 40)}),
    ],
    ids=["dcgan", "mlp", "mlp-n_critic-2", "dcgan-tricks", "mlp-instance-noise"],
)
def test_resume_is_bit_exact(tmp_path, capsys, make, data, kwargs):
    path = tmp_path / "run.pt"
    reference = make(init_seed=0, **kwargs)
    reference.fit(data, steps=60, batch_size=8, progress=False)

    first = make(init_seed=0, **kwargs)
    first.fit(data, steps=30, batch_size=8, checkpoint_path=path, progress=False)
    rng_at_checkpoint = torch.get_rng_state()
    torch.manual_seed(999)  # disturb the global RNG: resume must restore it

    second = make(init_seed=1, **kwargs)  # different init: everything must come from the file
    history = second.fit(data, steps=60, batch_size=8, checkpoint_path=path, progress=False)
    assert f"resumed from {path} at step 30" in capsys.readouterr().out
    assert second.step == 60
    assert_identical(reference, second)
    if "augment" not in kwargs:  # augmentations draw from the global RNG, restored with it
        assert torch.equal(torch.get_rng_state(), rng_at_checkpoint)  # restored, then unused
    assert history["step"][0] == 1 and history["step"][-1] == 60  # the history carried over
    assert load_checkpoint(path)["step"] == 60  # the final checkpoint

    third = make(init_seed=2, **kwargs)
    third.resume(path)
    assert third.step == 60 and third.history.rows == second.history.rows
    fourth = make(init_seed=2, **kwargs)
    fourth.load_state_dict(first.state_dict())
    assert fourth.step == 30
    assert_identical(first, fourth)


def test_resume_after_the_process_is_killed(tmp_path, capsys):
    path = tmp_path / "killed.pt"
    child = textwrap.dedent(
        f"""
        import sys, torch
        torch.set_num_threads({torch.get_num_threads()})
        sys.path.insert(0, {str(TESTS)!r})
        import test_train as t
        trainer = t.dcgan_trainer(init_seed=0)
        trainer.fit(t.images(), steps=60, batch_size=8, checkpoint_path={str(path)!r},
                    checkpoint_every=10, callbacks=[t.ExitAt(35)], progress=False)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 17, proc.stderr
    assert load_checkpoint(path)["step"] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["killed.pt"]  # no temporary files left

    resumed = dcgan_trainer(init_seed=5)
    resumed.fit(
        images(), steps=60, batch_size=8, checkpoint_path=path, checkpoint_every=10, progress=False
    )
    assert "resumed from" in capsys.readouterr().out
    reference = dcgan_trainer(init_seed=0)
    reference.fit(images(), steps=60, batch_size=8, progress=False)
    assert_identical(reference, resumed)


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert save_checkpoint({"step": 3}, tmp_path / "new" / "dir" / "c.pt").is_file()


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "bad.pt"
    trainer = dcgan_trainer()
    trainer.save(path)
    raw = path.read_bytes()
    path.write_bytes(
        {"truncated": raw[: len(raw) // 2], "random bytes": os.urandom(4096), "empty": b""}[damage]
    )
    for load in (load_checkpoint, dcgan_trainer().resume):
        with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="corrupt"):
        dcgan_trainer().fit(images(), steps=2, batch_size=8, checkpoint_path=path, progress=False)


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        load_checkpoint(tmp_path / "list.pt")
    save_checkpoint({"G": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not written by GANTrainer"):
        dcgan_trainer().resume(tmp_path / "other.pt")


def test_a_checkpoint_without_checksum_loads_with_a_warning(tmp_path):
    trainer = dcgan_trainer()
    trainer.fit(images(), steps=2, batch_size=8, progress=False)
    torch.save(trainer.state_dict(), tmp_path / "by_hand.pt")  # as course_lib 0.2.0 wrote them
    other = dcgan_trainer(init_seed=1)
    with pytest.warns(UserWarning, match="has no checksum .* cannot be verified"):
        other.resume(tmp_path / "by_hand.pt")
    assert_identical(trainer, other)


def test_resume_refuses_other_settings(tmp_path):
    path = tmp_path / "run.pt"
    dcgan_trainer().fit(images(), steps=2, batch_size=8, checkpoint_path=path, progress=False)
    with pytest.raises(CheckpointError, match=r"opt_d.lr=0.0002 \(here 0.001\)"):
        dcgan_trainer(lr_d=1e-3).resume(path)
    with pytest.raises(CheckpointError, match="loss='nonsaturating' \\(here 'minimax'\\)"):
        dcgan_trainer(loss="minimax").resume(path)
    torch.manual_seed(0)
    wider = GANTrainer(
        DCGANGenerator(latent_dim=8, width=8), DCGANDiscriminator(width=4), device="cpu"
    )
    before = copy.deepcopy(wider.G.state_dict())
    with pytest.raises(CheckpointError, match="different G .*shape"):
        wider.resume(path)
    assert all(torch.equal(v, before[k]) for k, v in wider.G.state_dict().items())  # untouched
    with pytest.raises(CheckpointError, match="batch_size"):
        dcgan_trainer().fit(images(), steps=4, batch_size=4, checkpoint_path=path, progress=False)


def test_checkpoint_from_another_device_reseeds_device_streams_and_keeps_the_data_stream():
    """A torch.Generator's state is device-specific: z's stream is re-seeded from (seed, name,
    step), while the data stream, on the CPU on every device, continues exactly."""
    source = mlp_trainer(seed=5)
    source.fit(ring, steps=3, batch_size=8, progress=False)
    state = source.state_dict()
    state["streams"]["z"] = {"device": "cuda", "state": torch.zeros(3, dtype=torch.uint8)}
    # as if written on a GPU: a CUDA generator's state would not fit a CPU one
    target = mlp_trainer(seed=5)
    with pytest.warns(UserWarning, match="comes from a run on another device.*re-seeded"):
        target.load_state_dict(state)
    assert target.step == 3
    assert torch.equal(target.generator("data").get_state(), source.generator("data").get_state())
    expected_z = torch.Generator().manual_seed(derive_seed(5, "z", 3))
    assert torch.equal(target.generator("z").get_state(), expected_z.get_state())


def spoiled_from_batch(first: int, spoil):
    """The ring's sampler whose batches from number ``first`` on go through ``spoil``."""
    calls = {"n": 0}

    def sample(n, generator):
        calls["n"] += 1
        x = ring(n, generator)
        return spoil(x) if calls["n"] >= first else x

    return sample


def failing_fit(trainer, data, path, error) -> str:
    """Fit with a checkpoint every 10 steps until ``error`` is raised; its one-line message."""
    with pytest.raises(error) as info:
        trainer.fit(
            data,
            steps=40,
            batch_size=8,
            log_every=5,
            checkpoint_path=path,
            checkpoint_every=10,
            progress=False,
        )
    assert "\n" not in str(info.value)
    return str(info.value)


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    trainer = mlp_trainer()
    poisoned = spoiled_from_batch(23, lambda x: x * math.nan)  # NaN data from step 23 on
    message = failing_fit(trainer, poisoned, path, NonFiniteLossError)
    assert message.startswith("step 25: d_loss is nan (steps 21-25)")
    assert f"kept at {path} (step 20)" in message and "lower lr" in message
    state = load_checkpoint(path)
    assert state["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["state"]["G"].values())
    assert np.isnan(trainer.history["d_loss"][-1])  # the bad row is visible in the history


def test_nan_weights_are_never_checkpointed(tmp_path):
    path = tmp_path / "run.pt"

    def poison(D):
        if trainer.step >= 12:  # D's update at step 13 breaks its weights
            for p in D.parameters():
                p.fill_(math.inf)

    loss = GANLoss("poison", d_loss_bce, g_loss_nonsaturating, after_d_step=poison)
    trainer = mlp_trainer(loss=loss)
    with pytest.raises(NonFiniteLossError, match="step 1[3-9]|step 20") as info:
        trainer.fit(
            ring,
            steps=40,
            batch_size=8,
            log_every=100,
            checkpoint_path=path,
            checkpoint_every=10,
            progress=False,
        )
    assert "(step 10)" in str(info.value)
    assert load_checkpoint(path)["step"] == 10


def test_nan_without_checkpoint_says_so():
    trainer = mlp_trainer()
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written"):
        trainer.fit(
            lambda n, g: torch.full((n, 2), math.inf), steps=2, batch_size=4, progress=False
        )


def test_a_loss_that_explodes_but_stays_finite_never_overwrites_the_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    trainer = mlp_trainer()
    exploding = spoiled_from_batch(23, lambda x: x * 1e9)  # data a billionfold: D's values too
    message = failing_fit(trainer, exploding, path, LossExplodedError)
    assert message.startswith("step 25: d_") and "(steps 21-25)" in message
    assert "beyond max_abs_loss=1e+06" in message and f"kept at {path} (step 20)" in message
    last = {k: trainer.history[k][-1] for k in ("d_loss", "d_real", "d_fake")}
    assert all(map(math.isfinite, last.values())) and max(map(abs, last.values())) > 1e6
    assert load_checkpoint(path)["step"] == 20
    assert issubclass(LossExplodedError, NonFiniteLossError)  # one except catches both

    relaxed = mlp_trainer()
    relaxed.max_abs_loss = None  # where huge values are expected, the guard can be turned off
    relaxed.fit(spoiled_from_batch(23, lambda x: x * 1e9), steps=25, batch_size=8, progress=False)
    assert relaxed.step == 25 and abs(relaxed.history["d_real"][-1]) > 1e6


def test_nan_before_the_first_checkpoint_does_not_ask_for_the_path_it_has(tmp_path):
    path = tmp_path / "run.pt"
    trainer = mlp_trainer(lr_d=4e-4)
    trainer.opt_d.param_groups[0]["lr"] = 1e-5  # as a learning-rate schedule would
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(
            lambda n, g: torch.full((n, 2), math.nan),
            steps=20,
            batch_size=4,
            checkpoint_path=path,
            checkpoint_every=10,
            progress=False,
        )
    message = str(info.value)
    assert f"no checkpoint had been written to {path} yet" in message
    assert "pass checkpoint_path" not in message
    assert "opt_g lr=0.0002, opt_d lr=0.0004 (scheduled: now 1e-05)" in message
    assert not path.exists()


def test_a_save_killed_half_way_leaves_no_temporary_file_after_the_next_save(tmp_path):
    path = tmp_path / "run.pt"
    trainer = mlp_trainer()
    trainer.fit(ring, steps=2, batch_size=8, checkpoint_path=path, progress=False)
    child = textwrap.dedent(
        f"""
        import os, torch
        from course_lib._io import atomic_write

        def killed(f):
            f.write(b"half a checkpoint")
            f.flush()
            os._exit(9)  # as kill -9 during torch.save: no cleanup code runs

        atomic_write({str(path)!r}, killed)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")
    assert load_checkpoint(path)["step"] == 2  # the kill cost nothing
    trainer.fit(ring, steps=4, batch_size=8, checkpoint_path=path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_a_custom_augmentation_resumes_in_another_process(tmp_path, capsys):
    path = tmp_path / "run.pt"
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import test_train as t
        trainer = t.mlp_trainer(augment=t.jitter)
        trainer.fit(t.ring, steps=6, batch_size=8, checkpoint_path={str(path)!r},
                    checkpoint_every=3, callbacks=[t.ExitAt(4)], progress=False)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 17, proc.stderr
    trainer = mlp_trainer(augment=jitter)  # a new process: the function has another address
    trainer.fit(ring, steps=6, batch_size=8, checkpoint_path=path, progress=False)
    assert "resumed from" in capsys.readouterr().out and trainer.step == 6
    assert load_checkpoint(path)["hparams"]["augment"] == "<function jitter>"


def jitter(x: torch.Tensor, step: int) -> torch.Tensor:
    """An augmentation of the learner's own: a module-level function."""
    return x + 0.01 * torch.randn_like(x)


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr_g": 0}, "lr_g"),
        ({"lr_d": -1e-3}, "lr_d"),
        ({"lr_g": math.nan}, "lr_g"),
        ({"betas": (1.0, 0.999)}, "betas"),
        ({"betas": (0.5,)}, "betas"),
        ({"n_critic": 0}, "n_critic"),
        ({"seed": -1}, "seed"),
        ({"amp": True}, "amp=True needs a CUDA device"),
        ({"loss": "no-such-loss"}, "unknown loss"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"grad_clip": math.inf}, "grad_clip"),
        ({"ema_decay": 1.0}, "decay"),
        ({"augment": "diffaugment"}, "augment must be a function"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dcgan_trainer(**kwargs)


def test_generator_needs_latent_dim():
    with pytest.raises(ValueError, match="latent_dim"):
        GANTrainer(torch.nn.Linear(2, 2), MLPDiscriminator(), device="cpu")


@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        (images(), {"steps": -1}, "steps"),
        (images(), {"steps": 2, "batch_size": 0}, "batch_size"),
        (images(8), {"steps": 2, "batch_size": 16}, "batch_size=16 is larger than the data"),
        (images(), {"steps": 2, "log_every": 0}, "log_every"),
        (images(), {"steps": 2, "checkpoint_every": 5}, "checkpoint_path"),
        (images().long(), {"steps": 2}, "float tensor"),
        (images() * math.nan, {"steps": 2}, "NaN"),
        (images(0), {"steps": 2}, r"data is empty \(shape \(0, 1, 28, 28\)\)"),
        (TensorDataset(images(0), torch.zeros(0)), {"steps": 2}, "data is empty"),
        ("mnist", {"steps": 2}, "data must be"),
        (lambda n, g: torch.zeros(n + 1, 1, 28, 28), {"steps": 2}, "must return a tensor with"),
    ],
)
def test_bad_fit_arguments(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dcgan_trainer().fit(data, **{"batch_size": 8, "progress": False, **kwargs})


def test_cpu_defaults():
    trainer = dcgan_trainer()
    assert trainer.device.type == "cpu" and not trainer.amp and trainer.precision.scaler is None
    assert trainer.opt_g.defaults["betas"] == (0.5, 0.999)
    assert trainer.opt_d.defaults["lr"] == 2e-4
    assert next(trainer.G.parameters()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_training_and_resume(tmp_path):
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=8, image_size=32, channels=3, width=8)
    D = DCGANDiscriminator(image_size=32, channels=3, width=8)
    trainer = GANTrainer(G, D)
    assert trainer.device.type == "cuda" and trainer.amp
    native_bf16 = torch.cuda.get_device_capability()[0] >= 8
    assert trainer.precision.dtype == (torch.bfloat16 if native_bf16 else torch.float16)
    assert (trainer.precision.scaler is None) == native_bf16  # fp16 needs a GradScaler
    assert next(trainer.G.parameters()).device.type == "cuda"
    data = torch.rand(64, 3, 32, 32) * 2 - 1
    history = trainer.fit(
        data, steps=6, batch_size=16, checkpoint_path=tmp_path / "c.pt", progress=False
    )
    assert np.isfinite(history["d_loss"]).all()
    assert trainer.generate(n=4).dtype == torch.float32
    resumed = GANTrainer(copy.deepcopy(G), copy.deepcopy(D))
    resumed.resume(tmp_path / "c.pt")
    assert resumed.step == 6


# --------------------------------------------------------------------------- history


def test_history_columns_round_trip_and_html():
    history = History([{"step": 1, "d_loss": 1.0}, {"step": 2, "d_loss": 0.5, "fid": 3.0}])
    assert history["step"].dtype == np.int64 and list(history["step"]) == [1, 2]
    np.testing.assert_array_equal(history["fid"], [np.nan, 3.0])
    assert history.keys() == ["step", "d_loss", "fid"] and "fid" in history and len(history) == 2
    assert History.from_dict(history.to_dict()).rows == history.rows
    html = history._repr_html_()
    assert "<table>" in html and "fid" in html and "0.5" in html
    assert "2 rows" in repr(history)
    with pytest.raises(KeyError, match="'g_loss' is not in the history"):
        history["g_loss"]
    with pytest.raises(ValueError, match="step"):
        history.append({"d_loss": 1.0})


# ------------------------------------------------------------------- stabilization options


def test_augment_sees_every_input_of_d_in_both_steps():
    calls = []

    def augment(x, step):
        calls.append((step, x.requires_grad))
        return x

    trainer = mlp_trainer(augment=augment, n_critic=2)
    trainer.fit(ring, steps=2, batch_size=4, progress=False)
    # per step: (real, fake) for each of 2 D updates, then the fake of the G update with a graph
    assert [s for s, _ in calls] == [0] * 5 + [1] * 5
    assert [g for _, g in calls[:5]] == [False, False, False, False, True]


def test_grad_clip_bounds_each_players_gradient_norm():
    trainer = dcgan_trainer(grad_clip=1e-3, lr_d=1.0)
    trainer.train_step(images(8))
    clipped = {p: tricks.layer_grad_norms(m) for p, m in (("G", trainer.G), ("D", trainer.D))}
    total = {p: math.sqrt(sum(v * v for v in n.values())) for p, n in clipped.items()}
    assert total["D"] == pytest.approx(1e-3, rel=1e-3)
    assert total["G"] <= 1e-3 * (1 + 1e-3)
    assert float(trainer.grad_norms_before_clip["D"]) > 1e-2  # it was clipped


def test_grad_norms_logs_the_gradient_before_clipping():
    """D's first update sees the same loss with or without clipping: its logged per-layer norms
    must agree, although the clipped trainer's .grad tensors are 1000x smaller."""
    logged = {}
    for clip in (None, 1e-3):
        trainer = dcgan_trainer(grad_clip=clip)
        trainer.train_step(images(8))
        logged[clip] = tricks.GradNorms(every=1)(trainer)
    d_keys = [k for k in logged[None] if k.startswith("grad_norm/D")]
    assert len(d_keys) > 2
    for key in d_keys:
        assert logged[1e-3][key] == pytest.approx(logged[None][key], rel=1e-4), key


def test_ema_generator_is_trained_saved_and_sampled():
    trainer = dcgan_trainer(ema_decay=0.5)
    trainer.fit(images(), steps=3, batch_size=8, progress=False)
    z = trainer.sample_z(4)
    raw, ema = trainer.generate(z=z), trainer.generate(z=z, ema=True)
    assert raw.shape == ema.shape and not torch.equal(raw, ema)
    assert trainer.hparams()["G_ema"] == 0.5
    with pytest.raises(ValueError, match="ema_decay"):
        dcgan_trainer().generate(n=2, ema=True)


def test_request_stop_ends_fit_after_that_step_and_checkpoints(tmp_path, capsys):
    class StopAt:
        every = 1

        def __call__(self, trainer):
            if trainer.step == 3:
                trainer.request_stop("no progress")
            return {"called": float(trainer.step)}

    path = tmp_path / "stopped.pt"
    trainer = mlp_trainer()
    history = trainer.fit(
        ring, steps=10, batch_size=4, callbacks=[StopAt()], checkpoint_path=path, progress=False
    )
    assert trainer.step == 3 and history["step"][-1] == 3 and trainer.stop_reason == "no progress"
    assert "stopped at step 3: no progress" in capsys.readouterr().out
    assert load_checkpoint(path)["step"] == 3
    trainer.fit(ring, steps=5, batch_size=4, progress=False)  # a new fit clears the request
    assert trainer.step == 5 and trainer.stop_reason is None
