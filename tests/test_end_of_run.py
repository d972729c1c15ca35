"""The end of a run: the test split is inferred once, and that one pass feeds summary.json,
test_metrics.json and the figures; predictions.png has no blank band above its grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import PLOTS, SMALL_MODEL, TINY
from fabricate import write_folder
from PIL import Image

import imgcls.app.job as job
from imgcls.app.job import train
from imgcls.config.compose import compose
from imgcls.evaluate import plots
from imgcls.evaluate.metrics import compute_metrics
from imgcls.train.engine import Predictions


class TestImageCounter:
    """Counts the images the run's model sees after training, i.e. at the end of the run.

    The job loads the best checkpoint (``load_checkpoint``) once the fit is over and before
    it tests; from then on every forward call of the model is end-of-run inference.
    """

    __test__ = False

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fitted = False
        self.images = 0
        self.calls = 0
        build, load = job.build_training, job.load_checkpoint

        def build_training(*args, **kwargs):
            parts = build(*args, **kwargs)
            parts.model.register_forward_pre_hook(self._count)
            return parts

        def load_checkpoint(*args, **kwargs):
            self.fitted = True
            return load(*args, **kwargs)

        monkeypatch.setattr(job, "build_training", build_training)
        monkeypatch.setattr(job, "load_checkpoint", load_checkpoint)

    def _count(self, module, inputs) -> None:
        if self.fitted:
            self.images += int(inputs[0].shape[0])
            self.calls += 1


def _test_images(run_dir: Path) -> int:
    """The size of the run's test split, as test_metrics.json records it."""
    return int(json.loads((run_dir / "test_metrics.json").read_text())["samples"])


@pytest.mark.parametrize("views", [[], ["identity", "hflip"]], ids=["no-tta", "tta-identity-hflip"])
def test_the_test_split_is_inferred_once(tmp_path, monkeypatch, views):
    """Each test image goes through the model once per TTA view, not once more for the plots
    and test_metrics.json (which the old end of run did, without the views)."""
    counter = TestImageCounter(monkeypatch)
    overrides = [*TINY, PLOTS, "trainer.epochs=1", f"trainer.test_tta=[{','.join(views)}]"]
    train(compose(overrides), tmp_path / "run", overrides=overrides)
    run = tmp_path / "run"
    assert (run / "plots" / "predictions.png").is_file()
    assert (run / "plots" / "confusion_matrix.png").is_file()
    test_images = _test_images(run)
    assert test_images > 0
    assert counter.images == test_images * max(1, len(views))
    record = json.loads((run / "test_metrics.json").read_text())
    assert record["tta"] == (",".join(views) or "none")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] == record["accuracy"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Predictions]:
    """A tiny run, with the predictions its end of run handed to the figures."""
    run_dir = tmp_path_factory.mktemp("end_of_run") / "run"
    captured: list[Predictions] = []
    write = job.write_run_plots

    def spy(run, predictions, *args, **kwargs):
        captured.append(predictions)
        return write(run, predictions, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(job, "write_run_plots", spy)
        overrides = [*TINY, PLOTS]
        train(compose(overrides), run_dir, overrides=overrides)
    (predictions,) = captured
    return run_dir, predictions


def test_summary_test_accuracy_equals_test_metrics_json(finished_run):
    """summary.json's test accuracy is the accuracy of test_metrics.json's confusion matrix,
    recomputed from its counts: the two files describe one set of predictions."""
    run_dir, _ = finished_run
    summary = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "test_metrics.json").read_text())
    matrix = np.array(record["confusion_matrix"])
    assert matrix.sum() == record["samples"]
    assert summary["test"]["accuracy"] == record["accuracy"]
    assert summary["test"]["accuracy"] == np.trace(matrix) / matrix.sum()
    assert record["split"] == "test" and record["checkpoint"] == "best" and record["tta"] == "none"


def test_test_metrics_json_is_recomputed_from_the_predictions(finished_run):
    """compute_metrics on the probabilities the end of the run kept gives exactly the figures
    of test_metrics.json, and their accuracy is summary.json's: one inference behind all."""
    run_dir, predictions = finished_run
    record = json.loads((run_dir / "test_metrics.json").read_text())
    again = compute_metrics(
        predictions.labels.numpy(), predictions.probabilities.numpy(), record["classes"]
    )
    for key in ("accuracy", "samples", "confusion_matrix", "per_class", "f1_macro"):
        assert again[key] == record[key], key
    summary = json.loads((run_dir / "summary.json").read_text())
    assert again["accuracy"] == summary["test"]["accuracy"]


