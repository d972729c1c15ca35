"""On a CUDA GPU: the default job, bf16 autocast, channels_last and one-process NCCL DDP.

Every test here is marked ``gpu`` and skipped where ``torch.cuda.is_available()`` is False
(see conftest); ``pytest -m gpu`` runs them alone. bf16 keeps 8 bits of mantissa (about three
significant digits) and cuDNN picks its convolution algorithms by memory layout and batch
size, so runs on the GPU are compared with each other at a few percent, never at 1e-5.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env, run_cli

from imgcls.app import build
from imgcls.app.job import train
from imgcls.base.checkpoint import load_checkpoint
from imgcls.config.compose import compose
from imgcls.train.devices import autocast

pytestmark = pytest.mark.gpu

# TINY on the GPU: no dropout or augmentation, so two runs differ only in their arithmetic.
GPU_TINY = [
    *(a for a in TINY if not a.startswith(("trainer.device", "trainer.precision"))),
    "trainer.device=cuda",
    "model.dropout=0.0",
    "augment=none",
    "trainer.epochs=3",
]
# A bf16 run against the same run in fp32 (losses after three epochs, all weights): measured
# with bf16 autocast on a CPU, 1.3e-3 for the losses and 4.5e-3 for the weights at most.
BF16_REL = 2e-2


def rows(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def losses(run_dir: Path) -> list[float]:
    return [float(r[k]) for r in rows(run_dir) for k in ("train_loss", "val_loss")]


def summary_of(root: Path) -> tuple[Path, dict]:
    (path,) = root.rglob("summary.json")
    return path.parent, json.loads(path.read_text())


def bf16_or_skip() -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")


def test_default_job_trains_on_the_gpu(tmp_path):
    """`imgcls train` as a user starts it (ResNet on digits, precision auto), a few epochs."""
    result = run_cli(
        ["train", "trainer.epochs=5", f"output_root={tmp_path / 'out'}"],
        cwd=tmp_path,
        timeout=600,
        gpu=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir, summary = summary_of(tmp_path / "out")
    assert summary["status"] == "completed"
    assert (summary["model"], summary["dataset"]) == ("resnet", "digits")
    assert summary["device"].startswith("cuda")
    assert summary["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "32")
    assert all(math.isfinite(x) for x in losses(run_dir))
    assert summary["test"]["accuracy"] > 0.8  # 0.97 and 0.99 with bf16 autocast on a CPU
    assert "device cuda" in (run_dir / "train.log").read_text()
    # the Grad-CAM panel of a bf16 GPU run: computed in float32 on the CPU from best.pt
    assert (run_dir / "plots" / "cam.png").read_bytes().startswith(b"\x89PNG")
    assert "no Grad-CAM panel" not in (run_dir / "train.log").read_text()


def test_bf16_autocast_follows_the_fp32_run(tmp_path):
    bf16_or_skip()
    fp32 = train(compose([*GPU_TINY, "trainer.precision=32"]), tmp_path / "fp32")
    bf16 = train(compose([*GPU_TINY, "trainer.precision=bf16"]), tmp_path / "bf16")
    assert (fp32.summary["precision"], bf16.summary["precision"]) == ("32", "bf16")
    assert losses(bf16.run_dir) == pytest.approx(losses(fp32.run_dir), rel=BF16_REL)
    # the forward pass really ran in bf16: the logits of a model under the run's autocast
    cfg = compose([*GPU_TINY, "trainer.precision=bf16"])
    data = build.build_dataset(cfg)
    model = build.build_model(cfg, data).cuda()
    images = torch.zeros(4, data.channels, *data.image_size, device="cuda")
    with autocast("bf16", torch.device("cuda")):
        assert model(images).dtype == torch.bfloat16


def test_bf16_accumulated_batches_equal_one_large_batch(tmp_path):
    """The CPU test compares at 1e-5 in fp32; under bf16 the sums agree to bf16's precision."""
    bf16_or_skip()
    common = [*GPU_TINY, "trainer.precision=bf16", "trainer.epochs=2"]
    small = train(
        compose([*common, "trainer.batch_size=8", "trainer.accumulate_batches=4"]), tmp_path / "a"
    )
    large = train(compose([*common, "trainer.batch_size=32"]), tmp_path / "b")
    for a, b in zip(rows(small.run_dir), rows(large.run_dir), strict=True):
        assert a["step"] == b["step"] and a["lr"] == b["lr"]
        for key in ("train_loss", "val_loss"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=BF16_REL), key
    # All weights together: AdamW turns the rounding noise on a near-zero gradient (a bias
    # before a normalisation) into whole steps, so single small tensors may differ by ~10%.
    wa, wb = (
        torch.cat([t.flatten() for t in state.values() if t.is_floating_point()])
        for state in (
            load_checkpoint(r.run_dir / "checkpoints" / "last.pt")["model"] for r in (small, large)
        )
    )
    assert (wa - wb).norm() <= BF16_REL * wb.norm()


