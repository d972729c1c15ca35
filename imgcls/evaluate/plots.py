"""Figures of a run: training curves, the normalised confusion matrix, a prediction grid,
and for a multi-label run the per-label precision-recall curves and a grid of label sets.

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
    return _slots(np.asarray(predictions) == np.asarray(targets), count)


def _slots(correct: np.ndarray, count: int) -> np.ndarray:
    wrong = np.flatnonzero(~correct)
    right = np.flatnonzero(correct)
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
    predictions = probabilities.argmax(axis=1)
    chosen = prediction_slots(targets, predictions, count)
    captions, correct = [], []
    for index in chosen:
        ok = bool(predictions[index] == targets[index])
        confidence = probabilities[index, predictions[index]]
        captions.append(
            f"true: {classes[targets[index]]}\npred: {classes[predictions[index]]} "
            f"({confidence:.2f}){'' if ok else ' ✗'}"
        )
        correct.append(ok)
    wrong = int((predictions != targets).sum())
    title = f"{wrong} of {len(targets)} wrong; mistakes in red"
    return _draw_grid([images[int(i)] for i in chosen], captions, correct, title, path)


def multilabel_prediction_slots(
    targets: np.ndarray, predicted: np.ndarray, count: int = 16
) -> np.ndarray:
    """The samples the multi-label grid shows: as :func:`prediction_slots`, where a
    prediction is right when its label set equals the true set."""
    correct = (np.asarray(targets) > 0.5) == np.asarray(predicted, dtype=bool)
    return _slots(correct.all(axis=1), count)


def plot_multilabel_predictions(
    images: np.ndarray | Mapping[int, np.ndarray],
    targets: np.ndarray,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    path: Path,
    count: int = 16,
) -> Path:
    """A grid of test images with their true and predicted label sets, for a multi-label run.

    ``predicted`` is the (N, C) bool decision at the run's thresholds; each predicted label
    shows its probability. An image whose set is not exactly right is framed in red (mistakes
    first, up to half the grid, as in :func:`plot_predictions`).
    """
    targets = np.asarray(targets) > 0.5
    predicted = np.asarray(predicted, dtype=bool)
    chosen = multilabel_prediction_slots(targets, predicted, count)
    captions, correct = [], []
    for index in chosen:
        ok = bool(np.array_equal(targets[index], predicted[index]))
        true_set = ", ".join(classes[c] for c in np.flatnonzero(targets[index])) or "(none)"
        guessed = ", ".join(
            f"{classes[c]} {probabilities[index, c]:.2f}" for c in np.flatnonzero(predicted[index])
        )
        captions.append(
            f"true: {_clip(true_set)}\npred: {_clip(guessed or '(none)')}{'' if ok else ' ✗'}"
        )
        correct.append(ok)
    wrong = int((targets != predicted).any(axis=1).sum())
    title = f"{wrong} of {len(targets)} label sets not exactly right; those in red"
    return _draw_grid([images[int(i)] for i in chosen], captions, correct, title, path)


def _clip(text: str, limit: int = 34) -> str:
    """One caption line short enough for its tile."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _draw_grid(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    correct: Sequence[bool],
    title: str,
    path: Path,
) -> Path:
    """uint8 CHW images in a grid of four columns, each under its two-line caption; the
    wrong ones framed and captioned in red. The figure is sized to the grid, with the title
    right above it: no blank band."""
    plt = _pyplot()
    columns = min(4, max(1, len(images)))
    rows = max(1, -(-len(images) // columns))
    tiles = [_tile(image) for image in images]
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
    for slot, (caption, ok) in enumerate(zip(captions, correct, strict=True)):
        y, x = (slot // columns) * cell_h + pad_y, (slot % columns) * cell_w
        ax.text(
            x + width / 2,
            y - 0.6,
            caption,
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
    ax.set_title(title, fontsize=10, pad=2)
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


def plot_pr_curves(
    curves: Sequence[Mapping[str, object]], path: Path, title: str = "", left_out: int = 0
) -> Path:
    """One precision-recall curve per label, its AP in the legend (best AP first).

    ``curves`` as :func:`imgcls.evaluate.multilabel.precision_recall_curves` gives them;
    drawn as steps, as scikit-learn's PrecisionRecallDisplay draws them. ``left_out`` labels
    (no positive test image, so no curve) are counted in the title.
    """
    plt = _pyplot()
    ordered = sorted(curves, key=lambda c: -float(c["ap"]))  # type: ignore[arg-type]
    colors = plt.get_cmap("tab10" if len(ordered) <= 10 else "tab20").colors
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for index, curve in enumerate(ordered):
        ax.plot(
            curve["recall"],
            curve["precision"],
            drawstyle="steps-post",
            linewidth=1.4,
            color=colors[index % len(colors)],
            label=f"{curve['class']} (AP {float(curve['ap']):.3f})",  # type: ignore[arg-type]
        )
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    if ordered:
        ax.legend(
            fontsize=7 if len(ordered) > 10 else 8,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            ncol=1 if len(ordered) <= 25 else 2,
        )
    lines = [title] if title else []
    if ordered:
        mean_ap = float(np.mean([float(c["ap"]) for c in ordered]))  # type: ignore[arg-type]
        lines.append(f"precision-recall per label (test split), mAP {mean_ap:.3f}")
    if left_out:
        lines.append(f"{left_out} label(s) without a positive test image: no curve")
    ax.set_title("\n".join(lines), fontsize=10)
    return _save(fig, path)


def plot_reliability(
    panels: Sequence[tuple[str, Mapping[str, Sequence[float | None]], Mapping[str, float]]],
    path: Path,
) -> Path:
    """A reliability diagram per panel (e.g. before and after temperature scaling): the
    accuracy of each confidence bin as a bar against the diagonal of perfect calibration,
    the gap shaded, the share of decisions per bin below, and ECE/MCE/NLL in the title.

    Each panel is ``(title, table, figures)``: ``table`` is
    :meth:`imgcls.evaluate.calibration.Reliability.to_dict` (edges, counts, confidence,
    accuracy), ``figures`` the ece/mce/nll of those probabilities.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(4.2 * len(panels), 5.2),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    for column, (title, table, figures) in enumerate(panels):
        edges = np.asarray(table["edges"], dtype=np.float64)
        width = np.diff(edges)
        left = edges[:-1]
        counts = np.asarray(table["counts"], dtype=np.float64)
        accuracy = np.array([np.nan if a is None else a for a in table["accuracy"]], dtype=float)
        confidence = np.array(
            [np.nan if c is None else c for c in table["confidence"]], dtype=float
        )
        filled = counts > 0
        ax, below = axes[0][column], axes[1][column]
        ax.bar(
            left[filled],
            accuracy[filled],
            width=width[filled],
            align="edge",
            color="tab:blue",
            edgecolor="white",
            label="accuracy",
        )
        gap = confidence - accuracy
        ax.bar(  # from the accuracy to the mean confidence, above or below it
            left[filled],
            np.abs(gap[filled]),
            bottom=np.minimum(accuracy, confidence)[filled],
            width=width[filled],
            align="edge",
            fill=False,
            hatch="///",
            edgecolor="tab:red",
            linewidth=0.8,
            label="gap to the mean confidence",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left", fontsize=8)
        text = ", ".join(
            f"{name.upper()} {figures[name]:.4f}"
            for name in ("ece", "mce", "nll")
            if name in figures
        )
        ax.set_title(f"{title}\n{text}", fontsize=9)
        share = counts / max(counts.sum(), 1.0)
        below.bar(left, share, width=width, align="edge", color="tab:gray")
        below.set_xlim(0, 1)
        below.set_xlabel("confidence")
        below.set_ylabel("share")
    fig.subplots_adjust(hspace=0.35, wspace=0.3)
    return _save(fig, path)
