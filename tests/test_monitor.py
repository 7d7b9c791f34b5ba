import copy
import itertools
import json
import math
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import check, monitor, train
from course_lib.gan import LOSS_KEYS, GANTrainer
from course_lib.gan.models import MLPDiscriminator, MLPGenerator
from course_lib.train import Evaluate, History


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = 2 * math.pi * torch.randint(0, 8, (n,), generator=generator) / 8
    return 2 * torch.stack([angle.cos(), angle.sin()], dim=1) + 0.02 * torch.randn(
        n, 2, generator=generator
    )


def mlp_trainer(init_seed: int = 0) -> GANTrainer:
    torch.manual_seed(init_seed)
    return GANTrainer(
        MLPGenerator(2, hidden=16, depth=2), MLPDiscriminator(hidden=16, depth=2), device="cpu"
    )


class TinyConvG(torch.nn.Module):
    """A G with BatchNorm buffers, which a careless probe would change: (N, 4) -> (N, 1, 4, 4)."""

    latent_dim = 4

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.Tanh()
        )

    def forward(self, z):
        return self.net(z).view(-1, 1, 4, 4)


class TinyConvD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(16, 8),
            torch.nn.BatchNorm1d(8),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(8, 1),
        )

    def forward(self, x):
        return self.net(x).flatten()


def bn_trainer() -> GANTrainer:
    torch.manual_seed(0)
    return GANTrainer(TinyConvG(), TinyConvD(), device="cpu")