def test_channels_last_trains_like_the_default_layout(tmp_path):
    rgb = [*GPU_TINY, "dataset.channels=3", "trainer.precision=32"]  # one channel: no layout
    cfg = compose([*rgb, "trainer.channels_last=true"])
    parts = build.build_training(cfg, build.place(cfg.trainer))
    for conv in (m for m in parts.model.modules() if isinstance(m, torch.nn.Conv2d)):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert conv.kernel_size == (1, 1) or not conv.weight.is_contiguous()
    images, _ = next(iter(parts.loaders.train))
    assert images.is_cuda and images.is_contiguous(memory_format=torch.channels_last)
    assert not images.is_contiguous()
    nchw = train(compose(rgb), tmp_path / "nchw")
    nhwc = train(cfg, tmp_path / "nhwc")
    assert nhwc.summary["status"] == "completed"
    # fp32 (TF32 convolutions allowed): other algorithms for the other layout, same training
    assert losses(nhwc.run_dir) == pytest.approx(losses(nchw.run_dir), rel=1e-2)


def torchrun(nproc: int, port: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            f"--master_port={port}",
            "-m",
            "imgcls",
            "train",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(gpu=True),
    )


def test_one_process_nccl_ddp_matches_the_single_gpu_run(tmp_path):
    args = [*GPU_TINY, "trainer.precision=auto"]
    single = run_cli(["train", *args, "output_root=single"], cwd=tmp_path, gpu=True)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = torchrun(1, 29541, [*args, "trainer.strategy=ddp", "output_root=ddp"], tmp_path)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    one, alone = summary_of(tmp_path / "single")
    run_dir, summary = summary_of(tmp_path / "ddp")
    assert summary["status"] == "completed" and summary["precision"] == alone["precision"]
    assert (alone["device"], summary["device"]) == ("cuda", "cuda:0")  # DDP: the local rank's
    assert len(rows(run_dir)) == 3
    assert losses(run_dir) == pytest.approx(losses(one), rel=BF16_REL)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True, map_location="cpu")
    assert not any(k.startswith("module.") for k in state["model"])  # loadable without DDP


def test_more_processes_than_gpus_is_one_line_per_process(tmp_path):
    """The imgcls processes say why in one line and exit 2 (torchrun then reports them)."""
    gpus = torch.cuda.device_count()
    nproc = gpus + 1
    args = [*GPU_TINY, "trainer.device=auto", "trainer.strategy=ddp", f"output_root={tmp_path}"]
    result = torchrun(nproc, 29542, args, tmp_path)
    assert result.returncode != 0
    errors = {line for line in result.stderr.splitlines() if line.startswith("imgcls: ")}
    assert errors == {
        f"imgcls: error: trainer.strategy=ddp with {nproc} processes needs {nproc} GPUs; "
        f"this machine has {gpus}: use --nproc_per_node={gpus} or trainer.device=cpu"
    }, result.stderr[-3000:]
    assert "exitcode  : 2" in result.stderr  # torchrun's report of its workers
    assert "set_device" not in result.stderr and "CUDA error" not in result.stderr
    assert not list(tmp_path.rglob("summary.json")) and not list(tmp_path.rglob(".hydra"))
