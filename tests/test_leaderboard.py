"""Sweep leaderboards (seeds merged into mean ± std), imgcls report, and the trackers."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
from conftest import TINY

from imgcls import cli
from imgcls.app.job import train
from imgcls.config.compose import compose

SWEEP_BASE = [a for a in TINY if not a.startswith(("model", "trainer.epochs"))]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A multirun over two models and three seeds (6 one-epoch tiny runs)."""
    root = tmp_path_factory.mktemp("sweep")
    args = [
        "train",
        "-m",
        "model=simplecnn,resnet",
        "seed=0,1,2",
        *SWEEP_BASE,
        "trainer.epochs=1",
        f"output_root={root}",
    ]
    assert cli.main(args) == 0
    (sweep_dir,) = list((root / "multirun").glob("*/*"))
    return sweep_dir


@pytest.mark.slow
def test_sweep_leaderboard_merges_seeds(sweep):
    rows = read_rows(sweep / "leaderboard.csv")
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert sorted(r["model"] for r in rows) == ["resnet", "simplecnn"]
    assert "seed" not in rows[0]
    for row in rows:
        assert row["n"] == "3" and sorted(row["seeds"].split()) == ["0", "1", "2"]
        summaries = [
            json.loads((Path(p) / "summary.json").read_text()) for p in row["runs"].split()
        ]
        assert {s["model"] for s in summaries} == {row["model"]}
        for name, values in (
            ("val_accuracy", [s["best"]["value"] for s in summaries]),
            ("test_accuracy", [s["test"]["accuracy"] for s in summaries]),
            ("test_loss", [s["test"]["loss"] for s in summaries]),
        ):
            assert float(row[f"{name}_mean"]) == pytest.approx(statistics.fmean(values), rel=1e-5)
            assert float(row[f"{name}_std"]) == pytest.approx(
                statistics.stdev(values), rel=1e-5, abs=1e-9
            )
    means = [float(r["val_accuracy_mean"]) for r in rows]
    assert means == sorted(means, reverse=True) and [r["rank"] for r in rows] == ["1", "2"]
    markdown = (sweep / "leaderboard.md").read_text()
    assert "| rank | model | n |" in markdown and "±" in markdown


@pytest.mark.slow
def test_sweep_writes_report_html_into_the_sweep_and_every_run(sweep):
    html = (sweep / "report.html").read_text()
    board = html[html.index('id="leaderboard"') :].split("</table>")[0]
    assert board.split("<tbody>")[1].count("<tr>") == 2  # simplecnn and resnet, seeds merged
    runs = [p.parent for p in sweep.glob("*/summary.json")]
    assert len(runs) == 6 and all((r / "report.html").is_file() for r in runs)
    for run in runs:  # each linked from the leaderboard, relative to the sweep folder
        assert f'href="./{run.name}/report.html"' in board


@pytest.mark.slow
def test_report_rebuilds_prints_and_plots(sweep, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "report"
    assert cli.main(["report", str(sweep), "--plot", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "simplecnn" in printed and "resnet" in printed and "2 configurations, 6 runs" in printed
    assert read_rows(out / "leaderboard.csv") == read_rows(sweep / "leaderboard.csv")
    with Image.open(out / "val_curves.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert (out / "val_curves.png").stat().st_size > 10_000


def test_sweep_with_a_failing_job_finishes_and_lists_it(tmp_path):
    base = [a for a in TINY if not a.startswith("dataset.num_classes")]
    args = [
        "train",
        "-m",
        # 40 classes pass the options' rules (checked for every value before the sweep
        # starts) but 240 images cannot be split for them: that job fails while running
        "dataset.num_classes=40,4",
        *base,
        "trainer.epochs=1",
        f"output_root={tmp_path}",
    ]
    assert cli.main(args) == 1  # one job failed; the sweep still ran the other
    (sweep_dir,) = list((tmp_path / "multirun").glob("*/*"))
    rows = read_rows(sweep_dir / "leaderboard.csv")
    assert [r["status"] for r in rows] == ["completed", "failed"]
    assert rows[0]["dataset.num_classes"] == "4" and rows[0]["n"] == "1"
    assert rows[1]["dataset.num_classes"] == "40"
    assert "cannot split 240 images of 40 classes" in rows[1]["error"]
    markdown = (sweep_dir / "leaderboard.md").read_text()
    assert "## Failed or unfinished runs" in markdown and "dataset.num_classes=40" in markdown
    jobs = json.loads((sweep_dir / "jobs.json").read_text())  # as docs/guide/sweeps.md lists it
    assert [(Path(j["run_dir"]).name, j["status"]) for j in jobs] == [
        ("0_simplecnn_synthetic", "failed"),
        ("1_simplecnn_synthetic", "completed"),
    ]
    assert "dataset.num_classes=40" in jobs[0]["overrides"] and "cannot split" in jobs[0]["error"]
    # report rebuilds the same listing later, from jobs.json
    assert cli.main(["report", str(sweep_dir)]) == 0
    assert [r["status"] for r in read_rows(sweep_dir / "leaderboard.csv")] == [
        "completed",
        "failed",
    ]


def test_report_bad_input(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "holds no imgcls runs" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path), "--plots"]) == 2
    assert "unknown report option '--plots'" in capsys.readouterr().err


def test_tensorboard_and_mlflow_log_what_metrics_csv_holds(tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose([*TINY, "logger=[csv,tensorboard,mlflow]", f"output_root={tmp_path}"])
    result = train(cfg)
    rows = read_rows(result.run_dir / "metrics.csv")
    expected = [float(r["val_accuracy"]) for r in rows]

    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("val_accuracy")
    assert [s.step for s in scalars] == [1, 2]
    assert [s.value for s in scalars] == pytest.approx(expected, rel=1e-5)
    assert events.Scalars("test_accuracy")[0].value == pytest.approx(
        result.summary["test"]["accuracy"]
    )

    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("imgcls").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == result.run_dir.name
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx(expected, rel=1e-5)
    assert run.data.params["optimizer.lr"] == str(cfg.optimizer.lr)
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.summary["test"]["accuracy"])


def test_mlflow_any_tracking_uri(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "elsewhere").resolve().as_uri()
    overrides = [
        *TINY,
        "trainer.epochs=1",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}",
        "logger.mlflow.experiment=demo",
        f"output_root={tmp_path / 'out'}",
    ]
    train(compose(overrides))
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 1
    assert not (tmp_path / "out" / "mlruns").exists()
