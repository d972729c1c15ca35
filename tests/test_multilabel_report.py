"""What a multi-label run shows: plots/pr_curves.png, report.html's per-label table and
precision-recall curves, and the sweep leaderboard's multi-label test columns."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import PLOTS, SMALL_MODEL
from report_runs import fake_run

from imgcls import cli
from imgcls.data.targets import MULTILABEL
from imgcls.evaluate.html_report import write_report
from imgcls.evaluate.leaderboard import build_leaderboard, collect_runs, write_leaderboard

PNG = b"\x89PNG\r\n\x1a\n"


TAGS = ("cloud", "field", "road", "water")


def write_tagged_pngs(folder: Path, count: int = 48) -> Path:
    """A label table of ``count`` 8x8 grey PNGs with one to three tags each, the way a user
    keeps them: ``image,label`` with the tags joined by ``|``."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["image,label"]
    for i in range(count):
        tags = {TAGS[i % 4], *([TAGS[(i + 1) % 4]] if i % 2 else []), *(["water"] * (i % 5 == 0))}
        pixels = rng.integers(0, 255, (8, 8)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"img{i}.png")
        lines.append(f"img{i}.png,{'|'.join(sorted(tags))}")
    table = folder / "labels.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One epoch on a multi-label table of PNGs; the run writes its plots and report.html."""
    root = tmp_path_factory.mktemp("multilabel_report")
    table = write_tagged_pngs(root / "images")
    args = [
        "train",
        *SMALL_MODEL,
        PLOTS,
        "model.widths=[8]",
        "model.hidden=16",
        "dataset=table",
        f"dataset.path={table}",
        "dataset.label_delim=|",
        "dataset.image_size=8",
        "dataset.channels=1",
        "dataset.stats_images=4",
        f"output_root={root / 'outputs'}",
    ]
    assert cli.main(args) == 0
    (summary,) = (root / "outputs").rglob("summary.json")
    assert json.loads(summary.read_text())["data"]["task"] == MULTILABEL
    return summary.parent


def section(html: str, part: str) -> str:
    start = html.index(f'<section id="part-{part}">')
    return html[start : html.index("</section>", start)]


def test_pr_curves_and_the_label_set_grid_are_pngs(run_dir):
    from PIL import Image

    plots = run_dir / "plots"
    assert not (plots / "confusion_matrix.png").exists()
    for name in ("pr_curves.png", "predictions.png", "curves.png", "cam.png"):
        path = plots / name
        assert path.read_bytes().startswith(PNG), name
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200, name


def test_run_report_has_the_per_label_table_of_test_metrics_json(run_dir):
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    html = (run_dir / "report.html").read_text()  # written by the run itself
    assert "Missing:" in html and html.count("Missing:") == 1  # only: no eval/ results
    assert "confusion-matrix" not in html and "Confusion matrix</h3>" not in html

    overview = section(html, "overview")
    for name, key in (("test mAP", "map"), ("test macro F1", "f1_macro")):
        value = f"{summary['test'][key]:.4f}"
        assert f'<th scope="row">{name}</th><td>{value}</td>' in overview, name
    assert "test subset accuracy" in overview and "test Hamming loss" in overview

    table = section(html, "test").split('<table class="sortable per-label">')[1]
    rows = re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', table.split("</table>")[0])
    assert [name for name, _ in rows] == metrics["classes"]
    for (name, cells), want in zip(rows, metrics["per_label"], strict=True):
        keys = re.findall(r'data-value="([^"]*)">([^<]*)</td>', cells)
        columns = ("ap", "precision", "recall", "f1", "support", "threshold")
        assert len(keys) == len(columns)
        for (key, text), column in zip(keys, columns, strict=True):
            assert float(key) == pytest.approx(want[column], abs=1e-12), (name, column)
            if column == "support":
                assert text == str(want["support"])
            else:
                assert text == f"{want[column]:.4f}", (name, column)


def test_run_report_embeds_the_pr_curves_and_report_html_rewrites_it(run_dir, tmp_path):
    out = tmp_path / "again.html"
    assert cli.main(["report", "--html", str(run_dir), "--out", str(out)]) == 0
    html = out.read_text()
    assert "<h2>Precision-recall curves</h2>" in html
    (uri,) = re.findall(
        r'<img class="grid" src="data:image/png;base64,([^"]+)"', section(html, "pr_curves")
    )
    assert base64.b64decode(uri) == (run_dir / "plots" / "pr_curves.png").read_bytes()
    assert "label sets" in section(html, "predictions")


