"""Figures of a run: training curves, the normalised confusion matrix, a prediction grid.

Matplotlib with the Agg backend (no display needed); each figure is written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from imgcls.base.runs import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()), binary=True)
    return path


def read_metrics(path: Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats (empty cells become NaN)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                number = float(value) if value not in ("", None) else float("nan")
            except ValueError:
                number = float("nan")
            columns.setdefault(key, []).append(number)
    return columns


def plot_curves(metrics: Mapping[str, Sequence[float]], path: Path, title: str = "") -> Path:
    """Train/validation loss and accuracy per epoch, and the learning rate."""
    plt = _pyplot()
    epochs = metrics.get("epoch", [])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, kind in zip(axes[:2], ("loss", "accuracy"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = metrics.get(f"{split}_{kind}")
            if values:
                ax.plot(epochs, values, style, markersize=3, label=f"{split} {kind}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(kind)
        ax.grid(alpha=0.3)
        ax.legend()
    if metrics.get("lr"):
        axes[2].plot(epochs, metrics["lr"], "-o", markersize=3, color="tab:green")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    # fixed spacing (the outer margins are trimmed when saved): tight_layout measured every
    # label first and took most of a small run's plotting time
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.88 if title else 0.96, wspace=0.3)
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    """Rows normalised to 1 (recall per true class), counts written in each cell."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    n = len(classes)
    size = max(4.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix (normalised by true class)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(
                    j,
                    i,
                    f"{normalised[i, j]:.2f}",
                    ha="center",
                    va="center",
                    color=colour,
                    fontsize=8,
                )
    return _save(fig, path)


def prediction_slots(targets: np.ndarray, predictions: np.ndarray, count: int = 16) -> np.ndarray:
    """The sample indices the prediction grid shows, in its order: mistakes first (up to
    half the grid), then correct predictions, then more mistakes if the grid is not full."""
    wrong = np.flatnonzero(predictions != targets)
    right = np.flatnonzero(predictions == targets)
    chosen = np.concatenate([wrong[: count // 2], right])[:count]
    return np.concatenate([chosen, wrong[count // 2 :]])[:count]


# The prediction grid's geometry in inches: each image is drawn TILE wide, with LABEL above
# it for its two lines of text and a gap of GAP between columns.
TILE, LABEL, GAP = 2.0, 0.42, 0.45


def plot_predictions(
    images: np.ndarray | Mapping[int, np.ndarray],
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    path: Path,
    count: int = 16,
) -> Path:
    """A grid of uint8 CHW images with true and predicted class; mistakes framed in red.

    ``images`` is indexed by sample: a uint8 NCHW array, or a mapping that holds at least the
    samples :func:`prediction_slots` chooses (so a caller reads only those from disk).
    Mistakes are shown first (up to half the grid) so that the figure is informative. The
    figure is sized to the grid, with the title right above it: no blank band.
    """
    plt = _pyplot()
    predictions = probabilities.argmax(axis=1)
    chosen = prediction_slots(targets, predictions, count)
    wrong = int((predictions != targets).sum())
    columns = min(4, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // columns))
    tiles = [_tile(images[int(index)]) for index in chosen]
    height, width = tiles[0].shape[:2] if tiles else (1, 1)
    # One mosaic image in one axes: far faster to draw than a grid of subplots.
    inch = width / TILE  # pixels of the mosaic per inch of the figure
    pad_y, pad_x = math.ceil(LABEL * inch), math.ceil(GAP * inch)
    cell_h, cell_w = height + pad_y, width + pad_x
    canvas = np.full((rows * cell_h, columns * cell_w - pad_x, 3), 255, dtype=np.uint8)
    for slot, tile in enumerate(tiles):
        y, x = (slot // columns) * cell_h + pad_y, (slot % columns) * cell_w
        canvas[y : y + height, x : x + width] = tile
    fig = plt.figure(figsize=(canvas.shape[1] / inch, canvas.shape[0] / inch))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))  # the mosaic fills the figure
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for slot, index in enumerate(chosen):
        y, x = (slot // columns) * cell_h + pad_y, (slot % columns) * cell_w
        ok = predictions[index] == targets[index]
        confidence = probabilities[index, predictions[index]]
        ax.text(
            x + width / 2,
            y - 0.6,
            f"true: {classes[targets[index]]}\npred: {classes[predictions[index]]} "
            f"({confidence:.2f}){'' if ok else ' ✗'}",
            ha="center",
            va="bottom",
            fontsize=8,
            color="black" if ok else "red",
        )
        if not ok:
            ax.add_patch(
                plt.Rectangle(
                    (x - 0.5, y - 0.5), width, height, fill=False, edgecolor="red", linewidth=3
                )
            )
    # The title sits on the axes (not the figure's top edge), so it follows the grid.
    ax.set_title(f"{wrong} of {len(targets)} wrong; mistakes in red", fontsize=10, pad=2)
    return _save(fig, path)


def _tile(image: np.ndarray) -> np.ndarray:
    """A uint8 (C, H, W) image as (H, W, 3) or (H, W, 1) for the mosaic."""
    image = np.asarray(image)
    return np.transpose(image, (1, 2, 0)) if image.shape[0] == 3 else image[0][:, :, None]


def plot_validation_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path, metric: str = "val_accuracy"
) -> Path:
    """One line per label (a leaderboard row, seeds averaged) of a validation metric."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for label, series in curves.items():
        for ax, key in zip(axes, (metric, "val_loss"), strict=True):
            values = series.get(key)
            if values is not None and len(values):
                ax.plot(series["epoch"], values, "-", label=label)
    for ax, key in zip(axes, (metric, "val_loss"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)
