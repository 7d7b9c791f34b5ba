"""Tests of course_lib.train.Trainer as a loop for any algorithm: a new model family writes a step
and gets batches of every tensor, history, callbacks with state, checkpoints and exact resume."""

import dataclasses
import math
import zipfile

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_lib.gan import GANStep, losses
from course_lib.gan.models import MLPDiscriminator, MLPGenerator
from course_lib.train import CheckpointError, Trainer, load_checkpoint, save_checkpoint

N_CLASSES = 3


class ConditionalG(nn.Module):
    """G(z, y): the label's embedding is concatenated to z."""

    def __init__(self, latent_dim: int = 4):
        super().__init__()
        self.latent_dim = latent_dim
        self.embed = nn.Embedding(N_CLASSES, 4)
        self.net = nn.Sequential(nn.Linear(latent_dim + 4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(y)], dim=1))


class ConditionalD(nn.Module):
    """D(x, y): one logit per example."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(N_CLASSES, 4)
        self.net = nn.Sequential(nn.Linear(2 + 4, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.embed(y)], dim=1)).squeeze(1)


@dataclasses.dataclass
class ConditionalGANStep:
    """A cGAN step written the way a contributor would: one D update, one G update."""

    G: ConditionalG
    D: ConditionalD
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    labels_seen: list = dataclasses.field(default_factory=list, repr=False)

    def hparams(self) -> dict:
        return {"labels_seen": None}  # a log of this test, not a setting

    def step(self, trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
        x_real, y = batch
        self.labels_seen.append((x_real.detach().clone(), y.clone()))
        z = torch.randn(len(y), self.G.latent_dim, generator=trainer.generator("z"))
        x_fake = self.G(z, y)
        d_loss = losses.d_loss_bce(self.D(x_real, y), self.D(x_fake.detach(), y))
        trainer.optimize(d_loss, self.opt_d)
        g_loss = losses.g_loss_nonsaturating(self.D(x_fake, y))
        trainer.optimize(g_loss, self.opt_g)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def conditional_data(n: int = 48) -> TensorDataset:
    """Class k sits at (k, -k): the first coordinate of each point is its label."""
    y = torch.arange(n) % N_CLASSES
    x = torch.stack([y.float(), -y.float()], dim=1) + 0.01 * torch.randn(n, 2)
    return TensorDataset(x, y)


def conditional_trainer(init_seed: int = 0, seed: int = 0) -> Trainer:
    torch.manual_seed(init_seed)
    G, D = ConditionalG(), ConditionalD()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    return Trainer(ConditionalGANStep(G, D, opt_g, opt_d), device="cpu", seed=seed)


def state_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    algo = trainer.algorithm
    out = {
        f"{name}.{k}": v for name in ("G", "D") for k, v in getattr(algo, name).state_dict().items()
    }
    for name in ("opt_g", "opt_d"):
        for i, s in getattr(algo, name).state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": v for k, v in s.items()})
    return out


def test_a_conditional_generator_trains_with_the_labels_of_a_tensor_dataset():
    trainer = conditional_trainer()
    history = trainer.fit(conditional_data(), steps=30, batch_size=8, log_every=10, progress=False)
    assert list(history["step"]) == [10, 20, 30]
    assert all(math.isfinite(v) for v in history["g_loss"])
    seen = trainer.algorithm.labels_seen
    assert len(seen) == 30
    for x, y in seen:  # every batch carries its own labels, row for row
        assert x.shape == (8, 2) and y.dtype == torch.int64
        assert torch.allclose(x[:, 0], y.float(), atol=0.1)


def test_a_new_family_resumes_bit_for_bit(tmp_path):
    data, path = conditional_data(), tmp_path / "cgan.pt"
    reference = conditional_trainer()
    reference.fit(data, steps=20, batch_size=8, progress=False)
    first = conditional_trainer()
    first.fit(data, steps=12, batch_size=8, checkpoint_path=path, progress=False)
    second = conditional_trainer(init_seed=1)  # other weights: all must come from the file
    second.fit(data, steps=20, batch_size=8, checkpoint_path=path, progress=False)
    a, b = state_of(reference), state_of(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert second.history.rows == reference.history.rows
    assert load_checkpoint(path)["format"] == "course_lib.ConditionalGANStep"


def test_wgan_as_in_the_paper_with_rmsprop_through_the_trainer():
    torch.manual_seed(0)
    G, D = MLPGenerator(latent_dim=2, hidden=16, depth=2), MLPDiscriminator(hidden=16, depth=2)
    step = GANStep(
        G,
        D,
        torch.optim.RMSprop(G.parameters(), lr=5e-5),
        torch.optim.RMSprop(D.parameters(), lr=5e-5),
        loss=losses.wgan(),
        n_critic=5,
    )
    trainer = Trainer(step, device="cpu")
    sample = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    trainer.fit(sample, steps=3, batch_size=16, progress=False)
    assert trainer.batches_drawn == 15  # n_critic real batches per step
    settings = trainer.hparams()
    assert settings["opt_d"] == "RMSprop" and settings["opt_d.lr"] == 5e-5
    assert settings["loss"] == "wgan" and settings["n_critic"] == 5
    assert all(p.abs().max() <= 0.01 for p in D.parameters())  # weight clipping ran


class Counter:
    """A callback with state: counts its calls, saved in checkpoints."""

    def __init__(self, every: int):
        self.every, self.calls = every, 0

    def __call__(self, trainer):
        self.calls += 1
        return {"calls": float(self.calls)}

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = state["calls"]


def test_a_callback_with_state_gets_it_back_on_resume(tmp_path):
    path = tmp_path / "run.pt"
    conditional_trainer().fit(
        conditional_data(), steps=6, batch_size=8, callbacks=[Counter(2)], checkpoint_path=path,
        progress=False,
    )  # fmt: skip
    counter = Counter(2)
    resumed = conditional_trainer()
    resumed.fit(
        conditional_data(), steps=10, batch_size=8, callbacks=[counter], checkpoint_path=path,
        progress=False,
    )  # fmt: skip
    assert counter.calls == 5  # 3 before the checkpoint, 2 after
    assert list(resumed.history["calls"][~torch.tensor(resumed.history["calls"]).isnan()]) == [
        1.0, 2.0, 3.0, 4.0, 5.0,
    ]  # fmt: skip


@dataclasses.dataclass
class ScheduleStep:
    """Returns a tensor (averaged between rows) and a plain number (the row's last value)."""

    w: nn.Parameter = dataclasses.field(default_factory=lambda: nn.Parameter(torch.zeros(1)))

    def step(self, trainer: Trainer, batch: torch.Tensor) -> dict:
        return {"value": torch.tensor(float(trainer.step)), "weight": 0.1 * trainer.step}


def test_rows_hold_means_of_tensors_and_the_last_value_of_numbers():
    trainer = Trainer(ScheduleStep(), device="cpu")
    history = trainer.fit(torch.zeros(8, 1), steps=8, batch_size=2, log_every=4, progress=False)
    assert list(history["value"]) == [1.5, 5.5]  # means of steps 0-3 and 4-7
    assert list(history["weight"]) == pytest.approx([0.3, 0.7])  # steps 3 and 7


class Plain:
    """An algorithm that is no dataclass: its instance attributes are its parts. From its
    second step on it returns other keys when ``change_keys`` is set."""

    def __init__(self, change_keys: bool = False):
        self.net = nn.Linear(2, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.change_keys, self.calls = change_keys, 0

    def step(self, trainer, batch):
        loss = self.net(batch).pow(2).mean()
        trainer.optimize(loss, self.opt)
        self.calls += 1
        return {"other" if self.change_keys and self.calls > 1 else "loss": loss.detach()}


def test_an_algorithm_that_is_no_dataclass_trains_and_is_checkpointed(tmp_path):
    trainer = Trainer(Plain(), device="cpu")
    trainer.fit(torch.ones(4, 2), steps=2, batch_size=2, progress=False)
    state = trainer.state_dict()
    assert set(state["state"]) == {"net", "opt"} and state["hparams"]["opt.lr"] == 0.1


def test_bad_algorithms_and_steps_give_clear_errors():
    with pytest.raises(ValueError, match="algorithm must have a method step"):
        Trainer(object())
    with pytest.raises(ValueError, match=r"step returned keys \['other'\], earlier steps"):
        Trainer(Plain(change_keys=True), device="cpu").fit(
            torch.ones(4, 2), steps=2, batch_size=2, progress=False
        )
    with pytest.raises(RuntimeError, match="next_batch\\(\\) works inside fit"):
        Trainer(Plain(), device="cpu").next_batch()
    with pytest.raises(ValueError, match="data must be a tensor"):
        Trainer(Plain(), device="cpu").fit([1, 2, 3], steps=1, progress=False)


def test_a_checkpoint_of_version_1_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "run.pt"
    trainer = conditional_trainer()
    trainer.fit(conditional_data(), steps=2, batch_size=8, checkpoint_path=path, progress=False)
    state = load_checkpoint(path)
    state["version"] = 1
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="version 1 checkpoint.*reads version 2"):
        conditional_trainer().resume(path)


def test_a_load_that_fails_part_way_leaves_the_trainer_as_it_was(tmp_path):
    path = tmp_path / "run.pt"
    conditional_trainer().fit(
        conditional_data(), steps=3, batch_size=8, checkpoint_path=path, progress=False
    )
    state = load_checkpoint(path)
    state["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)  # fails after every weight loaded
    other = conditional_trainer(init_seed=1)
    other.fit(conditional_data(), steps=2, batch_size=8, progress=False)
    before, streams = state_of(other), other.generator("z").get_state()
    with pytest.raises(CheckpointError, match="could not be loaded"):
        other.load_state_dict(state)
    after = state_of(other)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert other.step == 2 and len(other.history) == 2
    assert torch.equal(other.generator("z").get_state(), streams)


def test_an_optimizer_state_of_other_parameters_is_refused_before_loading(tmp_path):
    path = tmp_path / "run.pt"
    trainer = conditional_trainer()
    trainer.fit(conditional_data(), steps=2, batch_size=8, checkpoint_path=path, progress=False)
    state = load_checkpoint(path)
    moments = state["state"]["opt_d"]["state"][0]
    moments["exp_avg"] = moments["exp_avg"].reshape(-1)[:1].clone()  # a moment of another shape
    other = conditional_trainer()
    with pytest.raises(CheckpointError, match=r"optimizer opt_d over other parameters .*exp_avg"):
        other.load_state_dict(state)
    state["state"]["opt_d"]["param_groups"] = []
    with pytest.raises(CheckpointError, match=r"parameter groups of sizes \[\], here \[\d+\]"):
        other.load_state_dict(state)
    assert other.step == 0


def test_a_flipped_bit_in_a_checkpoint_is_reported_not_loaded(tmp_path):
    path = tmp_path / "run.pt"
    conditional_trainer().fit(
        conditional_data(), steps=2, batch_size=8, checkpoint_path=path, progress=False
    )
    with zipfile.ZipFile(path) as archive:  # torch.save writes a zip; find a tensor's bytes
        entry = max(archive.infolist(), key=lambda info: info.file_size)
        with archive.open(entry) as stream:
            payload = stream.read()
    raw = bytearray(path.read_bytes())
    at = raw.index(payload) + len(payload) // 2
    raw[at] ^= 0x04  # one bit of one weight; torch.load itself does not notice
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="is damaged: its content does not match"):
        conditional_trainer().resume(path)


def test_a_bad_checkpoint_path_fails_before_the_first_step(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    trainer = conditional_trainer()
    with pytest.raises(ValueError, match=r"checkpoint_path .* is a file, not a folder"):
        trainer.fit(conditional_data(), steps=5, batch_size=8, checkpoint_path=blocker / "x.pt")
    with pytest.raises(ValueError, match="checkpoint_path .* is a folder; pass a file path"):
        trainer.fit(conditional_data(), steps=5, batch_size=8, checkpoint_path=tmp_path)
    assert trainer.step == 0 and trainer.algorithm.labels_seen == []
