"""Response distillation: the teacher's detections as targets, through the student's own assigner.

Prediction-level distillation that matches the student's outputs to the teacher's outputs anchor by
anchor fights the student's own assignment (a one-to-one RT-DETR and a one-to-many YOLO disagree on
which anchors should fire). Here the teacher's detections are treated like ground truth instead: they
go through the student's ``TaskAlignedAssigner``, and the class target of each anchor assigned to a
teacher box is scaled by the teacher's score, so a doubtful detection asks for a doubtful answer.

Targets per image:

- a labeled image: its ground-truth boxes (score 1), plus the teacher's boxes that duplicate none of
  them (IoU < ``DUPLICATE_IOU`` with every ground-truth box); the ground truth is never contradicted;
- an unlabeled image: the teacher's boxes, the only detection targets it ever gets.

The loss is Ultralytics' detection loss (BCE on classes over every anchor, IoU and DFL on boxes, with
the student's own gains), computed on these soft targets.
"""

from __future__ import annotations

import torch
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.metrics import box_iou
from ultralytics.utils.ops import xywh2xyxy
from ultralytics.utils.tal import make_anchors

from distil.engine.teacher_signals import Detections

DUPLICATE_IOU = 0.5


def response_targets(detections: Detections, batch: dict, n_labeled: int) -> Detections:
    """Ground truth of the labeled images, plus the teacher's boxes that are not duplicates of it.

    Args:
        detections: The teacher's detections for the whole batch (labeled images first).
        batch: The training batch: its ``batch_idx``, ``cls``, ``bboxes`` are the labeled images' ground truth.
        n_labeled: How many images at the start of the batch carry labels.

    Returns:
        Targets for every image, with scores (1 for ground truth).
    """
    gt = Detections(batch["batch_idx"].view(-1).float(), batch["cls"].view(-1).float(), batch["bboxes"].view(-1, 4),
                    torch.ones(len(batch["batch_idx"]), device=batch["bboxes"].device))
    keep = torch.ones(len(detections.scores), dtype=torch.bool, device=detections.scores.device)
    labeled = detections.batch_idx < n_labeled
    if labeled.any() and len(gt.scores):
        overlap = box_iou(xywh2xyxy(detections.bboxes[labeled]), xywh2xyxy(gt.bboxes))
        same_image = detections.batch_idx[labeled][:, None] == gt.batch_idx[None, :]
        keep[labeled] = ~((overlap >= DUPLICATE_IOU) & same_image).any(1)
    merged = [torch.cat([a, b[keep]]) for a, b in ((gt.batch_idx, detections.batch_idx), (gt.cls, detections.cls),
                                                   (gt.bboxes, detections.bboxes), (gt.scores, detections.scores))]
    order = torch.sort(merged[0], stable=True).indices  # grouped by image, as Ultralytics' batches are
    return Detections(*(values[order] for values in merged))


class ResponseLoss:
    """The student's detection loss on scored targets (see the module docstring).

    It follows ``v8DetectionLoss.get_assigned_targets_and_loss`` step by step, with one change: the
    targets carry a score, and the assigned class targets are multiplied by it.

    Args:
        criterion: The student's own ``v8DetectionLoss`` (its assigner, box loss, gains).
    """

    def __init__(self, criterion: v8DetectionLoss) -> None:
        self.criterion = criterion

    def __call__(self, preds: dict[str, torch.Tensor], targets: Detections) -> torch.Tensor:
        """Box, class and DFL losses (gains applied, not yet times the batch size), shape (3,)."""
        c = self.criterion
        loss = torch.zeros(3, device=c.device)
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        anchor_points, stride_tensor = make_anchors(preds["feats"], c.stride, 0.5)
        dtype, batch_size = pred_scores.dtype, pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=c.device, dtype=dtype) * c.stride[0]
        rows = torch.cat([targets.batch_idx[:, None], targets.cls[:, None], targets.bboxes, targets.scores[:, None]], 1)
        padded = c.preprocess(rows.to(c.device), batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes, gt_scores = padded.split((1, 4, 1), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)
        pred_bboxes = c.bbox_decode(anchor_points, pred_distri)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = c.assigner(
            pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
        if gt_scores.shape[1]:  # each anchor's class target times the score of the box it was assigned to
            target_scores = target_scores * gt_scores.squeeze(-1).gather(1, target_gt_idx)[..., None]
        target_scores_sum = target_scores.sum().clamp_(min=1)
        loss[1] = c.bce(pred_scores, target_scores.to(dtype)).sum() / target_scores_sum
        loss[0], loss[2] = c.bbox_loss(pred_distri, pred_bboxes, anchor_points, target_bboxes / stride_tensor,
                                       target_scores, target_scores_sum, fg_mask, imgsz, stride_tensor)
        return loss * loss.new_tensor([c.hyp.box, c.hyp.cls, c.hyp.dfl])

