"""The embedding nets of Hoffer & Ailon (2015), and a small MLP for vector data."""

from __future__ import annotations

import torch
from torch import nn

LAYER_OPTIONS = ("final_relu", "batch_norm")  # constructor choices that change a net's layers


def channels_last(batch: torch.Tensor) -> torch.Tensor:
    """An image batch (N, C, H, W) in channels-last memory order, where convolutions run faster
    (the bare MNIST net 1.33x on CPU, bench/throughput.py); other tensors unchanged. The values are
    the same up to float rounding."""
    return batch.contiguous(memory_format=torch.channels_last) if batch.ndim == 4 else batch


class EmbeddingNet(nn.Module):
    """An embedding net: maps a batch of inputs to (N, embedding_dim) vectors with ``self.net``.

    ``compute_dtype`` (e.g. ``torch.bfloat16``) runs the net under autocast (mixed precision) and
    returns float32 embeddings, so the losses and distances stay in float32; None: float32 only.
    """

    embedding_dim: int
    net: nn.Sequential
    compute_dtype: torch.dtype | None = None
    final_relu: bool | None = None  # does a ReLU end the net (None: not a choice for this net)
    batch_norm: bool | None = None  # batch norm after each conv (None: not a choice for this net)

    def layer_options(self) -> dict[str, bool]:
        """The choices among ``LAYER_OPTIONS`` that this net has, and how they were made."""
        return {name: value for name in LAYER_OPTIONS if (value := getattr(self, name)) is not None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.net, x)

    def run(self, layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``layers(x)`` (this net or a part of it) in ``compute_dtype``, returned as float32."""
        if self.compute_dtype is None:
            return layers(x)
        with torch.autocast(x.device.type, dtype=self.compute_dtype):
            return layers(x).float()


def conv(
    in_channels: int, out_channels: int, kernel: int, batch_norm: bool, stride: int = 1
) -> list[nn.Module]:
    """A conv without padding, then batch norm (Ioffe & Szegedy 2015) if ``batch_norm``."""
    layer = nn.Conv2d(in_channels, out_channels, kernel, stride=stride)
    return [layer, nn.BatchNorm2d(out_channels)] if batch_norm else [layer]


def conv_pool_block(
    in_channels: int,
    out_channels: int,
    kernel: int,
    dropout: float,
    stride: int = 1,
    batch_norm: bool = False,
) -> list[nn.Module]:
    """conv (no padding), [batch norm], ReLU, 2x2 max-pool, dropout: one stage of the papers'
    conv nets."""
    return [
        *conv(in_channels, out_channels, kernel, batch_norm, stride),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
    ]


class MLP(EmbeddingNet):
    """Vector data (e.g. the 8x8 digits as 64-d): Linear-ReLU blocks, then a linear embedding."""

    def __init__(
        self,
        in_features: int,
        embedding_dim: int = 32,
        hidden: int = 256,
        depth: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, embedding_dim))
        self.net = nn.Sequential(*layers)
        self.embedding_dim = embedding_dim


class SmallConvNet(EmbeddingNet):
    """A small conv net for tiny images such as the 8x8 digits:

    conv3 C->w, conv3 w->2w, max-pool, conv3 2w->4w, max-pool to 2x2, linear to the embedding
    (padding 1 throughout, ReLU after every conv, dropout before each pooling's successor).
    """

    def __init__(
        self, in_channels: int = 1, embedding_dim: int = 64, width: int = 16, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(16 * width, embedding_dim),
        )
        self.embedding_dim = embedding_dim


class MnistNet(EmbeddingNet):
    """The paper's MNIST net, feature maps 1-32-64-128, 128-d output, no fully connected layer.

    The paper gives only the feature maps; the filter sizes are ours: conv5 (28->24), pool (12),
    conv3 (10), pool (5), conv3 (3), 3x3 max-pool to a 128-d vector. ReLU after every conv,
    dropout between blocks as in the authors' code. ``final_relu=False`` drops the last ReLU, so
    the embedding may leave the positive orthant; on MNIST that left the accuracy as it was and
    lowered MAP@R by half a point. ``batch_norm=True`` (not in the paper) puts batch norm after
    every conv; on MNIST that raised the linear classifier's accuracy (docs/results.md).
    """

    def __init__(
        self,
        in_channels: int = 1,
        embedding_dim: int = 128,
        dropout: float = 0.25,
        final_relu: bool = True,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *conv_pool_block(in_channels, 32, 5, dropout, batch_norm=batch_norm),
            *conv_pool_block(32, 64, 3, dropout, batch_norm=batch_norm),
            *conv(64, embedding_dim, 3, batch_norm),
            *([nn.ReLU(inplace=True)] if final_relu else []),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.embedding_dim = embedding_dim
        self.final_relu = final_relu
        self.batch_norm = batch_norm


class CifarNet(EmbeddingNet):
    """The paper's CIFAR-10/SVHN net (the authors' Models/Model.lua), no padding:

    conv5 3->64, pool; conv3 64->128, pool; conv3 128->256, pool; conv2 256->128 with ReLU
    (``final_relu``, as in the code); 32 -> 28 -> 14 -> 12 -> 6 -> 4 -> 2 -> 1, a 128-d embedding.
    ``first_stride=3`` is the STL-10 variant (96 -> 31 -> 15 -> 13 -> 6 -> 4 -> 2 -> 1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        embedding_dim: int = 128,
        first_stride: int = 1,
        dropout: float = 0.25,
        final_relu: bool = True,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *conv_pool_block(in_channels, 64, 5, dropout, first_stride, batch_norm),
            *conv_pool_block(64, 128, 3, dropout, batch_norm=batch_norm),
            *conv_pool_block(128, 256, 3, dropout, batch_norm=batch_norm),
            *conv(256, embedding_dim, 2, batch_norm),
            *([nn.ReLU(inplace=True)] if final_relu else []),
            nn.Flatten(),
        )
        self.embedding_dim = embedding_dim
        self.final_relu = final_relu
        self.batch_norm = batch_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if out.shape[1] != self.embedding_dim:
            raise ValueError(
                f"CifarNet expects 32x32 inputs (96x96 with first_stride=3); got {tuple(x.shape[1:])}"
            )
        return out
