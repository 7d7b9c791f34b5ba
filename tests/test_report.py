import math

import numpy as np
import pytest

from course_lib import report


def test_mean_std_uses_the_population_std_and_counts_diverged_runs():
    assert report.mean_std([1.0, 3.0]) == "2.00 ± 1.00"
    assert report.mean_std([5.0], ".1f") == "5.0 ± 0.0"
    assert report.mean_std([1.0, math.nan, 3.0], ".0f") == "2 ± 1 (1 of 3 diverged)"
    assert report.mean_std([-1.0, -3.0], "+.2g") == "-2 ± 1"  # the sign is the mean's only
    assert report.mean_std([1.0, 3.0], "+.2g") == "+2 ± 1"
    assert report.mean_std([math.nan, math.nan]) == "diverged"
    with pytest.raises(ValueError, match="at least one value"):
        report.mean_std([])


def test_false_positive_rate_is_two_sided_sign_test_at_its_extreme():
    assert report.false_positive_rate(3) == 0.25
    assert report.false_positive_rate(4) == 0.125
    assert report.false_positive_rate(5) == 0.0625
    with pytest.raises(ValueError, match="n_seeds"):
        report.false_positive_rate(0)


def test_false_positive_rate_matches_simulated_null_comparisons():
    """Under no effect (paired noise symmetric around 0) the rule's rate of 'better' or 'worse'
    verdicts is the stated rate."""
    rng = np.random.default_rng(0)
    n_seeds, trials = 4, 4000
    judged = 0
    for _ in range(trials):
        reference = rng.normal(size=n_seeds)
        values = reference + rng.normal(size=n_seeds)
        judged += not report.paired_verdict(values, reference).startswith("no clear")
    assert judged / trials == pytest.approx(report.false_positive_rate(n_seeds), abs=0.02)


def test_paired_verdict_needs_every_seed_to_agree():
    ref = [10.0, 12.0, 11.0, 9.0]
    assert report.paired_verdict([9.0, 11.0, 10.0, 8.0], ref) == "better (4 of 4 seeds)"
    assert report.paired_verdict([11.0, 13.0, 12.0, 10.0], ref) == "worse (4 of 4 seeds)"
    # three seeds improve a lot, one gets worse: not a finding
    assert report.paired_verdict([1.0, 2.0, 1.0, 9.5], ref) == (
        "no clear difference (3 of 4 seeds better)"
    )
    # higher is better: the same numbers flip
    assert report.paired_verdict([11.0, 13.0, 12.0, 10.0], ref, lower_is_better=False) == (
        "better (4 of 4 seeds)"
    )


def test_paired_verdict_is_paired_not_a_comparison_of_means():
    """Large seed-to-seed spread, but every seed improves by 1: paired, that is clear."""
    ref = [100.0, 200.0, 300.0]
    assert report.paired_verdict([99.0, 199.0, 299.0], ref) == "better (3 of 3 seeds)"


def test_paired_verdict_min_effect_and_special_cases():
    ref = [10.0, 11.0, 12.0]
    assert report.paired_verdict([9.5, 10.5, 11.5], ref, min_effect=1.0).startswith("no clear")
    assert report.paired_verdict([8.5, 9.5, 10.5], ref, min_effect=1.0) == "better (3 of 3 seeds)"
    assert report.paired_verdict(ref, ref) == "identical"
    assert report.paired_verdict([math.nan, 1.0, 1.0], ref) == "diverged"
    assert report.paired_verdict([1.0], [2.0]) == "n/a (1 seed)"
    with pytest.raises(ValueError, match="one number per seed"):
        report.paired_verdict([1.0, 2.0], [1.0, 2.0, 3.0])


def test_rule_note_states_the_rate_and_the_expected_false_verdicts():
    note = report.rule_note(4, comparisons=8, min_effect=1, unit="nats")
    assert "all 4 paired differences agree" in note and "more than 1 nats" in note
    assert "0.125 per comparison" in note and "about 1.0 of these 8" in note


def test_table_aligns_text_renders_html_and_refuses_a_short_row():
    table = report.Table(["setting", "FID"], title="t", note="n")
    table.add("baseline", "950 ± 40")
    table.add("a <b>", "9 ± 1")
    lines = str(table).splitlines()
    assert lines == ["t", "setting        FID", "baseline  950 ± 40", "a <b>        9 ± 1", "n"]
    assert "<td>a &lt;b&gt;</td>" in table._repr_html_()
    assert table.column("FID") == ["950 ± 40", "9 ± 1"]
    with pytest.raises(ValueError, match="2 cells"):
        table.add("only one")


def test_run_grid_runs_every_pair_once_in_order():
    calls = []
    results = report.run_grid(
        lambda s, seed: calls.append((s, seed)) or {"x": seed}, ["a", "b"], [0, 1], progress=False
    )
    assert calls == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert list(results) == calls and results["b", 1] == {"x": 1}
    with pytest.raises(ValueError, match="once"):
        report.run_grid(lambda s, seed: None, ["a", "a"], [0], progress=False)


def test_summary_table_compares_paired_on_the_first_column():
    runs = {
        ("base", 0): 10.0,
        ("base", 1): 20.0,
        ("base", 2): 30.0,
        ("new", 0): 8.0,
        ("new", 1): 19.0,
        ("new", 2): 27.0,
    }
    results = {k: {"fid": v, "classes": 9.0} for k, v in runs.items()}
    table = report.summary_table(results, {"fid": ".1f", "classes": ".0f"}, reference="base")
    assert table.columns == ["setting", "fid", "classes", "Δ fid (paired)", "verdict"]
    assert table.column("fid") == ["20.0 ± 8.2", "18.0 ± 7.8"]
    assert table.column("Δ fid (paired)") == ["", "-2.0 ± 0.8"]
    assert table.column("verdict") == ["(reference)", "better (3 of 3 seeds)"]
    last_line = str(table).splitlines()[-2]  # words are left-aligned, numbers right-aligned
    assert last_line.endswith("-2.0 ± 0.8  better (3 of 3 seeds)")
    assert str(table).splitlines()[-3].endswith("  (reference)")
    assert "probability 0.25" in table.note
    with pytest.raises(ValueError, match="same seeds"):
        report.summary_table({("a", 0): {"x": 1.0}, ("b", 1): {"x": 1.0}}, {"x": ".1f"})
    with pytest.raises(ValueError, match="reference 'zzz'"):
        report.summary_table(results, {"fid": ".1f"}, reference="zzz")


def test_stopwatch_leaves_the_excluded_functions_out(monkeypatch):
    clock = iter([0.0, 1.0, 4.0, 10.0])  # enter, exclude start, exclude end, exit
    monkeypatch.setattr(report.time, "perf_counter", lambda: next(clock))

    def evaluate(x):
        """docstring kept"""
        return x + 1

    watch = report.Stopwatch()
    wrapped = watch.exclude(evaluate)
    with watch:
        assert wrapped(1) == 2
    assert watch.seconds == 7.0 and watch.excluded_seconds == 3.0
    assert wrapped.__name__ == "evaluate"
