"""The backend settings a run trains under: fast by default, bit-exact on request.

By default on CUDA, cuDNN autotunes its convolution algorithms (``cudnn.benchmark``) and
32-bit matmuls and convolutions use TF32 tensor cores (``set_float32_matmul_precision
("high")``, as Lightning recommends): several times faster on Ampere and later GPUs, with
a 10-bit mantissa in the products and fp32 accumulation.

``trainer.deterministic=true`` instead allows only deterministic algorithms, for bit-exact
reruns: cuDNN's autotuner off, deterministic kernels (an operation without one warns), full
fp32 matmuls. On CPU imgcls is reproducible either way. The previous settings are restored
afterwards, so in-process callers are not left in either mode.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def backend_settings(device: torch.device, deterministic: bool) -> Iterator[None]:
    """Fast (CUDA: cuDNN autotuning, TF32) or deterministic settings for one run."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.allow_tf32,
    )
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be exact
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]
        torch.backends.cudnn.deterministic = previous[3]
        torch.set_float32_matmul_precision(previous[4])
        torch.backends.cudnn.allow_tf32 = previous[5]
