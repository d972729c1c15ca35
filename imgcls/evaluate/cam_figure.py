"""The "where the model looked" panel: which test images it shows, and how it draws them.

The panel pairs each chosen image with its Grad-CAM overlay (:mod:`imgcls.evaluate.cam`):
first the model's most confident mistakes, then its most confident correct answers, each
with the true and predicted class and the confidence. The maps come in as arrays; nothing
here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgcls.evaluate.plots import _clip, _pyplot, _save, _tile

PER_GROUP = 8  # images of each kind: most confident mistakes, most confident correct
TILE = 72  # pixels of each drawn image and overlay
PAIRS_PER_ROW = 4


@dataclass(frozen=True)
class CamChoice:
    """The images the panel shows and what the model said about each.

    ``wrong`` and ``right`` are sample indices, most confident first; ``predicted`` and
    ``confidence`` hold every sample's top class (a multi-label run: its top-scoring label)
    and that class's probability.
    """

    wrong: np.ndarray
    right: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray

    @property
    def shown(self) -> np.ndarray:
        """The samples in the order they are drawn: mistakes, then correct answers."""
        return np.concatenate([self.wrong, self.right]).astype(np.int64)


def choose_extremes(
    targets: np.ndarray, probabilities: np.ndarray, count: int = PER_GROUP
) -> CamChoice:
    """The ``count`` most confident mistakes and ``count`` most confident correct answers.

    Confidence is the probability of the predicted class. ``targets`` is (N,) class indices,
    or (N, C) multi-hot for a multi-label run, where the prediction is the top-scoring label
    and it is correct when that label is one of the image's. Ties keep the split's order.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    predicted = probabilities.argmax(axis=1)
    rows = np.arange(len(predicted))
    confidence = probabilities[rows, predicted]
    multilabel = targets.ndim == 2  # right when the top label is one of the image's
    correct = targets[rows, predicted] > 0.5 if multilabel else predicted == targets
    order = np.argsort(-confidence, kind="stable")
    return CamChoice(
        wrong=order[~correct[order]][:count],
        right=order[correct[order]][:count],
        predicted=predicted,
        confidence=confidence,
    )


def _truth(target: np.ndarray | int, classes: Sequence[str]) -> str:
    """The true class, or a multi-label image's true labels joined by ``|``."""
    target = np.asarray(target)
    if target.ndim == 1:
        return "|".join(classes[i] for i in np.flatnonzero(target > 0.5)) or "(none)"
    return classes[int(target)]


def _resize(tile: np.ndarray, size: tuple[int, int], smooth: bool) -> np.ndarray:
    """An (H, W) or (H, W, 3) array resized to ``size`` (H, W): nearest for image pixels
    (they stay sharp), bilinear for a map."""
    from PIL import Image

    if tile.shape[:2] == size:
        return tile
    height, width = size
    if tile.dtype == np.uint8:
        image = Image.fromarray(tile)
        method = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
        return np.asarray(image.resize((width, height), method))
    image = Image.fromarray(tile.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def tile_size(height: int, width: int, tile: int = TILE) -> tuple[int, int]:
    """The drawn size of an (height, width) image: its longer side ``tile`` pixels."""
    scale = tile / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def overlay(image: np.ndarray, cam: np.ndarray, tile: int = TILE) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 CHW ``image`` as an RGB tile, and the tile with the map ``cam`` (H, W, the
    image's size) drawn over it in the jet colours, scaled to its own maximum."""
    plt = _pyplot()
    pixels = _tile(image)  # (H, W, 3) or (H, W, 1)
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
    size = tile_size(*rgb.shape[:2], tile=tile)
    large = _resize(np.ascontiguousarray(rgb), size, smooth=False)
    heat = _resize(np.asarray(cam, dtype=np.float32), size, smooth=True)
    peak = float(heat.max())
    heat = np.clip(heat / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(heat)
    colours = plt.get_cmap("jet")(heat)[..., :3]
    mixed = 0.5 * large.astype(np.float32) / 255.0 + 0.5 * colours
    return large, (mixed * 255).round().astype(np.uint8)


def plot_cam_panel(
    images: Mapping[int, np.ndarray] | np.ndarray,
    maps: Mapping[int, np.ndarray],
    targets: np.ndarray,
    choice: CamChoice,
    classes: Sequence[str],
    path: Path,
    layer: str,
) -> Path:
    """The panel: for each sample of ``choice.shown`` the image and its Grad-CAM overlay
    (``maps[i]``: the map at the image's size), captioned with true and predicted class and
    confidence; mistakes framed in red. ``layer`` is named in the title."""
    plt = _pyplot()
    groups = [
        ("most confident mistakes", "no mistakes", choice.wrong, False),
        ("most confident correct", "no correct answers", choice.right, True),
    ]
    first = next(iter(maps.values()))
    tile_h, tile_w = tile_size(*np.asarray(first).shape[-2:])
    caption, gap, heading = 26, 14, 24  # pixels above each row, between pairs, above a group
    pair_w = 2 * tile_w + 2
    width = PAIRS_PER_ROW * pair_w + (PAIRS_PER_ROW - 1) * gap
    cell_h = caption + tile_h
    blocks = [(title, none, [int(i) for i in samples], ok) for title, none, samples, ok in groups]
    height = sum(
        heading + max(1, math.ceil(len(s) / PAIRS_PER_ROW)) * cell_h for *_, s, _ in blocks
    )
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    texts: list[tuple[float, float, str, str, int, str]] = []
    frames: list[tuple[int, int]] = []
    top = 0
    for title, none, samples, ok in blocks:
        shown = f"the {len(samples)} {title}" if samples else none
        texts.append((0, top + heading - 8, shown, "left", 9, "black"))
        top += heading
        for slot, index in enumerate(samples):
            y = top + (slot // PAIRS_PER_ROW) * cell_h + caption
            x = (slot % PAIRS_PER_ROW) * (pair_w + gap)
            image, heat = overlay(images[index], maps[index])
            canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
            canvas[y : y + heat.shape[0], x + tile_w + 2 : x + tile_w + 2 + heat.shape[1]] = heat
            predicted = classes[int(choice.predicted[index])]
            text = (
                f"{_clip('true: ' + _truth(targets[index], classes), 22)}\n"
                f"{_clip('pred: ' + predicted, 15)} ({choice.confidence[index]:.2f})"
            )
            texts.append((x + pair_w / 2, y - 2, text, "center", 7, "black" if ok else "red"))
            if not ok:
                frames.append((x, y))
        top += max(1, math.ceil(len(samples) / PAIRS_PER_ROW)) * cell_h
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for x, y, text, align, size, colour in texts:
        # parse_math=False: a class name with a $ in it is text, not TeX
        ax.text(x, y, text, ha=align, va="bottom", fontsize=size, color=colour, parse_math=False)
    for x, y in frames:
        ax.add_patch(
            plt.Rectangle(
                (x - 0.5, y - 0.5), pair_w - 1, tile_h, fill=False, edgecolor="red", linewidth=2
            )
        )
    ax.set_title(
        f"Grad-CAM of the predicted class at layer '{layer}': image, and where it looked (red)",
        fontsize=9,
        pad=3,
    )
    return _save(fig, path)
