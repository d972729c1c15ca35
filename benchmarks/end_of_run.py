"""The end of a training run: one inference pass over the test split against the old two.

After training, a run loads its best checkpoint, computes the test metrics of summary.json,
and writes test_metrics.json and plots/ (curves, confusion matrix, predictions). The old end
of run inferred the test split twice: once for the metrics (``engine.evaluate``), once more
for test_metrics.json and the figures (``inference.predict_probabilities``). Now one pass
(``engine.evaluate_and_predict``) feeds all three. Both paths are timed in this process,
alternately, on the model of a tiny trained run and a test split of ``--test-images``
synthetic images of the run's size and classes (0: the run's own test split); the median of
``--repeats`` timings of each is compared.

    python benchmarks/end_of_run.py [--repeats 3] [--test-images 10000] [override ...]

Without overrides the run is the default model on 64x64 RGB synthetic images (600 of them,
one training epoch); ``--test-images 0`` with no overrides times the default run's own end
(``make train``: the digits test split). Last line: after_vs_before=<after / before seconds>.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.app.build import build_dataset, place
from imgcls.app.inference import load_run, predict_probabilities
from imgcls.app.job import train
from imgcls.app.run_plots import write_run_plots
from imgcls.base.checkpoint import inference_state, load_checkpoint
from imgcls.base.record import RunFolder
from imgcls.config.compose import compose
from imgcls.data.loader import DeviceLoader
from imgcls.data.splits import ImageSet
from imgcls.data.synthetic import generate
from imgcls.train.engine import Predictions, evaluate, evaluate_and_predict

RUN_64 = [
    "dataset=synthetic",
    "dataset.image_size=64",
    "dataset.channels=3",
    "dataset.num_samples=600",
]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def test_split(cfg, spec: dict, classes: list[str], count: int) -> ImageSet:
    """``count`` synthetic images of the run's size and classes, or the run's own test split."""
    if count == 0:
        return build_dataset(cfg).test.materialize()
    size = int(spec["image_size"][0])
    images, labels = generate(count, len(classes), size, int(spec["channels"]), 1.0, seed=1)
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = args.overrides or (RUN_64 if args.test_images else [])
    cfg = compose([*overrides, "trainer.epochs=1"])
    print(f"load average before: {load_average()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        train(cfg, run_dir)  # a real run: its best checkpoint, metrics.csv and folder
        logging.getLogger("imgcls").setLevel(logging.WARNING)
        where = place(cfg.trainer)  # the run's device and precision, as the job chose them
        loaded = load_run(run_dir, device=str(where.device))
        model, spec, classes = loaded.model, loaded.spec, loaded.classes
        test = test_split(cfg, spec, classes, args.test_images).to(loaded.device)
        loader = DeviceLoader(test, int(cfg.trainer.eval_batch_size), spec["mean"], spec["std"])
        second_pass: list[float] = []  # the old path's second inference alone
        run, precision, best = (
            RunFolder(run_dir),
            where.precision,
            RunFolder(run_dir).best_checkpoint,
        )

        def load_best() -> None:  # as the job does before it tests
            model.load_state_dict(inference_state(load_checkpoint(best, loaded.device)))

        def before() -> dict[str, float]:
            """The old end of run: evaluate, then infer again for test_metrics.json and plots."""
            load_best()
            metrics = evaluate(model, loader, precision)
            started = time.perf_counter()
            probabilities = predict_probabilities(model, test.images, spec["mean"], spec["std"])
            second_pass.append(time.perf_counter() - started)
            write_run_plots(run, Predictions(probabilities, test.labels.cpu()), test, classes)
            return metrics

        def after() -> dict[str, float]:
            """The end of run now: one pass whose probabilities feed everything."""
            load_best()
            metrics, predictions = evaluate_and_predict(model, loader, precision)
            write_run_plots(run, predictions, test, classes)
            return metrics

        print(
            f"model={cfg.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters) "
            f"test split: {len(test)} images of {test.channels}x{test.image_size[0]}x"
            f"{test.image_size[1]}, {len(classes)} classes; device {loaded.device}, "
            f"precision {precision}, eval batch {cfg.trainer.eval_batch_size}"
        )
        evaluate(model, DeviceLoader(test, 64, spec["mean"], spec["std"]), precision, max_batches=2)
        times: dict[str, list[float]] = {"before": [], "after": []}
        results: dict[str, dict[str, float]] = {}
        paths: dict[str, Callable[[], dict[str, float]]] = {"before": before, "after": after}
        for repeat in range(args.repeats):
            order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
            for name in order:
                started = time.perf_counter()
                results[name] = paths[name]()
                times[name].append(time.perf_counter() - started)
            print(
                f"repeat {repeat + 1}: before {times['before'][-1]:.2f}s  "
                f"after {times['after'][-1]:.2f}s  (load average {load_average()})"
            )
        same = results["before"] == results["after"]
        print(f"test metrics of both paths equal: {same} ({results['after']})")
    before_s, after_s = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"before (two passes): median {before_s:.2f}s of {args.repeats}")
    print(f"after (one pass): median {after_s:.2f}s of {args.repeats}")
    print(f"saved per run: {before_s - after_s:.2f}s")
    print(f"the old second pass alone: median {statistics.median(second_pass):.3f}s")
    print(f"load average after: {load_average()}")
    print(f"after_vs_before={after_s / before_s:.3f}")


if __name__ == "__main__":
    main()
