"""Run and sweep folders made of small files, as a training run leaves them, for the report
tests: no training needed, and the class names and overrides can be hostile."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import yaml

HOSTILE_CLASS = '<script>alert(1)</script> & "q"'
CLASSES = ["cat", HOSTILE_CLASS, "a'b & <b>c</b>"]


def png_bytes(width: int = 40, height: int = 24) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (250, 250, 250))
    for x in range(width):
        image.putpixel((x, x % height), (200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def fake_run(
    run_dir: Path,
    overrides: list[str],
    *,
    seed: int = 0,
    quality: float = 0.8,
    classes: list[str] | None = None,
    epochs: int = 3,
    status: str = "completed",
) -> Path:
    """A finished run: summary.json, metrics.csv, .hydra/, test_metrics.json, a PNG grid."""
    classes = list(classes or CLASSES)
    run_dir.mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run_dir / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"model": {"name": "simplecnn"}, "seed": seed, "note": "<i>&amp;</i>"})
    )
    lines = ["epoch,step,lr,train_loss,train_accuracy,val_loss,val_accuracy,epoch_seconds"]
    for epoch in range(1, epochs + 1):
        accuracy = quality * (1 - math.exp(-epoch))
        lines.append(
            f"{epoch},{epoch * 10},{0.1 / epoch:.6g},{2 / epoch:.6g},{accuracy:.6g},"
            f"{2.2 / epoch:.6g},{accuracy - 0.01:.6g},0.5"
        )
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    best = quality * (1 - math.exp(-epochs)) - 0.01
    summary = {
        "status": status,
        "model": "simplecnn",
        "dataset": "synthetic",
        "seed": seed,
        "device": "cpu",
        "precision": "32",
        "params": 12345,
        "flops": 678901,
        "classes": classes,
        "versions": {"python": "3.11", "torch": "2.x"},
        "git_commit": "0123abcd",
        "epochs_completed": epochs,
        "best": {"epoch": epochs, "metric": "val_accuracy", "value": best},
        "test": {
            "loss": 0.5,
            "accuracy": quality,
            **{"ece": 0.05, "mce": 0.2, "nll": 0.5, "brier": 0.3},  # calibration figures
        },
        "train_seconds": 1.5,
        "wall_seconds": 3.0,
    }
    if status != "completed":
        summary["error"] = "loss became nan in epoch 2 <oops> & more"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    n = len(classes)
    matrix = [[8 if i == j else 1 for j in range(n)] for i in range(n)]
    per_class = [
        {"class": c, "precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 8 + n - 1}
        for c in classes
    ]
    test_metrics = {
        "split": "test",
        "checkpoint": "best",
        "tta": "none",
        "classes": classes,
        "accuracy": quality,
        "per_class": per_class,
        "confusion_matrix": matrix,
    }
    (run_dir / "test_metrics.json").write_text(json.dumps(test_metrics))
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "predictions.png").write_bytes(png_bytes())
    (run_dir / "plots" / "cam.png").write_bytes(png_bytes())  # the Grad-CAM panel
    (run_dir / "plots" / "reliability.png").write_bytes(png_bytes())
    return run_dir


def fake_sweep(sweep_dir: Path, models=("simplecnn", "resnet", "lenet"), seeds=(0, 1)) -> Path:
    """A sweep folder: one run per model and seed (quality differs by model), one failed job."""
    job = 0
    for rank, model in enumerate(models):
        for seed in seeds:
            overrides = [f"model={model}", f"seed={seed}", f"optimizer.lr={0.1 / 10**rank}"]
            fake_run(
                sweep_dir / f"{job}_{model}_synthetic",
                overrides,
                seed=seed,
                quality=0.9 - 0.2 * rank + 0.01 * seed,
                classes=["a", "b"],
            )
            job += 1
    fake_run(
        sweep_dir / f"{job}_bad_synthetic",
        ["model=bad<model>", "seed=0", "optimizer.lr=1.0"],
        status="failed",
        classes=["a", "b"],
    )
    return sweep_dir


NETWORK = re.compile(
    r"""(?:src|href|srcset|action|data|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.I
)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def assert_self_contained(html: str) -> None:
    """No reference that a browser would fetch, one script, and a CSP that forbids fetches
    and allows only that script (by its hash)."""
    assert not NETWORK.search(html)
    page = parse(html)
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            if name not in attrs:
                continue
            value = (attrs[name] or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "javascript:")), (tag, value)
            if name == "src":
                assert value.startswith("data:image/png;base64,"), (tag, value[:40])
    assert [t for t, _ in page.tags if t in ("link", "iframe", "object", "embed", "base")] == []
    assert len(page.scripts) == 1
    (csp,) = [
        a["content"]
        for t, a in page.tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
