"""ResNet for image classification (He et al. 2016), basic blocks, sized for small images.

stem: conv 3×3 with stride `stem_stride` (with downsample=maxpool: a stride-1 conv and a max-pool; + max-pool 2
for images over 96 px)
`stages` stages of `depth` basic blocks (conv3×3-BN-ReLU-conv3×3-BN + shortcut), width·2^i channels;
every stage after the first halves the resolution: `downsample` stride (He et al.: its first block's first
conv and shortcut have stride 2) or maxpool (a 2×2 max-pool before the stage, as plain CNNs do: a feature of
a pixel or two, like a subhalo's dent in an arc, survives a max where a strided conv samples past it)
head: global average pool, Dropout, Linear(num_classes)
Stochastic depth (Huang et al. 2016) skips a block's residual branch for a random share of the images in a
training batch, rising linearly from 0 to `stochastic_depth` at the last block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.models.densenet_cbam import StochasticDepth, linear_decay, stem


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_path: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.drop_path = StochasticDepth(drop_path) if drop_path else nn.Identity()

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.drop_path(self.bn2(self.conv2(h))) + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        width: int,
        depth: int,
        dropout: float,
        stages: int,
        stem_stride: int,
        stochastic_depth: float,
        downsample: str,
    ):
        super().__init__()
        if downsample not in ("stride", "maxpool"):
            raise ValueError(f"downsample: {downsample!r}; choose stride or maxpool")
        self.num_classes = num_classes
        layers: list[nn.Module] = [stem(in_channels, width, image_size, stem_stride, downsample == "maxpool")]
        channels = width
        drop_paths = iter(linear_decay(stochastic_depth, stages * depth))
        for s in range(stages):
            out = width * 2**s
            if s > 0 and downsample == "maxpool":
                layers.append(nn.MaxPool2d(2))
            for d in range(depth):
                stride = 2 if s > 0 and d == 0 and downsample == "stride" else 1
                layers.append(BasicBlock(channels, out, stride=stride, drop_path=next(drop_paths)))
                channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)  # each block starts as the identity: stable early training

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, S, S] -> [B, num_classes]
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1))
