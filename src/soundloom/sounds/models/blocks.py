"""Convolutional building blocks: strided down/up stages that keep width at low resolution.

Images are spectrograms ``(B, C, rows, frames)``. Early stages halve both axes with few
channels; channels grow only as resolution shrinks, so the cost per stage stays roughly flat
(the seed ran 512 filters at full resolution: ~0.2 CPU-s per example).
"""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    """Residual 3x3 conv block at constant shape ``(B, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def down_stage(c_in: int, c_out: int, res: bool) -> nn.Sequential:
    """Halve ``(H, W)`` with a stride-2 4x4 conv: ``(B, c_in, H, W) -> (B, c_out, H/2, W/2)``."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
    if res:
        layers.append(ResBlock(c_out))
    return nn.Sequential(*layers)


def up_stage(c_in: int, c_out: int, res: bool) -> nn.Sequential:
    """Double ``(H, W)``: ``(B, c_in, H, W) -> (B, c_out, 2H, 2W)``."""
    layers: list[nn.Module] = []
    if res:
        layers.append(ResBlock(c_in))
    layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def padded_size(n: int, factor: int) -> int:
    """Smallest multiple of ``factor`` that is >= ``n``."""
    return -(-n // factor) * factor