def multilabel_run(folder: Path, overrides: list[str], seed: int, val_map: float, test_map: float):
    """A finished multi-label run's files (summary.json as a multi-label run writes it)."""
    fake_run(folder, [*overrides, f"seed={seed}"], seed=seed, classes=["a", "b", "c"])
    summary = json.loads((folder / "summary.json").read_text())
    summary["data"] = {"task": MULTILABEL, "classes": ["a", "b", "c"]}
    summary["best"] = {"epoch": 3, "metric": "val_map", "value": val_map}
    summary["test"] = {
        "loss": 0.3,
        "accuracy": 0.5 - test_map / 10,  # subset accuracy, ordered against the mAP
        "map": test_map,
        "f1_micro": test_map - 0.05,
        "f1_macro": test_map - 0.1,
        "subset_accuracy": 0.5 - test_map / 10,
        "hamming_loss": 1 - test_map,
    }
    summary["thresholds"] = {"a": 0.4, "b": 0.5, "c": 0.6}
    (folder / "summary.json").write_text(json.dumps(summary))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_leaderboard_of_multilabel_runs_has_their_test_columns_sorted_by_val_map(tmp_path):
    sweep = tmp_path / "sweep"
    # loss=bce: the better val_map, the worse test mAP, so the order shows which ranks
    multilabel_run(sweep / "0_bce", ["loss=bce"], 0, val_map=0.90, test_map=0.70)
    multilabel_run(sweep / "1_bce", ["loss=bce"], 1, val_map=0.92, test_map=0.72)
    multilabel_run(sweep / "2_asl", ["loss=asymmetric"], 0, val_map=0.80, test_map=0.85)
    write_leaderboard(sweep, build_leaderboard(collect_runs([sweep])))

    rows = read_rows(sweep / "leaderboard.csv")
    assert [(r["rank"], r["loss"], r["n"]) for r in rows] == [
        ("1", "bce", "2"),
        ("2", "asymmetric", "1"),
    ]
    assert float(rows[0]["val_map_mean"]) == pytest.approx(0.91)
    assert float(rows[0]["test_map_mean"]) == pytest.approx(0.71)
    assert float(rows[1]["test_map_mean"]) == pytest.approx(0.85)
    assert float(rows[1]["test_f1_macro_mean"]) == pytest.approx(0.75)
    assert float(rows[1]["test_f1_micro_mean"]) == pytest.approx(0.80)
    assert float(rows[1]["test_subset_accuracy_mean"]) == pytest.approx(0.415)
    assert float(rows[1]["test_hamming_loss_mean"]) == pytest.approx(0.15)

    markdown = (sweep / "leaderboard.md").read_text()
    assert "Sorted by val_map (max)" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| rank"))
    assert "| val_map (max) |" in header and "| test mAP | test macro F1 |" in header
    assert "0.7100 ± 0.0141" in markdown  # the bce row's test mAP over its two seeds

    html = write_report([sweep]).read_text()
    board = section(html, "leaderboard")
    assert "<th>test mAP</th>" in board and "<th>test macro F1</th>" in board
    assert board.index("bce") < board.index("asymmetric")


def test_a_mixed_sweep_leaves_the_cells_a_run_lacks_empty(tmp_path):
    sweep = tmp_path / "sweep"
    multilabel_run(sweep / "0_tags", ["dataset=tags"], 0, val_map=0.9, test_map=0.8)
    digits = fake_run(sweep / "1_digits", ["dataset=digits", "seed=0"], quality=0.95)
    summary = json.loads((digits / "summary.json").read_text())
    summary["test"]["balanced_accuracy"] = 0.93  # a single-label run's, since skewed classes
    (digits / "summary.json").write_text(json.dumps(summary))
    write_leaderboard(sweep, build_leaderboard(collect_runs([sweep])))

    rows = {r["dataset"]: r for r in read_rows(sweep / "leaderboard.csv")}
    assert rows["tags"]["test_map_mean"] != "" and rows["digits"]["test_map_mean"] == ""
    assert float(rows["digits"]["test_accuracy_mean"]) == pytest.approx(0.95)
    assert float(rows["digits"]["test_balanced_accuracy_mean"]) == pytest.approx(0.93)
    assert rows["tags"]["test_balanced_accuracy_mean"] == ""
    assert rows["digits"]["val_map_mean"] == ""  # it monitored val_accuracy: ranked last
    assert [rows["tags"]["rank"], rows["digits"]["rank"]] == ["1", "2"]
    markdown = (sweep / "leaderboard.md").read_text()
    assert "an empty cell is a figure that run does not have" in markdown
    assert "| test balanced accuracy |" in markdown
    board = section(write_report([sweep]).read_text(), "leaderboard")
    assert "Missing:" not in board and "<th>test mAP</th>" in board
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len({line.count(" | ") for line in table}) == 1  # every row has every cell
