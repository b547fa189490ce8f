"""DenseNet with CBAM attention (the original lensing script's network; Huang et al. 2017, Woo et al. 2018).

    stem: conv 3×3 with stride `stem_stride` (downsample=maxpool: a stride-1 conv and a max-pool)
          (+ max-pool 2 for images over 96 px)
    `blocks` × [dense block of `depth` layers (BN-ReLU-conv1×1(4k)-BN-ReLU-conv3×3(k), concatenated),
                CBAM (channel then spatial attention), transition (BN-ReLU-conv1×1(reduction·C)-pool 2:
                average as in the paper, `downsample=avgpool`, or max)]
                (no transition after the last block)
    neck: BN-ReLU, global average pool, Linear(C, neck_dim)-ReLU-Dropout, Linear(neck_dim, num_classes)
`width` is the growth rate k; `depth` the layers per dense block. `attention_init=neutral` starts both CBAM
gates at 1/2 everywhere (their last layer zeroed); `kaiming` initialises them like every other conv.
Stochastic depth drops a dense layer's new features for a random share of the images in a training batch,
rising linearly from 0 to `stochastic_depth` at the last layer (Huang et al. 2016's linear decay rule).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def stem(in_channels: int, out_channels: int, image_size: int, stride: int, maxpool: bool) -> nn.Sequential:
    """Downsampling at once (stride 2) makes every later layer 4× cheaper but blurs features of a pixel or two
    (a subhalo's dent in an arc at 64 px): ``maxpool`` convolves at full resolution and keeps the strongest
    response of each 2×2 instead of a strided conv's one sample in four. Images over 96 px get one more halving."""
    pooled = maxpool and stride > 1
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, stride=1 if pooled else stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pooled:
        layers.append(nn.MaxPool2d(stride))
    if image_size > 96:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class StochasticDepth(nn.Module):
    """Per image, drops its input with probability p during training and scales the rest by 1/(1-p), so that
    evaluation runs the whole network as it is. Applied to a residual branch or to a dense layer's output."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def linear_decay(p_last: float, n: int) -> list[float]:
    """Drop probabilities of n layers: from p_last/n for the first up to p_last for the last."""
    return [p_last * (i + 1) / n for i in range(n)]


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

    def start_neutral(self) -> None:
        """Zero the last layer of both gates: each starts at sigmoid(0) = 1/2 everywhere, a uniform scaling, and
        learns where to look from there. Randomly initialised, the spatial gate starts as a mask that follows
        the image's brightness (the max over channels is high on the arcs) and hides a faint subhalo's dent."""
        nn.init.zeros_(self.channel.mlp[2].weight)
        nn.init.zeros_(self.channel.mlp[2].bias)
        nn.init.zeros_(self.spatial.conv.weight)


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, dropout: float, drop_path: float):
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
        self.drop_path = StochasticDepth(drop_path) if drop_path else nn.Identity()

    def forward(self, x):
        return torch.cat([x, self.drop_path(self.drop(self.body(x)))], dim=1)


class Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, maxpool: bool):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.MaxPool2d(2) if maxpool else nn.AvgPool2d(2),
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
        stem_stride: int,
        stochastic_depth: float,
        downsample: str,
        attention_init: str,
    ):
        super().__init__()
        if downsample not in ("avgpool", "maxpool"):
            raise ValueError(f"downsample: {downsample!r}; choose avgpool or maxpool")
        if attention_init not in ("neutral", "kaiming"):
            raise ValueError(f"attention_init: {attention_init!r}; choose neutral or kaiming")
        self.num_classes = num_classes
        channels = 2 * width
        maxpool = downsample == "maxpool"
        layers: list[nn.Module] = [stem(in_channels, channels, image_size, stem_stride, maxpool)]
        drop_paths = iter(linear_decay(stochastic_depth, blocks * depth))
        for b in range(blocks):
            for _ in range(depth):
                # light in-block dropout; the neck's is full
                layers.append(DenseLayer(channels, width, dropout / 2, next(drop_paths)))
                channels += width
            layers.append(CBAM(channels, attention_reduction))
            if b < blocks - 1:
                out = max(int(channels * reduction), width)
                layers.append(Transition(channels, out, maxpool))
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
        if attention_init == "neutral":  # after the loop above, which would draw these convs again
            for m in self.modules():
                if isinstance(m, CBAM):
                    m.start_neutral()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, S, S] -> [B, num_classes]
        h = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.head(self.neck(h))
