"""Learnable adapters that map student feature maps into the teacher's channel space.

A YOLOv8s neck gives 128/256/512 channels where an RT-DETR-x encoder gives 384 at every level,
so the two cannot be compared directly. One 1x1 convolution per level (a per-position linear map,
with bias) projects the student's channels to the teacher's; it is trained with the student and
dropped at the end, so the deployed student is unchanged in size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureAdapter(nn.ModuleList):
    """One 1x1 conv per level, student channels -> teacher channels."""

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int]) -> None:
        if len(student_channels) != len(teacher_channels):
            raise ValueError(f"{len(student_channels)} student levels against {len(teacher_channels)} teacher levels")
        super().__init__(nn.Conv2d(s, t, kernel_size=1) for s, t in zip(student_channels, teacher_channels))

    @property
    def channels(self) -> list[tuple[int, int]]:
        """(student, teacher) channels per level."""
        return [(conv.in_channels, conv.out_channels) for conv in self]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Project each level's student map."""
        return [conv(x) for conv, x in zip(self, features)]
