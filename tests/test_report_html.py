"""report.html without a browser: what the page says, escaping, missing parts, the CLI, and
the report that ``imgcls train`` writes at the end of a run (tests/test_report_browser.py
opens the pages in chromium)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import PLOTS, TINY
from report_runs import CLASSES, assert_self_contained, fake_run, fake_sweep

from imgcls import cli
from imgcls.app.job import train
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.evaluate.charts import nice_ticks
from imgcls.evaluate.html_report import write_report


def test_run_report_shows_every_part_and_escapes_what_comes_from_files(tmp_path):
    run = fake_run(tmp_path / "run", ["model=simplecnn", 'note=<b>&"x"\''])
    path = write_report([run])
    assert path == run / "report.html"
    html = path.read_text()
    assert_self_contained(html)
    for title in ("Command and configuration", "Environment", "Curves", "Per-epoch metrics"):
        assert f"<h2>{title}</h2>" in html
    assert "Missing:" in html and "no eval/ results" in html  # the only part it lacks
    assert html.count("Missing:") == 1
    assert "<script>alert(1)" not in html and "<b>c</b>" not in html and "<b>&" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;q&#34;" in html
    assert "note=&lt;b&gt;&amp;&#34;x&#34;&#39;" in html
    assert "&lt;i&gt;&amp;amp;&lt;/i&gt;" in html  # the resolved config, as text
    matrix = html[html.index('id="confusion-matrix"') :]
    matrix = matrix[: matrix.index("</table>")]
    assert matrix.count('<th scope="col">') == len(CLASSES)
    assert html.count("<svg") == 3  # loss, accuracy, learning rate
    assert html.count('id="epochs"') == 1 and html.count('<tr><td class="num"') == 3


def test_eval_results_are_shown(tmp_path):
    run = fake_run(tmp_path / "run", ["model=simplecnn"])
    record = json.loads((run / "test_metrics.json").read_text())
    record.update(split="val", dataset="synthetic", tta="flip", checkpoints=["best.pt"])
    (run / "eval" / "val_best_tta-flip").mkdir(parents=True)
    (run / "eval" / "val_best_tta-flip" / "metrics.json").write_text(json.dumps(record))
    html = write_report([run]).read_text()
    assert "Missing:" not in html
    part = html[html.index('id="part-evaluations"') :]
    assert "eval/val_best_tta-flip" in part and "flip" in part and "synthetic" in part
    assert part.count('<table class="matrix">') == 1 and "&lt;script&gt;alert(1)" in part


def test_a_missing_or_damaged_part_is_shown_as_missing(tmp_path):
    run = fake_run(tmp_path / "run", ["model=simplecnn"])
    (run / "plots" / "predictions.png").unlink()
    (run / "test_metrics.json").write_text("{not json")
    (run / "metrics.csv").write_text("")
    (run / "eval" / "test_best").mkdir(parents=True)
    (run / "eval" / "test_best" / "metrics.json").write_text("[1, 2]")
    html = write_report([run]).read_text()
    assert "Missing: no plots/predictions.png" in html
    assert "Missing: could not be read: JSONDecodeError" in html
    assert "Missing: metrics.csv has no rows" in html
    assert "is not a JSON object" in html
    assert "<h2>Environment</h2>" in html and "12.3k (12,345)" in html  # the rest is there
    assert_self_contained(html)


def test_sweep_report_ranks_configurations_and_links_each_runs_report(tmp_path):
    sweep = fake_sweep(tmp_path / "sweep<&>")
    html = write_report([sweep]).read_text()
    assert_self_contained(html)
    board = html[html.index('id="leaderboard"') :]
    board = board[: board.index("</table>")]
    rows = board.split("<tbody>")[1].count("<tr>")
    assert rows == 3  # three models, two seeds each; the failed run is listed apart
    assert "0.8499 ± 0.0067" in board and 'data-value="0.8499' in board
    links = re.findall(r'href="([^"]+)"', board)
    assert len(links) == 6 and all(link.startswith("./") for link in links)
    for link in links:
        assert (sweep / link.replace("%3C", "<").replace("%3E", ">")).is_file(), link
    assert "bad&lt;model&gt;" in html and "bad<model>" not in html
    assert "Parameters against the objective" in html and "log scale" in html  # optimizer.lr
    assert html.count("<svg") == 2 + 2  # val curves (accuracy, loss) + model, optimizer.lr


def test_report_command_html_out_and_mistakes(tmp_path, capsys):
    sweep = fake_sweep(tmp_path / "sweep")
    run = next(sweep.glob("0_*"))
    assert cli.main(["report", "--html", str(run), "--out", str(tmp_path / "x" / "one.html")]) == 0
    assert (tmp_path / "x" / "one.html").is_file()
    assert "report: " in capsys.readouterr().out
    assert cli.main(["report", str(run), str(next(sweep.glob("2_*"))), "--html"]) == 0
    assert "2 runs" in (run / "report.html").read_text()  # several runs: into the first
    assert cli.main(["report", "--html", str(sweep), "--out", str(tmp_path / "folder")]) == 0
    assert "3 configurations, 7 runs" in (tmp_path / "folder" / "report.html").read_text()
    assert cli.main(["report", "--html", "--plot", str(sweep)]) == 2
    assert "use one of them" in capsys.readouterr().err
    assert cli.main(["report", "--html", str(tmp_path / "nothing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_nice_ticks_cover_the_data():
    assert nice_ticks(0.12, 0.87) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1, 15, min_step=1) == [0, 5, 10, 15]
    ticks = nice_ticks(1.2, 2.2997)
    assert ticks[0] <= 1.2 and ticks[-1] >= 2.2997


def test_report_key_is_checked():
    assert compose([*TINY, "report.html=false"]).report.html is False
    with pytest.raises(
        UserError, match=r"unknown config key 'report.htm' — did you mean 'report.html'"
    ):
        compose([*TINY, "report.htm=false"])


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("real") / "run"
    overrides = [*TINY, PLOTS]
    train(compose(overrides), run_dir, overrides=overrides)
    return run_dir


def test_train_writes_the_report_and_test_metrics(real_run):
    summary = json.loads((real_run / "summary.json").read_text())
    metrics = json.loads((real_run / "test_metrics.json").read_text())
    assert metrics["classes"] == summary["classes"] and len(metrics["per_class"]) == 4
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["samples"]
    html = (real_run / "report.html").read_text()
    assert_self_contained(html)
    assert "Missing:" in html and html.count("Missing:") == 1  # only eval/, not run yet
    assert "data:image/png;base64," in html and 'id="confusion-matrix"' in html
    assert re.search(r"report: .*report.html \(\d+\.\d\ds\)", (real_run / "train.log").read_text())


def test_report_html_false_writes_none(tmp_path):
    run_dir = tmp_path / "run"
    train(compose([*TINY, "trainer.epochs=1", "report.html=false"]), run_dir)
    assert (run_dir / "summary.json").is_file() and not (run_dir / "report.html").exists()


def test_a_failing_report_never_fails_the_run(tmp_path, monkeypatch, caplog):
    import imgcls.app.job as job

    def broken(run_dir):
        raise RuntimeError("no space left")

    monkeypatch.setattr(job, "write_run_report", broken)
    result = train(compose([*TINY, "trainer.epochs=1"]), tmp_path / "run")
    assert result.summary["status"] == "completed"
    assert "could not write report.html: RuntimeError: no space left" in caplog.text
