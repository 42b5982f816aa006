"""Deployment: export a distilled student to ONNX and check it detects what the PyTorch model detects.

The distilled ``best.pt`` is a plain YOLO model, so Ultralytics exports it like any other, and
Ultralytics' own predictor runs the ``.onnx`` file in onnxruntime. `compare_detections` matches
the two models' boxes image by image (same class, best IoU) and reports the largest differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou
from ultralytics import YOLO


def export_onnx(checkpoint: str | Path, imgsz: int) -> Path:
    """Export a YOLO checkpoint to ONNX (beside it, as Ultralytics does); returns the ``.onnx`` path."""
    return Path(YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, verbose=False))


@dataclass
class Parity:
    """How far two models' detections are apart over a set of images."""

    images: int
    matched: int
    unmatched: int  # detections present in one model's output only
    max_box_px: float  # largest corner difference of a matched pair, in pixels
    max_score: float  # largest confidence difference of a matched pair

    def within(self, box_px: float, score: float) -> bool:
        return self.unmatched == 0 and self.max_box_px <= box_px and self.max_score <= score


def match_pairs(iou: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, highest IoU first, of pairs above ``threshold``.

    Ultralytics' ``match_predictions`` marks hits per IoU threshold but does not return the pairs, which the box and
    score differences need; scipy's assignment would be a dependency for what the greedy pass does on near-identical
    detections.
    """
    pairs, used_a, used_b = [], set(), set()
    for i, j in sorted(zip(*np.nonzero(iou > threshold)), key=lambda ij: -iou[ij]):
        if i not in used_a and j not in used_b:
            pairs.append((int(i), int(j)))
            used_a.add(i)
            used_b.add(j)
    return pairs


def compare_detections(reference, candidate, images: Sequence, imgsz: int, conf: float = 0.25,
                       device: str | None = "cpu", borderline: float = 0.01) -> Parity:
    """Run both models on the images and match their detections (same class, IoU > 0.5).

    A detection found by one model only counts as unmatched unless its confidence is within
    ``borderline`` of the threshold (a tiny score difference may put it on either side).
    """
    matched = unmatched = 0
    max_box = max_score = 0.0
    for image in images:
        a = reference.predict(image, imgsz=imgsz, conf=conf, device=device, verbose=False)[0].boxes
        b = candidate.predict(image, imgsz=imgsz, conf=conf, device=device, verbose=False)[0].boxes
        boxes_a, boxes_b = a.xyxy.cpu().numpy(), b.xyxy.cpu().numpy()
        scores_a, scores_b = a.conf.cpu().numpy(), b.conf.cpu().numpy()
        iou = box_iou(torch.from_numpy(boxes_a), torch.from_numpy(boxes_b)).numpy()
        iou[a.cls.cpu().numpy()[:, None] != b.cls.cpu().numpy()[None, :]] = 0
        pairs = match_pairs(iou)
        for i, j in pairs:
            max_box = max(max_box, float(np.abs(boxes_a[i] - boxes_b[j]).max()))
            max_score = max(max_score, float(abs(scores_a[i] - scores_b[j])))
        matched += len(pairs)
        lone = [s for k, s in enumerate(scores_a) if k not in {i for i, _ in pairs}]
        lone += [s for k, s in enumerate(scores_b) if k not in {j for _, j in pairs}]
        unmatched += int(sum(s > conf + borderline for s in lone))
    return Parity(len(images), matched, unmatched, max_box, max_score)