def tiny_images(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1


def state(trainer: GANTrainer) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    return out


def assert_same_state(a: GANTrainer, b: GANTrainer) -> None:
    sa, sb = state(a), state(b)
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


class Boom:
    """A callback that interrupts the run, as a crash would (in-process)."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, trainer):
        raise KeyboardInterrupt


# ------------------------------------------------------------------------------ diversity


def test_mean_pairwise_distance_known_values():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])  # pairs: 5, 0, 5
    assert monitor.mean_pairwise_distance(x) == pytest.approx(10 / 3)
    assert monitor.mean_pairwise_distance(torch.ones(5, 1, 3, 3)) == 0.0  # total collapse


def test_mean_pairwise_distance_matches_a_slow_loop():
    x = torch.randn(7, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    pairs = [(x[i] - x[j]).flatten().norm().item() for i, j in itertools.combinations(range(7), 2)]
    assert monitor.mean_pairwise_distance(x) == pytest.approx(sum(pairs) / len(pairs), rel=1e-6)


def test_mean_pairwise_distance_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        monitor.mean_pairwise_distance(torch.zeros(1, 4))


def test_diversity_callback_in_pixels_and_features():
    trainer = bn_trainer()
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    expected = monitor.mean_pairwise_distance(trainer.generate(z=z))
    assert monitor.Diversity(z, every=1)(trainer) == {"diversity": pytest.approx(expected)}
    first_pixel = monitor.Diversity(z, every=1, extractor=lambda x: x.flatten(1)[:, :1], name="d1")
    x = trainer.generate(z=z).flatten(1)[:, :1]
    assert first_pixel(trainer)["d1"] == pytest.approx(monitor.mean_pairwise_distance(x))


# ---------------------------------------------------------------------------- D's outputs


def test_discriminator_probs_are_mean_sigmoids_and_leave_the_run_unchanged():
    x = tiny_images()
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(3))
    probs = monitor.DiscriminatorProbs(x[:16], z, every=2)
    watched, plain = bn_trainer(), bn_trainer()
    watched.fit(x, steps=6, batch_size=16, callbacks=[probs], progress=False)
    plain.fit(x, steps=6, batch_size=16, progress=False)
    assert_same_state(watched, plain)  # BatchNorm statistics and RNG restored: same run
    assert watched.G.training and watched.D.training

    G, D = watched.G, watched.D
    expected_state = state(watched)
    out = probs(watched)
    with torch.no_grad():  # by hand, on copies: train mode, batch statistics
        G2, D2 = copy.deepcopy(G).train(), copy.deepcopy(D).train()
        p_real = torch.sigmoid(D2(x[:16])).mean().item()
        p_fake = torch.sigmoid(D2(G2(z))).mean().item()
    assert out == {
        "D(x)": pytest.approx(p_real, rel=1e-6),
        "D(G(z))": pytest.approx(p_fake, rel=1e-6),
    }
    assert 0 < out["D(G(z))"] < 1 and 0 < out["D(x)"] < 1
    assert all(torch.equal(v, expected_state[k]) for k, v in state(watched).items())
    # the mean of sigmoids is not the sigmoid of the mean logit the history holds
    with torch.no_grad():
        logits = D2(x[:16])
    assert abs(torch.sigmoid(logits.mean()).item() - p_real) > 1e-4


def test_discriminator_probs_bad_shapes():
    with pytest.raises(ValueError, match="latent batch"):
        monitor.DiscriminatorProbs(tiny_images(), torch.zeros(4), every=1)


# ------------------------------------------------------------------------------- samples


def test_sample_saver_writes_sorted_png_grids(tmp_path):
    trainer = bn_trainer()
    saver = monitor.SampleSaver(torch.randn(8, 4), tmp_path / "samples", every=5, nrow=4)
    trainer.fit(tiny_images(), steps=10, batch_size=16, callbacks=[saver], progress=False)
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["samples_000005.png", "samples_000010.png"] == [p.name for p in saver.paths]
    with Image.open(saver.paths[0]) as image:  # 2 rows x 4 columns of 4x4 images, padding 2
        assert image.size == (4 * 4 + 5 * 2, 2 * 4 + 3 * 2)


# ---------------------------------------------------------------------------------- logs


def test_jsonl_logger_mirrors_the_history(tmp_path):
    trainer = mlp_trainer()
    logger = monitor.JSONLLogger(tmp_path / "run" / "log.jsonl", every=5)
    trainer.fit(ring, steps=20, batch_size=16, log_every=5, callbacks=[logger], progress=False)
    assert [r["step"] for r in monitor.read_log(logger.path).rows] == [5, 10, 15]  # one row late
    logger.sync(trainer.history)
    assert monitor.read_log(logger.path).rows == trainer.history.rows
    trainer.fit(ring, steps=30, batch_size=16, log_every=5, callbacks=[logger], progress=False)
    logger.sync(trainer.history)
    assert monitor.read_log(logger.path).rows == trainer.history.rows  # appended, not rewritten


def test_jsonl_logger_checks_its_path_when_made_not_at_the_first_write(tmp_path):
    with pytest.raises(ValueError, match=r"path .* is a folder; pass a file path"):
        monitor.JSONLLogger(tmp_path, every=5)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match=r"folder of path .* is a file, not a folder"):
        monitor.JSONLLogger(tmp_path / "a_file" / "log.jsonl", every=5)


def test_jsonl_logger_after_a_kill_and_resume_has_each_step_once(tmp_path):
    ckpt, log = tmp_path / "run.pt", tmp_path / "log.jsonl"
    killed = mlp_trainer()
    with pytest.raises(KeyboardInterrupt):  # checkpoint at 20; the log reaches 25
        killed.fit(
            ring,
            steps=40,
            batch_size=16,
            log_every=5,
            checkpoint_path=ckpt,
            checkpoint_every=20,
            callbacks=[monitor.JSONLLogger(log, 5), Boom(33)],
            progress=False,
        )
    assert [r["step"] for r in monitor.read_log(log).rows] == [5, 10, 15, 20, 25]

    resumed = mlp_trainer(init_seed=7)
    logger = monitor.JSONLLogger(log, every=5)
    resumed.fit(
        ring,
        steps=40,
        batch_size=16,
        log_every=5,
        checkpoint_path=ckpt,
        checkpoint_every=20,
        callbacks=[logger],
        progress=False,
    )
    logger.sync(resumed.history)
    reference = mlp_trainer()
    reference.fit(ring, steps=40, batch_size=16, log_every=5, progress=False)
    rows = monitor.read_log(log).rows
    assert [r["step"] for r in rows] == list(range(5, 45, 5))
    assert rows == reference.history.rows  # bit-exact resume on CPU: the same numbers


def test_read_log_skips_an_unfinished_last_line_and_reports_a_broken_one(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "d_loss": NaN}\n{"step": 2, "d_lo')
    history = monitor.read_log(path)
    assert len(history) == 1 and math.isnan(history["d_loss"][0])
    path.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        monitor.read_log(path)
    path.write_text('{"loss": 1}\n')
    with pytest.raises(ValueError, match="with a 'step'"):
        monitor.read_log(path)
    with pytest.raises(FileNotFoundError, match="JSONLLogger"):
        monitor.read_log(tmp_path / "missing.jsonl")


def test_jsonl_rows_are_json_with_nan_kept(tmp_path):
    logger = monitor.JSONLLogger(tmp_path / "log.jsonl", every=1)
    logger.sync(History([{"step": 1, "d_loss": math.inf}, {"step": 2, "d_loss": 0.5}]))
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[1]) == {"step": 2, "d_loss": 0.5}
    assert monitor.read_log(tmp_path / "log.jsonl")["d_loss"][0] == math.inf


def test_tensorboard_logger_without_tensorboard_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ImportError, match="pip install tensorboard"):
        monitor.TensorBoardLogger(tmp_path, every=1)


def test_tensorboard_logger_writes_scalars_and_purges_on_resume(monkeypatch, tmp_path):
    writers = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            self.log_dir, self.purge_step, self.scalars, self.images = log_dir, purge_step, [], []
            self.closed = False
            writers.append(self)

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

        def add_image(self, tag, image, step, dataformats):
            self.images.append((tag, image.shape, step, dataformats))

        def flush(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter)
    )
    trainer = bn_trainer()
    logger = monitor.TensorBoardLogger(tmp_path / "tb", every=5, z=torch.randn(4, 4))
    trainer.fit(
        tiny_images(), steps=10, batch_size=16, log_every=5, callbacks=[logger], progress=False
    )
    logger.sync(trainer.history)
    (writer,) = writers
    assert writer.purge_step is None or writer.purge_step == 1  # first sync: empty history
    assert ("d_loss", trainer.history["d_loss"][1], 10) in writer.scalars
    assert {tag for tag, _, _ in writer.scalars} == set(LOSS_KEYS)
    assert [step for _, _, step, _ in writer.images] == [5, 10]

    resumed = monitor.TensorBoardLogger(tmp_path / "tb", every=5)
    resumed.sync(History(trainer.history.rows[:1]))  # as after resuming at step 5
    assert writers[-1].purge_step == 5  # TensorBoard hides the killed run's events from step 5
    resumed.close()
    assert writers[-1].closed


# ----------------------------------------------------------------------------- detector


def curves(n: int = 200, seed: int = 0, **overrides) -> dict[str, np.ndarray]:
    """Synthetic healthy curves of a BCE GAN logged every 10 steps: losses and logits that
    wander around a balanced game (D loss ~1.2, gap ~1.5), with realistic noise."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1) * 10
    out = {
        "step": steps,
        "d_loss": 1.2 + 0.25 * rng.standard_normal(n),
        "g_loss": 1.0 + 0.3 * rng.standard_normal(n),
        "d_real": 0.8 + 0.6 * rng.standard_normal(n),
        "d_fake": -0.7 + 0.6 * rng.standard_normal(n),
        "diversity": np.where(steps % 100 == 0, 10 + 1.0 * rng.standard_normal(n), np.nan),
    }
    # D wins for the first 300 steps, as in the course's DCGAN runs: normal, no alarm
    out["d_loss"][:30] = 0.04 + 0.02 * rng.random(30)
    out["d_real"][:30], out["d_fake"][:30] = 4.0 + 0.5 * rng.random(30), -4.0 - 0.5 * rng.random(30)
    out.update(overrides)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_no_false_alarm_on_healthy_noise(seed):
    assert monitor.diagnose(curves(seed=seed)) == []


def test_nan_is_a_divergence_at_its_step():
    c = curves()
    c["g_loss"][57] = np.nan
    (finding,) = monitor.diagnose(c)
    assert (finding.kind, finding.rule, finding.step) == ("divergence", "non-finite", 580)
    assert "g_loss" in finding.message


def test_discriminator_winning_is_found_when_it_is_sustained():
    c = curves()
    t = np.arange(200)
    c["d_loss"] = np.where(t >= 100, 0.005, c["d_loss"])  # from step 1010: D separates
    c["d_real"] = np.where(t >= 100, 6.0, c["d_real"])
    c["d_fake"] = np.where(t >= 100, -6.0, c["d_fake"])
    (finding,) = monitor.diagnose(c)
    assert (finding.kind, finding.rule) == ("divergence", "discriminator wins")
    assert (finding.since, finding.step) == (1010, 1030)  # confirmed after patience=3 rows
    (finding,) = monitor.diagnose(c, patience=5)
    assert finding.step == 1050


def test_exploding_loss():
    c = curves()
    c["g_loss"] = np.where(np.arange(200) >= 150, 40.0, c["g_loss"])
    (finding,) = monitor.diagnose(c)
    assert (finding.rule, finding.since, finding.step) == ("exploding loss", 1510, 1530)


def test_diversity_drop_is_a_collapse_in_evaluations():
    c = curves()
    evals = ~np.isnan(c["diversity"])
    c["diversity"][evals] = np.r_[np.full(10, 10.0), np.full(10, 3.0)]  # evaluations every 100
    (finding,) = monitor.diagnose(c)
    assert (finding.kind, finding.rule) == ("collapse", "diversity drop")
    assert (finding.since, finding.step) == (1100, 1300)
    c["diversity"][evals] = np.r_[np.full(10, 10.0), np.full(10, 7.5)]  # 25 % less: tolerated
    assert monitor.diagnose(c) == []
    (finding,) = monitor.diagnose(c, diversity_drop=0.2)
    assert finding.since == 1100
    c["diversity"][evals] = np.r_[10.0, 2.0, np.full(18, 9.5)]  # one bad evaluation: tolerated
    assert monitor.diagnose(c) == []
    (finding,) = monitor.diagnose(c, diversity_reference=15.0)  # below 70 % of real data's
    assert (finding.since, finding.step) == (100, 300)


def test_diagnose_takes_a_history_and_sorts_findings():
    c = curves(n=60)
    c["d_loss"] = np.where(np.arange(60) >= 20, 0.001, c["d_loss"])
    c["d_real"] = np.where(np.arange(60) >= 20, 9.0, c["d_real"])
    c["d_fake"] = np.where(np.arange(60) >= 20, -9.0, c["d_fake"])
    c["d_real"][50] = np.inf
    keys = [k for k in c if k != "step"]
    rows = [
        {"step": int(s), **{k: float(c[k][i]) for k in keys if not np.isnan(c[k][i])}}
        for i, s in enumerate(c["step"])
    ]
    findings = monitor.diagnose(History(rows))
    assert [(f.rule, f.step) for f in findings] == [
        ("discriminator wins", 230),
        ("non-finite", 510),
    ]
    assert str(findings[0]).startswith("step 230: divergence (discriminator wins)")


def test_diagnose_bad_input():
    with pytest.raises(ValueError, match="lacks"):
        monitor.diagnose({"step": [1], "d_loss": [1.0]})
    with pytest.raises(ValueError, match="patience"):
        monitor.diagnose(curves(), patience=0)
    with pytest.raises(ValueError, match="diversity_drop"):
        monitor.diagnose(curves(), diversity_drop=1.5)


def test_watchdog_reports_once_and_stops_the_run(capsys):
    trainer = mlp_trainer()
    watchdog = monitor.Watchdog(every=5, stop_on=("divergence",))
    trainer.fit(ring, steps=10, batch_size=16, log_every=5, callbacks=[watchdog], progress=False)
    assert watchdog.findings == [] and trainer.stop_reason is None
    trainer.history.rows[-1]["d_loss"] = math.nan  # as if the last row had diverged
    trainer.fit(ring, steps=30, batch_size=16, log_every=5, callbacks=[watchdog], progress=False)
    out = capsys.readouterr().out
    assert out.count("watchdog: step 10: divergence (non-finite)") == 1
    assert trainer.step == 15 and "non-finite" in trainer.stop_reason
    with pytest.raises(ValueError, match="stop_on"):
        monitor.Watchdog(every=5, stop_on="divergence")


# ------------------------------------------------------------------------- early stopping


@pytest.mark.parametrize(
    "scores, patience, min_delta, mode, expected",
    [
        ([], 1, 0.0, "min", False),
        ([5.0], 1, 0.0, "min", False),
        ([5.0, 4.0, 3.0], 1, 0.0, "min", False),
        ([5.0, 5.0], 1, 0.0, "min", True),  # a tie is no improvement
        ([5.0, 6.0, 4.0, 4.5], 2, 0.0, "min", False),  # the count restarts at 4.0
        ([5.0, 6.0, 7.0], 2, 0.0, "min", True),
        ([5.0, 4.95, 4.9], 2, 0.1, "min", True),  # improvements smaller than min_delta
        ([5.0, 4.85, 4.9], 2, 0.1, "min", False),
        ([0.1, 0.2, 0.3], 1, 0.0, "max", False),
        ([0.3, 0.2, 0.1], 2, 0.0, "max", True),
        ([5.0, float("nan"), float("nan")], 2, 0.0, "min", True),
    ],
)
def test_should_stop(scores, patience, min_delta, mode, expected):
    assert monitor.should_stop(scores, patience, min_delta, mode) is expected


def test_should_stop_bad_input():
    with pytest.raises(ValueError, match="patience"):
        monitor.should_stop([1.0], 0)
    with pytest.raises(ValueError, match="min_delta"):
        monitor.should_stop([1.0], 1, min_delta=-1)
    with pytest.raises(ValueError, match="mode"):
        monitor.should_stop([1.0], 1, mode="lower")


class Scripted:
    """An evaluation that returns the next of fixed values and snapshots G's weights."""

    def __init__(self, values):
        self.values, self.snapshots = list(values), {}

    def __call__(self, trainer):
        self.snapshots[trainer.step] = {k: v.clone() for k, v in trainer.G.state_dict().items()}
        return {"fid": self.values[len(self.snapshots) - 1]}


def test_early_stopping_stops_and_keeps_the_best_generator(tmp_path, capsys):
    scripted = Scripted([9.0, 5.0, 6.0, 5.5, 4.0, 3.0])
    early = monitor.EarlyStopping(
        Evaluate(scripted, every=5), patience=2, best_path=tmp_path / "best.pt"
    )
    trainer = mlp_trainer()
    trainer.fit(ring, steps=50, batch_size=16, callbacks=[early], progress=False)
    assert trainer.step == 20 and "fid has not improved for 2 evaluations" in trainer.stop_reason
    assert "stopped at step 20" in capsys.readouterr().out
    assert list(trainer.history["fid"][~np.isnan(trainer.history["fid"])]) == [9, 5, 6, 5.5]
    assert (early.best_step, early.best_value) == (10, 5.0)
    saved = train.load_checkpoint(tmp_path / "best.pt")
    assert (saved["step"], saved["key"], saved["value"]) == (10, "fid", 5.0)
    for k, v in scripted.snapshots[10].items():
        assert torch.equal(saved["G"][k], v) and torch.equal(early.best_state["G"][k], v)
    G = MLPGenerator(2, hidden=16, depth=2)
    early.restore_best(G)
    assert torch.equal(G.state_dict()["net.0.weight"], scripted.snapshots[10]["net.0.weight"])


def test_early_stopping_continues_its_count_after_a_resume(tmp_path):
    ckpt = tmp_path / "run.pt"
    first = mlp_trainer()
    with pytest.raises(KeyboardInterrupt):  # killed after the evaluations at 5 and 10
        first.fit(
            ring,
            steps=50,
            batch_size=16,
            checkpoint_path=ckpt,
            checkpoint_every=10,
            callbacks=[monitor.EarlyStopping(Evaluate(Scripted([9.0, 5.0]), 5), 2), Boom(12)],
            progress=False,
        )
    resumed = mlp_trainer()
    early = monitor.EarlyStopping(Evaluate(Scripted([6.0, 5.5, 1.0]), 5), patience=2)
    resumed.fit(
        ring, steps=50, batch_size=16, checkpoint_path=ckpt, callbacks=[early], progress=False
    )
    assert resumed.step == 20  # 5.0 at step 10 is still the best: 6.0, 5.5 exhaust patience 2


def test_early_stopping_bad_input():
    with pytest.raises(ValueError, match="train.Evaluate"):
        monitor.EarlyStopping(lambda t: 1.0, patience=2)
    with pytest.raises(ValueError, match="mode"):
        monitor.EarlyStopping(Evaluate(lambda t: 1.0, every=1), patience=2, mode="lowest")
    early = monitor.EarlyStopping(Evaluate(lambda t: {"a": 1.0, "b": 2.0}, every=1), patience=2)
    with pytest.raises(ValueError, match="pass key="):
        early(mlp_trainer())


# ----------------------------------------------------------------------- exercises (08)


def test_pairwise_distance_check_rejects_the_diagonal():
    def with_diagonal(x):  # averages over all N^2 pairs, zeros on the diagonal included
        flat = x.reshape(x.shape[0], -1).double()
        return torch.cdist(flat, flat).mean().item()

    assert not check.verify("monitor.mean_pairwise_distance", with_diagonal).passed


def test_pairwise_distance_check_rejects_squared_distances():
    def squared(x):
        flat = x.reshape(x.shape[0], -1).double()
        return (torch.pdist(flat) ** 2).mean().item()

    assert not check.verify("monitor.mean_pairwise_distance", squared).passed


def test_should_stop_check_rejects_ties_as_improvements_and_ignoring_min_delta():
    def ties_improve(scores, patience, min_delta=0.0, mode="min"):
        sign = 1 if mode == "min" else -1
        best, wait = math.inf, 0
        for s in scores:
            if sign * s <= best - min_delta:
                best, wait = sign * s, 0
            else:
                wait += 1
        return wait >= patience

    def no_min_delta(scores, patience, min_delta=0.0, mode="min"):
        return monitor.should_stop(scores, patience, 0.0, mode)

    def last_vs_best(scores, patience, min_delta=0.0, mode="min"):  # forgets the count
        return len(scores) > patience and monitor.should_stop(scores[-2:], 1, min_delta, mode)

    for wrong in (ties_improve, no_min_delta, last_vs_best):
        assert not check.verify("monitor.should_stop", wrong).passed, wrong.__name__
