"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998), sized for any input.

C1 6@5x5 conv, S2 2x2 subsampling, C3 16@5x5 conv, S4 subsampling, C5 120, F6 84, output.
``lenet5`` keeps the paper's tanh and average pooling; ``lenet5_relu`` is the modern
variant with ReLU and max pooling. Simplifications, as in most re-implementations: plain
tanh instead of 1.7159·tanh(2x/3), full C3 connectivity, untrained pooling, and a linear
output layer instead of the RBF units. C5 is a fully connected layer over the S4 map, which
is exactly the paper's 5x5 convolution on a 32x32 input (5x5 map).

Stems: ``imagenet`` is the paper's layout (unpadded convs); ``cifar`` pads C1 by 2 pixels,
which is LeNet-5 on 28x28 MNIST. A 5x5 conv is padded whenever its input is smaller than
10 pixels and a pool is skipped below 2 pixels, so 8x8 inputs work with either stem.
"""

from __future__ import annotations

from torch import Tensor, nn

from imgcls.config.options.models import LenetOptions, Stem
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family


class LeNet5(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
        modern: bool = False,
        pad_first: bool = False,
    ) -> None:
        super().__init__()
        act, pool = (nn.ReLU, nn.MaxPool2d) if modern else (nn.Tanh, nn.AvgPool2d)
        h, w = image_size
        layers: list[nn.Module] = []
        for index, (cin, cout) in enumerate([(in_channels, 6), (6, 16)]):
            pad = 2 if (index == 0 and pad_first) or min(h, w) < 10 else 0
            layers += [nn.Conv2d(cin, cout, 5, padding=pad), act()]
            h, w = h + 2 * pad - 4, w + 2 * pad - 4
            if min(h, w) >= 2:
                layers.append(pool(2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * h * w, 120),  # C5
            act(),
            nn.Linear(120, 84),  # F6
            act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_family("lenet", LenetOptions)
def lenet(
    options: LenetOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> LeNet5:
    """LeNet-5 of ``options.variant`` for the input."""
    pad_first = resolve_stem(options.stem, image_size) is Stem.cifar
    modern = options.variant == "lenet5_relu"
    return LeNet5(num_classes, in_channels, image_size, modern, pad_first)
