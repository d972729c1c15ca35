"""An airbench94-class network (Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single
GPU", arXiv 2404.00498), written here from the paper's description.

Layout: a 2x2 patch-whitening convolution (no padding) with 2·C·2·2 output channels, GELU,
then three conv groups — conv 3x3 → max-pool 2 → batch norm → GELU → conv 3x3 → batch norm
→ GELU — of ``widths`` (64, 256, 256) channels, a global max pool, a linear layer without
bias and a fixed output scale (1/9). On 32x32 images the sizes are 31 → 15 → 7 → 3 → 1, as
in the paper; a group pools only while its input is at least 2 pixels, so 8x8 digits work.

Initialisation, as in the paper:

- **Patch whitening** (:meth:`AirbenchNet.initialize_from_data`, called once by the run before
  step 0 with normalised training images): the first layer's filters are the eigenvectors
  of the covariance of the training images' 2x2 patches, each scaled by 1/sqrt(λ + eps),
  followed by their negatives (so GELU keeps both signs). Its output covariance over the
  patches is then the identity (up to eps). These weights are frozen; the bias trains.
- **Identity (dirac) initialisation**: in every 3x3 conv the first ``in_channels`` filters
  are the identity (a 1 at the kernel centre of their own input channel), the rest keep
  PyTorch's default.
- **Batch norm** has no trainable scale (fixed at 1), a trainable bias, ``bn_momentum`` 0.6
  (running statistics keep 0.6 of their value per step; PyTorch's momentum is 1 - that) and
  eps 1e-12. The biases can train at a larger learning rate: :meth:`lr_multipliers` gives the
  optimizer builder ``norm_bias_lr_mult`` (64 in the paper) for them.
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.config.options.models import AirbenchOptions
from imgcls.registry import MODELS


class _BatchNorm(nn.BatchNorm2d):
    """Batch norm with a fixed unit scale and a trainable bias (the paper's)."""

    def __init__(self, channels: int, momentum: float) -> None:
        super().__init__(channels, eps=1e-12, momentum=1.0 - momentum)
        self.weight.requires_grad_(False)


class _Conv(nn.Conv2d):
    """3x3 'same' convolution without bias; the first in_channels filters start as identity."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        nn.init.dirac_(w[: min(w.shape[0], w.shape[1])])


class _ConvGroup(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, pool: bool, bn_momentum: float):
        super().__init__(
            _Conv(in_channels, out_channels),
            nn.MaxPool2d(2) if pool else nn.Identity(),
            _BatchNorm(out_channels, bn_momentum),
            nn.GELU(),
            _Conv(out_channels, out_channels),
            _BatchNorm(out_channels, bn_momentum),
            nn.GELU(),
        )


@MODELS.register("airbench", AirbenchOptions)
class AirbenchNet(nn.Module):
    def __init__(
        self,
        options: AirbenchOptions,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
    ) -> None:
        widths, bn_momentum = options.widths, options.bn_momentum
        if min(image_size) < 2:
            raise UserError(f"model=airbench needs images of at least 2x2, not {image_size}")
        super().__init__()
        self.norm_bias_lr_mult = float(options.norm_bias_lr_mult)
        self.whiten_eps = float(options.whiten_eps)
        self.init_images = int(options.whiten_images)  # how many training images the whitening uses
        whiten_width = 2 * in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, whiten_width, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        groups, channels, size = [], whiten_width, min(image_size) - 1
        for width in widths:
            pool = size >= 2
            size = size // 2 if pool else size
            groups.append(_ConvGroup(channels, width, pool, bn_momentum))
            channels = width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(channels, num_classes, bias=False)
        self.scale = float(options.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.whiten(x))
        x = self.pool(self.groups(x)).flatten(1)
        return self.head(x) * self.scale

    # -- hooks the run calls (imgcls.train.data_init, imgcls.train.lr_groups) ------------------
    @torch.no_grad()
    def initialize_from_data(self, images: torch.Tensor) -> None:
        """Patch-whitening initialisation of the first layer from normalised training images
        (N, C, H, W): its output covariance over their 2x2 patches becomes the identity."""
        weight = self.whiten.weight
        c, (kh, kw) = weight.shape[1], weight.shape[2:]
        patches = images.float().unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw).double()
        patches = patches - patches.mean(0)
        covariance = patches.T @ patches / max(patches.shape[0] - 1, 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)  # largest first
        filters = (eigenvectors / (eigenvalues.clamp_min(0) + self.whiten_eps).sqrt()).T
        filters = filters.reshape(-1, c, kh, kw).to(weight.dtype)
        weight.copy_(torch.cat([filters, -filters]))

    def lr_multipliers(self) -> list[tuple[list[nn.Parameter], float]]:
        """The batch-norm biases train at ``norm_bias_lr_mult`` times the learning rate."""
        biases = [m.bias for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        return [(biases, self.norm_bias_lr_mult)]
