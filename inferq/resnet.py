"""Build the `resnet18` model offline: a ResNet-18-shaped network with fixed, seeded weights
(no download), exported from torch to ONNX: `image` UINT8 [n, 3, 224, 224] (RGB pixels,
channels first) -> `logits` FP32 [n, 1000]. The graph scales the pixels to [0, 1] and
normalizes them with the ImageNet mean and deviation, so an image travels through Kafka as
its 150 KB of pixels rather than 600 KB of floats. It stands for a heavy image model in the
benchmarks; its predictions mean nothing.
"""

from pathlib import Path
from typing import Any

from inferq.onnx_export import export


def _network() -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.down(x))

    class Pixels(nn.Module):
        """uint8 RGB pixels to the normalized floats the network takes."""

        def __init__(self) -> None:
            super().__init__()
            self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
            self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.float() / 255.0 - self.mean) / self.std

    widths = [64, 128, 256, 512]
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for i, width in enumerate(widths):
        layers += [Block(cin, width, 1 if i == 0 else 2), Block(width, width, 1)]
        cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    torch.manual_seed(0)
    return nn.Sequential(Pixels(), *layers).eval()


def build_resnet18(repo: Path) -> Path:
    import torch

    path = repo / "resnet18" / "1" / "model.onnx"
    pixels = torch.zeros(1, 3, 224, 224, dtype=torch.uint8)
    return export(_network(), (pixels,), path, ["image"], ["logits"])