# --- the prediction grid's layout ------------------------------------------------------------


def blank_bands(png: Path) -> tuple[int, int, int]:
    """(image height, blank rows above the first drawn pixel, the tallest run of blank rows
    between the first and the last drawn rows) of a PNG on a white background."""
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    blank = (pixels >= 250).all(axis=(1, 2))
    drawn = np.flatnonzero(~blank)
    tallest = run = 0
    for row_is_blank in blank[drawn[0] : drawn[-1] + 1]:
        run = run + 1 if row_is_blank else 0
        tallest = max(tallest, run)
    return len(blank), int(drawn[0]), tallest


def assert_no_blank_band(png: Path) -> None:
    height, above, tallest = blank_bands(png)
    # savefig's tight bounding box keeps a 0.1 inch margin (10 rows at 100 dpi)
    assert above <= 12, f"{above} blank rows above the title"
    # Between the title, the label lines and the tiles, no gap is taller than a quarter inch
    # or a tenth of the figure (the old layout left 0.6 to 1.4 inches, 14 to 22 %).
    assert tallest <= 25 and tallest / height < 0.1, f"a blank band of {tallest}/{height} rows"


@pytest.mark.parametrize(
    ("count", "channels", "size"),
    [(16, 3, 64), (16, 1, 8), (3, 3, 32), (1, 1, 28), (8, 3, 224)],
    ids=["4x4-rgb64", "4x4-gray8", "one-row", "one-image", "two-rows-224"],
)
def test_the_prediction_grid_has_no_blank_band(tmp_path, count, channels, size):
    rng = np.random.default_rng(count + size)
    images = rng.integers(0, 256, (count, channels, size, size), dtype=np.uint8)
    targets = rng.integers(0, 10, count)
    probabilities = rng.random((count, 10))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    classes = [f"class_{i}" for i in range(10)]
    path = plots.plot_predictions(images, targets, probabilities, classes, tmp_path / "p.png")
    assert_no_blank_band(path)


def test_the_runs_prediction_figure_has_no_blank_band(finished_run):
    run_dir, _ = finished_run
    assert_no_blank_band(run_dir / "plots" / "predictions.png")


def test_the_grid_reads_only_the_images_it_shows(tmp_path):
    """A mapping of the chosen samples draws the same figure as the whole array."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (200, 3, 16, 16), dtype=np.uint8)
    targets = rng.integers(0, 5, 200)
    probabilities = rng.random((200, 5))
    classes = list("abcde")
    shown = plots.prediction_slots(targets, probabilities.argmax(1))
    assert len(shown) == 16 and len(set(shown.tolist())) == 16
    wrong = np.flatnonzero(probabilities.argmax(1) != targets)
    assert shown[:8].tolist() == wrong[:8].tolist()  # mistakes first, up to half the grid
    whole = plots.plot_predictions(images, targets, probabilities, classes, tmp_path / "a.png")
    some = {int(i): images[i] for i in shown}
    part = plots.plot_predictions(some, targets, probabilities, classes, tmp_path / "b.png")
    assert whole.read_bytes() == part.read_bytes()


def test_a_run_on_the_dataloader_path_gets_its_figures(tmp_path):
    """On the DataLoader path the test split is files read on demand: the end of run reads
    only the images the grid shows (it used to ask the split for all of them as one tensor,
    which a file split does not have, and the figures were skipped with a warning)."""
    root = write_folder(tmp_path / "images", per_class=12)
    overrides = [
        *SMALL_MODEL,
        PLOTS,
        "dataset=folder",
        f"dataset.root={root}",
        "dataset.image_size=16",
        "data.loader=dataloader",
        "trainer.batch_size=8",
    ]
    train(compose(overrides), tmp_path / "run", overrides=overrides)
    run = tmp_path / "run"
    for name in ("predictions.png", "confusion_matrix.png", "curves.png", "cam.png"):
        assert (run / "plots" / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    record = json.loads((run / "test_metrics.json").read_text())
    assert summary["test"]["accuracy"] == record["accuracy"]
    assert "could not write the plots" not in (run / "train.log").read_text()
