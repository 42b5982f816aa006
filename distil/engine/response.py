"""Response distillation: the teacher's detections as targets, through the student's own assigner.

Prediction-level distillation that matches the student's outputs to the teacher's outputs anchor by
anchor fights the student's own assignment (a one-to-one RT-DETR and a one-to-many YOLO disagree on
which anchors should fire). Here the teacher's detections are treated like ground truth instead: they
go through the student's ``TaskAlignedAssigner``, and the class target of each anchor assigned to a
teacher box is scaled by the teacher's score, so a doubtful detection asks for a doubtful answer
(``distill_det_targets: score``). With ``probs`` the target is the teacher's score of every class for that
box (its class vector, the softest target); with ``hard`` it is 1 for the box's class, as for ground truth.

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
    gt_cls = batch["cls"].view(-1).float()
    gt_probs = None
    if detections.probs is not None:  # ground truth is certain: a one-hot class vector
        gt_probs = torch.nn.functional.one_hot(gt_cls.long(), detections.probs.shape[1]).to(detections.probs)
    gt = Detections(batch["batch_idx"].view(-1).float(), gt_cls, batch["bboxes"].view(-1, 4),
                    torch.ones(len(batch["batch_idx"]), device=batch["bboxes"].device), gt_probs)
    keep = torch.ones(len(detections.scores), dtype=torch.bool, device=detections.scores.device)
    labeled = detections.batch_idx < n_labeled
    if labeled.any() and len(gt.scores):
        overlap = box_iou(xywh2xyxy(detections.bboxes[labeled]), xywh2xyxy(gt.bboxes))
        same_image = detections.batch_idx[labeled][:, None] == gt.batch_idx[None, :]
        keep[labeled] = ~((overlap >= DUPLICATE_IOU) & same_image).any(1)
    pairs = [(gt.batch_idx, detections.batch_idx), (gt.cls, detections.cls), (gt.bboxes, detections.bboxes),
             (gt.scores, detections.scores)] + ([(gt.probs, detections.probs)] if gt.probs is not None else [])
    merged = [torch.cat([a, b[keep]]) for a, b in pairs]
    order = torch.sort(merged[0], stable=True).indices  # grouped by image, as Ultralytics' batches are
    return Detections(*(values[order] for values in merged))


class ResponseLoss:
    """The student's detection loss on scored targets (see the module docstring).

    It follows ``v8DetectionLoss.get_assigned_targets_and_loss`` step by step, with one change: the
    targets carry a score (and a class vector), and the assigned class targets follow them. For an anchor
    assigned to box j with the assigner's normalised alignment a (its own quality weighting):

        score:  t_c = a * s_j * [c = c_j]      probs:  t_c = a * p_jc      hard:  t_c = a * [c = c_j]

    Args:
        criterion: The student's own ``v8DetectionLoss`` (its assigner, box loss, gains).
        class_targets: ``score``, ``probs`` or ``hard`` (``distill_det_targets``).
    """

    def __init__(self, criterion: v8DetectionLoss, class_targets: str = "score") -> None:
        self.criterion = criterion
        self.class_targets = class_targets

    def __call__(self, preds: dict[str, torch.Tensor], targets: Detections) -> torch.Tensor:
        """Box, class and DFL losses (gains applied, not yet times the batch size), shape (3,)."""
        c = self.criterion
        loss = torch.zeros(3, device=c.device)
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        anchor_points, stride_tensor = make_anchors(preds["feats"], c.stride, 0.5)
        dtype, batch_size = pred_scores.dtype, pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=c.device, dtype=dtype) * c.stride[0]
        probs = self.class_targets == "probs" and targets.probs is not None
        columns = [targets.batch_idx[:, None], targets.cls[:, None], targets.bboxes, targets.scores[:, None]]
        rows = torch.cat(columns + ([targets.probs.to(targets.scores)] if probs else []), 1)
        padded = c.preprocess(rows.to(c.device), batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes, gt_scores, gt_probs = padded.split((1, 4, 1, padded.shape[-1] - 6), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)
        pred_bboxes = c.bbox_decode(anchor_points, pred_distri)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = c.assigner(
            pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
        if gt_scores.shape[1] and probs:  # each anchor's alignment times the class vector of its box
            alignment = target_scores.amax(-1, keepdim=True)
            index = target_gt_idx[..., None].expand(-1, -1, gt_probs.shape[-1])
            target_scores = alignment * gt_probs.gather(1, index)
        elif gt_scores.shape[1] and self.class_targets != "hard":  # times the score of the box it was assigned to
            target_scores = target_scores * gt_scores.squeeze(-1).gather(1, target_gt_idx)[..., None]
        target_scores_sum = target_scores.sum().clamp_(min=1)
        loss[1] = c.bce(pred_scores, target_scores.to(dtype)).sum() / target_scores_sum
        loss[0], loss[2] = c.bbox_loss(pred_distri, pred_bboxes, anchor_points, target_bboxes / stride_tensor,
                                       target_scores, target_scores_sum, fg_mask, imgsz, stride_tensor)
        return loss * loss.new_tensor([c.hyp.box, c.hyp.cls, c.hyp.dfl])

