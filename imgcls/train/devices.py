"""Device and precision selection."""

from __future__ import annotations

import contextlib

import torch

from imgcls.base.errors import UserError


def select_device(requested: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device must exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"trainer.device={requested} but no CUDA device is available; use auto or cpu"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise UserError(
            f"trainer.device={requested} but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"trainer.device={requested} but MPS is not available; use auto or cpu")
    return device


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a CUDA GPU that supports it, else 32-bit floats."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed-precision context for the forward pass (a no-op for 32-bit)."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# Dense tensor-core peaks in TFLOP/s (no sparsity), from NVIDIA's data sheets: (16-bit, TF32).
# 16-bit is bf16 where the chip has it (fp16 on V100 and T4); 32-bit runs use TF32 on CUDA
# (imgcls.train.backends). Matched against torch.cuda.get_device_name(), first match wins.
PEAK_TFLOPS: tuple[tuple[str, float, float | None], ...] = (
    ("H200", 989.4, 494.7),
    ("H100 PCIe", 756.5, 378.0),
    ("H100", 989.4, 494.7),  # SXM
    ("A100", 312.0, 156.0),
    ("L40S", 362.1, 183.0),
    ("L4", 121.0, 60.0),
    ("A10G", 70.0, 35.0),
    ("A10", 125.0, 62.5),
    ("V100", 125.0, None),  # no TF32: fp32 runs on CUDA cores
    ("T4", 65.0, None),
)


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak for ``precision`` ("bf16", "16" or "32"), or None if unknown
    (the CPU, an unlisted GPU, or a 32-bit run on a chip without TF32)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, half, tf32 in PEAK_TFLOPS:
        if key in name:
            return half if precision in ("bf16", "16") else tf32
    return None


def throughput(
    images_per_second: float | None, forward_flops: int, peak: float | None
) -> dict[str, float | None]:
    """Achieved training TFLOP/s (forward and backward: 3x the forward FLOPs per image) and
    the model FLOP utilisation against ``peak`` (None where the peak is unknown)."""
    if not images_per_second or not forward_flops:
        return {
            "images_per_second": images_per_second,
            "tflops": None,
            "peak_tflops": peak,
            "mfu": None,
        }
    tflops = 3 * forward_flops * images_per_second / 1e12
    return {
        "images_per_second": round(images_per_second, 1),
        "tflops": float(f"{tflops:.4g}"),
        "peak_tflops": peak,
        "mfu": float(f"{tflops / peak:.4g}") if peak else None,
    }
