"""Data time of a folder run with a cold decode cache against runs that read the cache.

Writes the real Fashion-MNIST (Debian's package, /usr/share/datasets/fashion-mnist, IDX
files read by imgcls.data.idx) as 70,000 PNG files into ``<folder>/train/<class>/`` and
``<folder>/test/<class>/`` (skipped when the folder already holds them), then trains a tiny
run on it several times with a fresh, empty cache folder (``IMGCLS_CACHE_DIR``):

    imgcls train dataset=folder dataset.root=<folder> dataset.channels=1 dataset.image_size=28
                 model=simplecnn trainer.epochs=1 trainer.limit_train_batches=5 ...

The first run decodes every file and builds the cache; the next ``--repeats`` runs read it.
Each run's data time is summary.json's ``timings.data`` (building the dataset and its loaders,
the decoding included). Printed: every run's figure, the load average before and after, and
the ratio of the median warm run to the cold run (the acceptance: at most 0.1).

Two series, each with its own fresh cache: ``as-is`` (``python -m imgcls train ...``), and
``sklearn-first``, the same command in a process that imported scikit-learn before it
started. The data time of a run includes the first import of scikit-learn and SciPy (the
stratified split imports them; every run imports them anyway, for its test metrics), about
2 s on a loaded 2-core machine, whether or not a cache is read; the second series shows what
the data time is without that fixed cost.

    python benchmarks/decode_cache.py [--folder DIR] [--repeats 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from imgcls.data.idx import SYSTEM_FOLDERS, read_idx, system_folder

CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
SPLITS = {"train": "train", "test": "t10k"}
RUN = [
    "model=simplecnn",
    "model.widths=[8,16]",
    "model.hidden=32",
    "trainer.epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.batch_size=256",
    "trainer.device=cpu",
    "trainer.precision=32",
    "report.html=false",
]


def write_pngs(folder: Path) -> int:
    """The 70,000 images as PNG files in class folders; the count written (0: already there)."""
    from PIL import Image

    if (folder / "done").exists():
        return 0
    source = system_folder("fashion_mnist")
    if not source.is_dir():
        raise SystemExit(f"no Fashion-MNIST in {source} (Debian: apt install fashion-mnist?)")
    jobs = []
    for split, prefix in SPLITS.items():
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        for name in CLASSES:
            (folder / split / name).mkdir(parents=True, exist_ok=True)
        jobs += [
            (images[i], folder / split / CLASSES[int(labels[i])] / f"{i:05d}.png")
            for i in range(len(labels))
        ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda job: Image.fromarray(job[0]).save(job[1]), jobs))
    (folder / "done").write_text(str(len(jobs)))
    return len(jobs)


SKLEARN_FIRST = (
    "import sys, sklearn.model_selection; from imgcls.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run(folder: Path, cache: Path, outputs: Path, sklearn_first: bool) -> float:
    """One training run; its summary.json's data time (seconds)."""
    before = set(outputs.rglob("summary.json")) if outputs.exists() else set()
    env = {**os.environ, "IMGCLS_CACHE_DIR": str(cache), "CUDA_VISIBLE_DEVICES": ""}
    start = ["-c", SKLEARN_FIRST] if sklearn_first else ["-m", "imgcls"]
    command = [
        sys.executable,
        *start,
        "train",
        "dataset=folder",
        f"dataset.root={folder}",
        "dataset.channels=1",
        "dataset.image_size=28",
        f"output_root={outputs}",
        *RUN,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    (summary,) = set(outputs.rglob("summary.json")) - before
    return float(json.loads(summary.read_text())["timings"]["data"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, help="where the PNG files go (default: a temp)")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs (median taken)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgcls-decode-cache-"))
    folder = args.folder or work / "fashion-mnist-png"
    started = time.perf_counter()
    written = write_pngs(folder)
    print(f"{written or 'reused'} PNG files in {folder} ({time.perf_counter() - started:.0f} s)")
    print(f"dataset files: {system_folder('fashion_mnist')} ({SYSTEM_FOLDERS['fashion_mnist']})")
    print(f"load before: {os.getloadavg()}")
    for series in ("as-is", "sklearn-first"):
        cache, outputs = work / f"cache-{series}", work / f"outputs-{series}"
        first = series == "sklearn-first"
        cold = run(folder, cache, outputs, first)
        print(f"{series} run 1 (cold cache: decodes and builds it): data {cold:.2f} s")
        warm = []
        for i in range(args.repeats):
            warm.append(run(folder, cache, outputs, first))
            print(f"{series} run {i + 2} (reads the cache): data {warm[-1]:.2f} s")
        size = sum(p.stat().st_size for p in cache.rglob("*.npy"))
        median = statistics.median(warm)
        print(f"{series}: cache {size / 2**20:.1f} MB; load now {os.getloadavg()}")
        print(f"{series}: cold={cold:.2f} warm_median={median:.2f} ratio={median / cold:.3f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
