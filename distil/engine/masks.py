"""Position weights for the feature loss: distil where the objects are.

Most positions of a detection feature map are background, and an unweighted feature loss is
dominated by them. Two masks, both in ``[background, 1]``:

- ``distill_mask: gt``: 1 at positions whose cell centre lies inside a ground-truth box (and at the
  cell holding each box centre, so that small objects are never lost at coarse levels), ``background``
  elsewhere. It needs labels.
- ``distill_mask: teacher``: ``background + (1 - background) * saliency``, the teacher's own belief
  that an object is there (`distil.engine.teacher_signals`). Class-agnostic and label-free, so it
  works on unlabeled images and with a teacher whose classes are not the dataset's.

The losses normalise by the weights (a weighted mean), so a mask changes where the loss looks, not its
scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def foreground_weights(
    bboxes: torch.Tensor,
    batch_idx: torch.Tensor,
    batch_size: int,
    size: tuple[int, int],
    background: float = 0.1,
) -> torch.Tensor:
    """Weight map of one level.

    Args:
        bboxes: (M, 4) boxes as normalised ``cx, cy, w, h`` (the Ultralytics batch format).
        batch_idx: (M,) image index of each box.
        batch_size: Number of images N.
        size: (H, W) of the level's feature map.
        background: Weight of positions outside every box.

    Returns:
        (N, 1, H, W) weights in ``[background, 1]``.
    """
    h, w = size
    device = bboxes.device
    fg = torch.zeros(batch_size, h * w, device=device)
    if bboxes.numel():
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        cx, cy, bw, bh = bboxes.float().unbind(1)
        inside_x = (xs[None] >= (cx - bw / 2)[:, None]) & (xs[None] <= (cx + bw / 2)[:, None])  # (M, W)
        inside_y = (ys[None] >= (cy - bh / 2)[:, None]) & (ys[None] <= (cy + bh / 2)[:, None])  # (M, H)
        inside = (inside_y[:, :, None] & inside_x[:, None, :]).flatten(1).float()  # (M, H*W)
        centre_cell = (cy * h).long().clamp(0, h - 1) * w + (cx * w).long().clamp(0, w - 1)
        inside[torch.arange(len(inside), device=device), centre_cell] = 1.0
        fg.scatter_reduce_(0, batch_idx.long().view(-1, 1).expand_as(inside), inside, "amax")
    return (background + (1 - background) * fg).view(batch_size, 1, h, w)


def saliency_weights(saliency: torch.Tensor, size: tuple[int, int], background: float = 0.1) -> torch.Tensor:
    """Weight map of one level from the teacher's saliency.

    Args:
        saliency: (N, 1, h, w) objectness in [0, 1] at the stride of this level (resized if h, w differ).
        size: (H, W) of the level's feature map.
        background: Weight where the teacher sees nothing.

    Returns:
        (N, 1, H, W) weights in ``[background, 1]``.
    """
    if tuple(saliency.shape[2:]) != tuple(size):
        saliency = F.interpolate(saliency, size=size, mode="bilinear", align_corners=False)
    return background + (1 - background) * saliency.clamp(0, 1)
