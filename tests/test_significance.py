"""Significance in the leaderboard: 95 % intervals of each row's mean, differences to a
baseline row (paired or Welch, checked against scipy on fixed numbers), folds merged like
seeds, time to a target from metrics.csv, and the report command's flags."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
from report_runs import fake_sweep
from scipy import stats

from imgcls import cli
from imgcls.base.errors import UserError
from imgcls.base.record import Summary, parse_overrides
from imgcls.evaluate.comparison import Comparison
from imgcls.evaluate.leaderboard import RunInfo, build_leaderboard, csv_text, markdown_text
from imgcls.evaluate.significance import (
    mean_interval,
    paired_difference,
    time_to_target,
    welch_difference,
)

A = [0.912, 0.935, 0.921, 0.944, 0.928]
B = [0.901, 0.915, 0.917, 0.925, 0.913]


def fake_info(
    folder: Path, settings: list[str], seed: int, accuracy: float, status: str = "completed"
) -> RunInfo:
    """A completed run as the leaderboard reads it: overrides, seed, best and test figures."""
    summary = Summary(
        status=status,
        seed=seed,
        best={"epoch": 3, "metric": "val_accuracy", "value": accuracy - 0.01},
        test={"accuracy": accuracy, "loss": 1 - accuracy},
        train_seconds=2.0,
    )
    return RunInfo(folder, status, parse_overrides([*settings, f"seed={seed}"]), summary)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_mean_interval_is_scipys_t_interval():
    expected = stats.t.interval(0.95, len(A) - 1, loc=statistics.fmean(A), scale=stats.sem(A))
    assert mean_interval(A) == pytest.approx(expected, rel=1e-12)
    assert mean_interval([0.9]) is None  # n = 1: no interval


def test_paired_difference_is_scipys_ttest_rel():
    result = paired_difference(A, B)
    expected = stats.ttest_rel(A, B)
    assert result.test == "paired" and result.n == 5
    assert result.diff == pytest.approx(statistics.fmean(a - b for a, b in zip(A, B, strict=True)))
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    interval = expected.confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((interval.low, interval.high), rel=1e-12)


def test_welch_difference_is_scipys_ttest_ind_with_unequal_variances():
    b = [*B[:3], 0.85]  # other size, other spread
    result = welch_difference(A, b)
    expected = stats.ttest_ind(A, b, equal_var=False)
    assert result.test == "Welch" and (result.n, result.n_baseline) == (5, 4)
    assert result.diff == pytest.approx(statistics.fmean(A) - statistics.fmean(b))
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    interval = expected.confidence_interval(0.95)  # Welch–Satterthwaite degrees of freedom
    assert (result.low, result.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    lone = welch_difference(A, [0.9])  # one baseline run: a difference, no test
    assert lone.low is None and lone.p_value is None


def kfold_runs(tmp_path: Path, shift_seeds=(0, 1)) -> list[RunInfo]:
    """Two recipes x 3 folds x 2 seeds; the shift recipe's seeds can differ from none's."""
    runs = []
    for recipe, seeds, values in (("none", (0, 1), B), ("shift", shift_seeds, A)):
        for fold in range(3):
            for seed in seeds:
                value = values[(2 * fold + seed) % 5]
                settings = [f"augment={recipe}", "dataset.folds=3", f"dataset.fold={fold}"]
                name = f"{recipe}_{fold}_{seed}"
                runs.append(fake_info(tmp_path / name, settings, seed, value))
    return runs


def test_folds_merge_like_seeds_with_intervals_and_a_paired_comparison(tmp_path):
    runs = kfold_runs(tmp_path)
    board = build_leaderboard(runs, Comparison(baseline="augment=none"))
    assert board.columns == ["augment"] and [r["n"] for r in board.rows] == [6, 6]
    rows = {r["augment"]: r for r in rows_of(csv_text(board))}
    assert rows["shift"]["rank"] == "1" and rows["none"]["significance_test"] == "baseline"
    assert rows["none"]["folds"].split() == ["0", "0", "1", "1", "2", "2"]
    assert rows["none"]["seeds"].split() == ["0", "1", "0", "1", "0", "1"]
    by_key = {
        name: {
            (r.summary.seed, r.fold): r.summary.test["accuracy"]
            for r in runs
            if name in r.run_dir.name
        }
        for name in ("none", "shift")
    }
    keys = sorted(by_key["none"])
    shift = [by_key["shift"][k] for k in keys]
    none = [by_key["none"][k] for k in keys]
    low, high = stats.t.interval(0.95, 5, loc=statistics.fmean(shift), scale=stats.sem(shift))
    assert float(rows["shift"]["test_accuracy_ci_low"]) == pytest.approx(low, rel=1e-5)
    assert float(rows["shift"]["test_accuracy_ci_high"]) == pytest.approx(high, rel=1e-5)
    assert rows["shift"]["significance_test"] == "paired"  # same seeds and folds: paired
    expected = stats.ttest_rel(shift, none)
    assert float(rows["shift"]["test_accuracy_p_value"]) == pytest.approx(expected.pvalue, 1e-5)
    interval = expected.confidence_interval(0.95)
    assert float(rows["shift"]["test_accuracy_diff_ci_low"]) == pytest.approx(interval.low, 1e-5)
    assert float(rows["shift"]["test_accuracy_diff_ci_high"]) == pytest.approx(interval.high, 1e-5)
    markdown = markdown_text(board)
    assert "| Δ test_accuracy [95% CI] | p | test |" in markdown and "(baseline)" in markdown


def test_other_seeds_are_compared_with_welch(tmp_path):
    runs = kfold_runs(tmp_path, shift_seeds=(2, 3))  # same folds, other seeds: no pairs
    board = build_leaderboard(runs, Comparison(baseline="augment=none", metric="val_accuracy"))
    rows = {r["augment"]: r for r in rows_of(csv_text(board))}
    assert rows["shift"]["significance_test"] == "Welch"
    shift = [r.summary.best_value for r in runs if "shift" in r.run_dir.name]
    none = [r.summary.best_value for r in runs if "none" in r.run_dir.name]
    expected = stats.ttest_ind(shift, none, equal_var=False)
    assert float(rows["shift"]["val_accuracy_p_value"]) == pytest.approx(expected.pvalue, 1e-5)
    assert float(rows["shift"]["val_accuracy_diff"]) == pytest.approx(
        statistics.fmean(shift) - statistics.fmean(none), 1e-5
    )


def write_metrics(folder: Path, accuracies: list[float], seconds: list[float]) -> None:
    folder.mkdir(parents=True)
    lines = ["epoch,val_loss,val_accuracy,epoch_seconds"]
    lines += [
        f"{i + 1},0.5,{a},{s}" for i, (a, s) in enumerate(zip(accuracies, seconds, strict=True))
    ]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_time_to_target_is_the_mean_of_the_runs_that_reached_it(tmp_path):
    runs = [fake_info(tmp_path / f"r{s}", ["augment=none"], s, 0.9) for s in range(5)]
    write_metrics(runs[0].run_dir, [0.80, 0.93, 0.95], [1.0, 2.0, 3.0])  # at 3.0 s
    write_metrics(runs[1].run_dir, [0.70, 0.90, 0.931], [2.0, 2.0, 2.0])  # at 6.0 s
    write_metrics(runs[2].run_dir, [0.70, 0.92, 0.929], [1.0, 1.0, 1.0])  # never
    runs[3].run_dir.mkdir()  # no metrics.csv, and one without epoch_seconds: not counted
    write_metrics(runs[4].run_dir, [0.95], [1.0])
    lines = (runs[4].run_dir / "metrics.csv").read_text().replace(",epoch_seconds", "")
    (runs[4].run_dir / "metrics.csv").write_text(lines.replace(",1.0\n", "\n"))
    board = build_leaderboard(runs, Comparison(target=0.93))
    (row,) = rows_of(csv_text(board))
    assert float(row["time_to_target_s"]) == pytest.approx(4.5)
    assert float(row["target_reached"]) == pytest.approx(2 / 3) and row["target_runs"] == "3"
    assert row["target"] == "val_accuracy>=0.93"
    assert "| 4.5 | 2/3 |" in markdown_text(board)
    columns = {"val_loss": [0.9, 0.4, 0.2], "epoch_seconds": [1.0, 1.0, 1.0]}
    assert time_to_target(columns, "val_loss", 0.4, "min") == 2.0


def test_a_baseline_names_exactly_one_row(tmp_path):
    runs = [
        fake_info(tmp_path / f"{m}{a}", [f"model={m}", f"augment={a}"], 0, 0.9)
        for m in ("lenet", "resnet")
        for a in ("none", "shift")
    ]
    with pytest.raises(
        UserError,
        match=r"matches 2 rows .*add a setting that names one row, e.g. --baseline .augment=none model=\w+.",
    ):
        build_leaderboard(runs, Comparison(baseline="augment=none"))
    board = build_leaderboard(runs, Comparison(baseline="augment=none model=resnet"))
    tests = {(r["model"], r["augment"]): r.get("significance_test") for r in board.rows}
    assert tests[("resnet", "none")] == "baseline"
    assert tests[("lenet", "shift")] == "paired"  # seed 0 on both sides: one pair, no p
    assert all(r.get("test_accuracy_p_value") is None for r in board.rows)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--baseline", "model=resnt"], "names no row; the rows' values are model: lenet,"),
        (["--baseline", "modl=resnet"], "no row sets 'modl' — did you mean 'model'?"),
        (["--baseline", "model"], "is not <override>=<value>"),
        (["--baseline", "model=resnet", "--metric", "tst_accuracy"], "did you mean 'test_acc"),
        (["--metric", "test_loss"], "give --baseline <override>=<value> too"),
        (["--target", "high"], "--target 'high' is not a number"),
        (["--target", "93"], "--target 93 is outside 0..1"),
        (["--target", "nan"], "not a finite number"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, message):
    sweep = fake_sweep(tmp_path / "sweep")
    assert cli.main(["report", str(sweep), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (sweep / "leaderboard.csv").exists()  # nothing written


def test_report_adds_the_columns_to_every_output(tmp_path, capsys):
    sweep = fake_sweep(tmp_path / "sweep", seeds=(0, 1, 2))
    flags = ["--baseline", "model=resnet", "--target", "0.5"]
    assert cli.main(["report", str(sweep), *flags]) == 0
    printed = capsys.readouterr().out
    assert "Δ test_accuracy [95% CI]" in printed and "(baseline)" in printed
    assert "95 % confidence intervals of the means" in printed and "[0.8852, 0.9348]" in printed
    rows = {r["model"]: r for r in rows_of((sweep / "leaderboard.csv").read_text())}
    assert rows["simplecnn"]["significance_test"] == "paired"
    assert float(rows["simplecnn"]["test_accuracy_diff"]) == pytest.approx(0.2)
    assert rows["lenet"]["target_reached"] == "0" and rows["resnet"]["time_to_target_s"] == "1"
    assert "Δ: the row's mean test_accuracy" in (sweep / "leaderboard.md").read_text()
    assert cli.main(["report", "--html", str(sweep), *flags]) == 0
    html = (sweep / "report.html").read_text()
    board = html[html.index('id="leaderboard"') :].split("</table>")[0]
    assert "<th>p</th><th>test</th><th>s to ≥ 0.5</th><th>reached</th>" in board
    assert board.count(">(baseline)<") == 1 and board.count(">paired<") == 2
    assert cli.main(["report", "--html", str(sweep), "--baseline", "model=x"]) == 2
