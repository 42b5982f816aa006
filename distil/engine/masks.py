"""Position weights from ground-truth boxes: distil where the objects are.

Most positions of a detection feature map are background, and an unweighted feature loss is
dominated by them. With ``distill_mask: gt`` each level gets a weight map that is 1 at positions
whose cell centre lies inside a ground-truth box (and at the cell holding each box centre, so
that small objects are never lost at coarse levels) and ``background`` elsewhere.
"""

from __future__ import annotations

import torch


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
