"""The MNIST net of Hoffer & Ailon's semi-supervised metric embedding (arXiv 1611.01449),
after the authors' models/MNIST_contrast.lua.
"""

from __future__ import annotations

from torch import nn

from .nets import EmbeddingNet


def _block(in_channels: int, out_channels: int, kernel: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, padding=1)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return [*layers, nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels)]


class SemiSupMnistNet(EmbeddingNet):
    """conv5 1->16 + pool, conv3 16->32, conv3 32->64, conv3 64->64 + pool, conv3 64->128, each
    followed by ReLU and batch norm (padding 1: 28 -> 26 -> 13 -> 13 -> 13 -> 13 -> 6 -> 6), then
    average pooling over the map (the authors' 6x6 average pool) to a 128-d embedding.
    """

    def __init__(self, in_channels: int = 1, embedding_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_block(in_channels, 16, 5, pool=True),
            *_block(16, 32, 3, pool=False),
            *_block(32, 64, 3, pool=False),
            *_block(64, 64, 3, pool=True),
            *_block(64, embedding_dim, 3, pool=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embedding_dim = embedding_dim
