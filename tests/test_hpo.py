import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from course_lib import check, data, search  # noqa: E402
from course_lib.gan import GANTrainer, models  # noqa: E402

SPACE = {"x": ("float", -3.0, 3.0), "lr": ("log", 1e-5, 1e-1)}


def quadratic(trial):
    """A cheap objective: (x - 1)^2, reported at two steps; minimum 0 at x = 1."""
    params = search.suggest(trial, SPACE)
    value = (params["x"] - 1.0) ** 2
    for step in (1, 2):
        trial.report(value + 1.0 / step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def params_of(study):
    return [t.params for t in study.get_trials(deepcopy=False)]


# ------------------------------------------------------------------------- small pieces


def test_log_uniform_known_values_and_equal_mass_per_decade():
    assert search.log_uniform(0.0, 1e-5, 1e-1) == pytest.approx(1e-5)
    assert search.log_uniform(1.0, 1e-5, 1e-1) == pytest.approx(1e-1)
    assert search.log_uniform(0.5, 1e-4, 1e-2) == pytest.approx(1e-3)
    u = torch.rand(40_000, generator=torch.Generator().manual_seed(0))
    x = search.log_uniform(u, 1e-5, 1e-1)
    per_decade = torch.histc(x.log10(), bins=4, min=-5, max=-1) / len(x)
    assert torch.allclose(per_decade, torch.full((4,), 0.25), atol=0.01)


@pytest.mark.parametrize(
    "u, low, high, match",
    [(0.5, 0.0, 1.0, "0 < low < high"), (0.5, 1e-2, 1e-3, "0 < low < high"), (1.5, 1e-3, 1.0, "u")],
)
def test_log_uniform_rejects_bad_input(u, low, high, match):
    with pytest.raises(ValueError, match=match):
        search.log_uniform(u, low, high)


def test_median_rule_by_hand():
    others = [0.4, 0.6, 0.7]  # median 0.6
    assert not search.median_rule([0.5], others, "minimize")
    assert search.median_rule([0.9, 0.8], others, "minimize")
    assert not search.median_rule([0.5, 0.9], others, "minimize")  # the best so far counts
    assert search.median_rule([0.5], others, "maximize")
    assert not search.median_rule([0.55], [0.4, 0.5, 0.6, 0.7], "minimize")  # a tie is kept
    assert not search.median_rule([9.0], [], "minimize")  # nobody to compare with
    assert search.median_rule([math.nan], others, "minimize")
    with pytest.raises(ValueError, match="direction='min'"):
        search.median_rule([0.5], others, "min")


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_median_rule_agrees_with_optunas_median_pruner(direction):
    rng = np.random.default_rng(0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for case in range(30):
        n_steps, n_others = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        study = optuna.create_study(direction=direction, pruner=optuna.pruners.MedianPruner(0, 0))
        others = rng.normal(size=(n_others, n_steps)).round(1)  # rounding makes ties
        for row in others:
            study.add_trial(
                optuna.trial.create_trial(
                    value=float(row[-1]),
                    intermediate_values={s: float(v) for s, v in enumerate(row)},
                )
            )
        own = rng.normal(size=n_steps).round(1)
        trial = study.ask()
        for step, value in enumerate(own):
            trial.report(float(value), step)
        expected = trial.should_prune()
        got = search.median_rule(own, others[:, n_steps - 1], direction)
        assert got == expected, (case, own, others)


def test_best_so_far_keeps_the_previous_best_over_nan():
    values = [math.nan, 3.0, math.nan, 1.0, 2.0]
    np.testing.assert_array_equal(
        search.best_so_far(values, "minimize"), [math.nan, 3.0, 3.0, 1.0, 1.0]
    )
    np.testing.assert_array_equal(
        search.best_so_far(values, "maximize"), [math.nan, 3.0, 3.0, 3.0, 3.0]
    )


def test_grid_points_are_cell_centres():
    grid = search.grid_points(
        {"lr": ("log", 1e-5, 1e-1), "b": ("float", 0.0, 1.0), "bs": ("choice", (64, 128, 256))},
        {"lr": 2, "b": 4, "bs": 2},
    )
    assert grid["lr"] == pytest.approx([1e-4, 1e-2])
    assert grid["b"] == pytest.approx([0.125, 0.375, 0.625, 0.875])
    assert grid["bs"] == [64, 256]
    assert search.grid_points({"n": ("int", 1, 5)}, 3)["n"] == [2, 3, 4]


@pytest.mark.parametrize(
    "space", [{}, {"lr": ("log", 0.0, 1.0)}, {"x": ("uniform", 0, 1)}, {"c": ("choice", ())}]
)
def test_bad_search_space_is_a_clear_error(space):
    with pytest.raises(ValueError, match="space"):
        search.grid_points(space, 2)


def test_coverage_score_real_collapsed_and_off_mode():
    ring = data.ring(std=search.RING_STD)
    real = ring.sample(2500, torch.Generator().manual_seed(0))
    assert 0.95 < search.coverage_score(real, ring) <= 1.0
    one_mode = ring.centers[0] + search.RING_STD * torch.randn(2500, 2)
    assert search.coverage_score(one_mode, ring) <= 1 / 8
    assert search.coverage_score(torch.zeros(2500, 2), ring) == 0.0


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="sampler='bayes' is not one of"):
        search.create_study("s", tmp_path, sampler="bayes")
    with pytest.raises(ValueError, match="pruner='hyperband' is not one of"):
        search.create_study("s", tmp_path, pruner="hyperband")
    with pytest.raises(ValueError, match="needs grid="):
        search.create_study("s", tmp_path, sampler="grid")
    with pytest.raises(ValueError, match="direction='up'"):
        search.create_study("s", tmp_path, direction="up")
    with pytest.raises(ValueError, match="plain file name"):
        search.create_study("../s", tmp_path)
    study = search.create_study("s", tmp_path)
    for n_trials in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_trials must be an int >= 1"):
            search.run_trials(study, quadratic, n_trials)
    with pytest.raises(ValueError, match="created to minimize, not to maximize"):
        search.create_study("s", tmp_path, direction="maximize")


# Storage errors. CI runs as root, where chmod does not stop a write, so "cannot be created" and
# "not writable" are simulated (Path.mkdir raising, os.access saying no); the real chmod test
# runs only as a normal user.


@pytest.fixture
def optuna_must_not_open_storage(monkeypatch):
    """Storage problems must be reported before Optuna opens (or creates) anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("Optuna was asked to open the storage")

    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse)


def test_a_file_where_the_storage_folder_should_be_is_a_clear_error(
    tmp_path, optuna_must_not_open_storage
):
    (tmp_path / "studies").write_text("notes")
    for storage_dir in (tmp_path / "studies", tmp_path / "studies" / "gan"):
        with pytest.raises(search.hpo.StudyStorageError) as error:
            search.create_study("s", storage_dir)
        message = str(error.value)
        assert f"{tmp_path / 'studies'} is a file, not a folder" in message
        assert "\n" not in message and "move that file away" in message
    assert (tmp_path / "studies").read_text() == "notes"


def test_a_storage_folder_that_cannot_be_created_is_a_clear_error(
    tmp_path, monkeypatch, optuna_must_not_open_storage
):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    with pytest.raises(ValueError, match=r"does not exist and cannot be created \(Permission"):
        search.create_study("s", tmp_path / "new" / "studies")


def test_a_storage_folder_that_is_not_writable_is_a_clear_error(
    tmp_path, monkeypatch, optuna_must_not_open_storage
):
    monkeypatch.setattr(search.hpo.os, "access", lambda path, mode: False)
    with pytest.raises(
        search.hpo.StudyStorageError, match=f"{tmp_path} is not writable; make it writable"
    ):
        search.create_study("s", tmp_path)


def test_a_read_only_storage_folder_is_a_clear_error_for_a_normal_user(tmp_path):
    import os

    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        pytest.skip("chmod does not stop root (or Windows) writing; simulated in the test above")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(search.hpo.StudyStorageError, match="is not writable"):
            search.create_study("s", tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_a_directory_in_place_of_the_study_file_is_a_clear_error(
    tmp_path, optuna_must_not_open_storage
):
    (tmp_path / "s.db").mkdir()
    with pytest.raises(search.hpo.StudyStorageError, match=r"s\.db is not a file"):
        search.create_study("s", tmp_path)


def test_a_study_file_that_is_not_a_database_is_a_clear_error(
    tmp_path, optuna_must_not_open_storage
):
    (tmp_path / "s.db").write_text("these are my notes, not a study\n")
    with pytest.raises(search.hpo.StudyStorageError) as error:
        search.create_study("s", tmp_path)
    message = str(error.value)
    assert message.startswith(f"study file {tmp_path / 's.db'} is corrupt (not a sqlite database)")
    assert message.endswith("delete it to start the study again, or restore a copy.")
    assert (tmp_path / "s.db").exists()  # nothing is deleted for the learner


def test_a_damaged_study_file_is_a_clear_error(tmp_path):
    """A sqlite header on damaged pages passes the pre-check; sqlite's error is translated."""
    study = search.create_study("s", tmp_path, sampler="random")
    search.run_trials(study, quadratic, 2)
    del study
    raw = (tmp_path / "s.db").read_bytes()
    (tmp_path / "s.db").write_bytes(raw[:100])  # the header survives, the pages do not
    with pytest.raises(search.hpo.StudyStorageError, match=r"s\.db is corrupt \(database disk"):
        search.create_study("s", tmp_path)


def test_a_study_resumes_from_its_sqlite_file(tmp_path):
    study = search.create_study("resume", tmp_path, sampler="random", pruner="none", seed=3)
    assert search.run_trials(study, quadratic, 3) == 3
    first = params_of(study)
    del study  # "restart": nothing survives but the file
    assert (tmp_path / "resume.db").exists()

    again = search.create_study("resume", tmp_path, sampler="random", pruner="none", seed=3)
    assert search.count_finished(again) == 3
    assert search.run_trials(again, quadratic, 3) == 3  # already done: nothing runs
    assert len(again.trials) == 3
    assert search.run_trials(again, quadratic, 5) == 5  # only the two missing trials run
    assert [t.number for t in again.trials] == [0, 1, 2, 3, 4]
    assert params_of(again)[:3] == first
    assert all(p not in first for p in params_of(again)[3:])  # new draws, not the first ones


def test_two_worker_processes_share_one_study_then_it_resumes_here(tmp_path):
    name = "shared"  # a new study file: the workers create it between them
    command = [sys.executable, "-m", "course_lib.search", "--storage-dir", str(tmp_path)]
    command += ["--study", name, "--n-trials", "4", "--steps", "4", "--n-reports", "2"]
    workers = [
        subprocess.Popen(
            command + ["--worker", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-2000:]
    study = search.create_study(name, tmp_path, direction="maximize")
    finished = search.count_finished(study)
    assert 4 <= finished <= 5  # each worker stops at 4; one running trial may finish after
    assert {t.user_attrs["worker"] for t in study.trials} <= {0, 1}
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == len(study.trials)
    objective = lambda trial: search.ring_objective(trial, steps=4, n_reports=2)  # noqa: E731
    assert search.run_trials(study, objective, finished + 1) == finished + 1


def test_ring_search_in_spawned_processes_gives_the_same_studies_as_in_this_one(tmp_path):
    """09 runs its searches two at a time in fresh processes: each must equal the same search
    run here (seeded sampler, pruner and training), and a second call must train nothing."""
    import concurrent.futures
    import multiprocessing

    options = dict(n_trials=4, steps=8, n_reports=2, n_startup_trials=2)
    jobs = [("tpe", 0), ("random", 1)]
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        futures = [
            pool.submit(
                search.ring_search,
                f"{s}{seed}",
                str(tmp_path / "pool"),
                sampler=s,
                seed=seed,
                pruner=search.make_pruner("median", n_startup_trials=2),
                **options,
            )
            for s, seed in jobs
        ]
        assert [f.result(timeout=300) for f in futures] == ["tpe0", "random1"]
    for s, seed in jobs:
        search.ring_search(
            f"{s}{seed}",
            str(tmp_path / "here"),
            sampler=s,
            seed=seed,
            pruner=search.make_pruner("median", n_startup_trials=2),
            **options,
        )
        pooled, here = (
            search.create_study(f"{s}{seed}", tmp_path / d, direction="maximize")
            for d in ("pool", "here")
        )
        assert len(pooled.trials) == len(here.trials) == 4
        for a, b in zip(pooled.trials, here.trials, strict=True):
            assert (a.params, a.state, a.value, a.intermediate_values) == (
                b.params,
                b.state,
                b.value,
                b.intermediate_values,
            )
        before = [t.datetime_complete for t in here.trials]
        search.ring_search(f"{s}{seed}", str(tmp_path / "here"), sampler=s, seed=seed, **options)
        again = search.create_study(f"{s}{seed}", tmp_path / "here", direction="maximize")
        assert [t.datetime_complete for t in again.trials] == before  # nothing trained again


def test_workers_started_at_the_same_moment_on_a_new_study_file_all_join_it(tmp_path):
    """Optuna's join-or-create races when processes open a new sqlite file together (two
    create the tables: "table studies already exists"); course_lib serializes the creation."""
    n = 4
    child = textwrap.dedent(
        f"""
        import pathlib, sys, time
        from course_lib import search
        folder = pathlib.Path({str(tmp_path)!r})
        (folder / f"ready{{sys.argv[1]}}").touch()
        while len(ready := list(folder.glob("ready*"))) < {n}:  # wait until all have imported
            time.sleep(0.01)
        start = max(p.stat().st_mtime for p in ready) + 0.5  # then start at one moment
        while time.time() < start:
            pass
        study = search.create_study("together", folder / "studies", worker=int(sys.argv[1]))
        print(study.study_name)
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", child, str(i)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]  # fmt: skip
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0 and out.strip() == "together", err[-2000:]
    summaries = optuna.get_all_study_summaries(
        search.hpo.storage_url(tmp_path / "studies" / "together.db")
    )
    assert [s.study_name for s in summaries] == ["together"]


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe"])
def test_samplers_are_reproducible_with_a_seed(sampler):
    grid = search.grid_points(SPACE, 3)
    runs = []
    for seed in (0, 0, 1):
        study = optuna.create_study(  # in memory: the sampler alone is under test here
            sampler=search.make_sampler(sampler, seed=seed, grid=grid, n_startup_trials=3)
        )
        search.run_trials(study, quadratic, 8)
        runs.append(params_of(study))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    if sampler == "grid":
        assert all(p["x"] in grid["x"] and p["lr"] in grid["lr"] for p in runs[0])


def test_a_fresh_study_in_a_file_repeats_with_the_same_seed(tmp_path):
    runs = []
    for folder in ("a", "b"):
        study = search.create_study(
            "s", tmp_path / folder, sampler="tpe", seed=5, n_startup_trials=2
        )
        search.run_trials(study, quadratic, 4)
        runs.append(params_of(study))
    assert runs[0] == runs[1]


def test_the_median_pruner_prunes_a_clearly_worse_trial(tmp_path):
    study = search.create_study(
        "prune", tmp_path, sampler="random", pruner=search.make_pruner("median", 3, 0)
    )
    for x in (1.0, 1.2, 0.8, 1.1, 3.0):  # the last one is far worse at every step
        study.enqueue_trial({"x": x, "lr": 1e-3})
    search.run_trials(study, quadratic, 5)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 4 + [TrialState.PRUNED]
    assert list(study.trials[-1].intermediate_values) == [1]  # stopped at the first report
    summary = search.summarize(study)
    assert (summary.n_complete, summary.n_pruned, summary.n_failed) == (4, 1, 0)
    assert summary.best_value == pytest.approx(0.0) and summary.best_params["x"] == 1.0
    assert np.isnan(search.trial_values(study)[-1]) and summary.seconds > 0


def test_train_with_pruning_reports_then_prunes_a_worse_gan(tmp_path):
    study = search.create_study("gan", tmp_path, direction="maximize", sampler="random")
    study.pruner = search.make_pruner("median", n_startup_trials=1)
    ring = data.ring()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-6, 1e-2, log=True)
        torch.manual_seed(0)
        trainer = GANTrainer(
            models.MLPGenerator(hidden=8), models.MLPDiscriminator(hidden=8), lr_g=lr, lr_d=lr,
            device="cpu",
        )  # fmt: skip
        score = lambda t: math.log10(t.lr_g)  # noqa: E731 (a stand-in: higher lr scores higher)
        return search.train_with_pruning(
            trial, trainer, ring.sample, steps=4, batch_size=8, n_reports=2, score=score
        )

    study.enqueue_trial({"lr": 1e-3})
    study.enqueue_trial({"lr": 1e-6})
    search.run_trials(study, objective, 2)
    good, bad = study.trials
    assert good.state == TrialState.COMPLETE and good.intermediate_values == {1: -3.0, 2: -3.0}
    assert bad.state == TrialState.PRUNED and list(bad.intermediate_values) == [1]


def test_a_trial_is_never_pruned_at_its_last_report(tmp_path):
    study = search.create_study("last", tmp_path, sampler="random")
    study.pruner = search.make_pruner("median", n_startup_trials=1)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-6, 1e-2, log=True)
        trainer = GANTrainer(
            models.MLPGenerator(hidden=8), models.MLPDiscriminator(hidden=8), lr_g=lr, lr_d=lr,
            device="cpu",
        )  # fmt: skip
        return search.train_with_pruning(
            trial, trainer, data.ring().sample, steps=2, batch_size=8, n_reports=1,
            score=lambda t: math.log10(t.lr_g),
        )  # fmt: skip

    study.enqueue_trial({"lr": 1e-3})
    study.enqueue_trial({"lr": 1e-6})  # far worse, but its training is already done
    search.run_trials(study, objective, 2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.trials[1].value == pytest.approx(-6.0)


def test_a_diverging_gan_is_pruned_with_the_reason(tmp_path):
    study = search.create_study("nan", tmp_path, sampler="random", pruner="none")

    def objective(trial):
        trial.suggest_float("lr", 1e-3, 1e-2)
        trainer = GANTrainer(
            models.MLPGenerator(hidden=8), models.MLPDiscriminator(hidden=8), device="cpu"
        )
        return search.train_with_pruning(
            trial, trainer, lambda n, g: torch.full((n, 2), math.nan), steps=2, batch_size=4,
            n_reports=1, score=lambda t: 0.0,
        )  # fmt: skip

    search.run_trials(study, objective, 1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED and "d_loss" in trial.user_attrs["diverged"]
    assert math.isnan(trial.intermediate_values[1])


def test_param_importances_find_the_parameter_that_matters():
    studies = []
    for seed in (0, 1):
        study = optuna.create_study(sampler=search.make_sampler("random", seed))
        search.run_trials(study, quadratic, 15)  # the value depends on x only, not on lr
        studies.append(study)
    importances = search.param_importances(studies)
    assert list(importances) == ["x", "lr"] and importances["x"] > 0.8
    assert sum(importances.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="importances need >= 2"):
        search.param_importances(optuna.create_study())


def test_plots_draw_on_the_given_axes():
    study = optuna.create_study(
        sampler=search.make_sampler("random"), pruner=search.make_pruner("median", 2)
    )
    search.run_trials(study, quadratic, 8)
    fig, axes = plt.subplots(1, 3)
    assert search.plot_best_so_far({"random": [study, study]}, ax=axes[0]) is axes[0]
    assert len(axes[0].get_lines()) == 1 and axes[0].get_xlabel() == "trial"
    assert search.plot_intermediate(study, ax=axes[1]) is axes[1]
    assert len(axes[1].get_lines()) == 8
    search.plot_importances({"random": search.param_importances(study)}, ax=axes[2])
    assert len(axes[2].patches) == 2
    plt.close(fig)


# ---------------------------------------------------------------------------- exercises


def test_log_uniform_check_rejects_a_linear_draw():
    def linear(u, low, high):
        return low + u * (high - low)

    assert not check.verify("hpo.log_uniform", linear).passed


@pytest.mark.parametrize(
    "wrong",
    [
        lambda values, others, direction: (
            (values[-1] > np.median(others))  # last, not best
            if len(others) and direction == "minimize"
            else search.median_rule(values, others, direction)
        ),
        lambda values, others, direction: (
            (min(values) > np.mean(others))  # mean, not median
            if len(others) and direction == "minimize"
            else search.median_rule(values, others, direction)
        ),
        lambda values, others, direction: bool(len(others) and min(values) >= np.median(others)),
    ],
    ids=["last value", "mean", "ties pruned and no direction"],
)
def test_median_rule_check_rejects_plausible_mistakes(wrong):
    assert not check.verify("hpo.median_rule", wrong).passed
