"""DenseNet with CBAM attention (the lensing seed's network; Huang et al. 2017, Woo et al. 2018).

    stem: conv 3×3 (stride 2, or 2 + max-pool 2 for images over 96 px, so the dense blocks see ≤ ~48 px)
    `blocks` × [dense block of `depth` layers (BN-ReLU-conv1×1(4k)-BN-ReLU-conv3×3(k), concatenated),
                CBAM (channel then spatial attention), transition (BN-ReLU-conv1×1(reduction·C)-avg-pool 2)]
                (no transition after the last block)
    neck: BN-ReLU, global average pool, Linear(C, neck_dim)-ReLU-Dropout, Linear(neck_dim, num_classes)
`width` is the growth rate k; `depth` the layers per dense block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def stem(in_channels: int, out_channels: int, image_size: int) -> nn.Sequential:
    """Early downsampling keeps the cost per image low; larger images get one more halving."""
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if image_size > 96:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ChannelAttention(nn.Module):
    """Which feature maps matter: a shared MLP over the average- and max-pooled channel descriptors."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x):
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """Where to look: a 7×7 conv over the channel-wise mean and max maps (e.g. the arcs, not the sky)."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x):
        return self.spatial(self.channel(x))


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, 4 * growth, 1, bias=False),  # bottleneck
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(inplace=True),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )
        self.drop = nn.Dropout2d(dropout) if dropout else nn.Identity()

    def forward(self, x):
        return torch.cat([x, self.drop(self.body(x))], dim=1)


class Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2),
        )


class DenseNetCBAM(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        width: int,
        depth: int,
        dropout: float,
        blocks: int,
        reduction: float,
        attention_reduction: int,
        neck_dim: int,
    ):
        super().__init__()
        self.num_classes = num_classes
        channels = 2 * width
        layers: list[nn.Module] = [stem(in_channels, channels, image_size)]
        for b in range(blocks):
            for _ in range(depth):
                layers.append(DenseLayer(channels, width, dropout / 2))  # light in-block dropout; the neck's is full
                channels += width
            layers.append(CBAM(channels, attention_reduction))
            if b < blocks - 1:
                out = max(int(channels * reduction), width)
                layers.append(Transition(channels, out))
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.neck = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, neck_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.head = nn.Linear(neck_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, S, S] -> [B, num_classes]
        h = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.head(self.neck(h))
