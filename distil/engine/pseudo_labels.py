"""Offline response distillation: the teacher labels each unlabeled image once, before training.

With ``distill_det_mode: offline`` the teacher's detections from ``distill_det_conf`` up are written
as YOLO label files, one per unlabeled image, in a folder beside the runs
(``<runs>/pseudo-labels/<key>/``). The key covers the teacher file's bytes, the threshold, the image
size, the class mapping and the image list, so the labels are reused by every run that would make the
same ones (the seeds of a study) and made again when any of these changes. The unlabeled loader
reads them as labels, so Ultralytics' augmentation moves the boxes with the images, and the student
learns from them through its own assigner, as from ground truth.

What it costs: one teacher pass per image, instead of one per image and step online; the teacher
need not run during training at all (unless features are distilled too). What it gives up: the
teacher's scores (offline targets count fully) and its view of each augmented image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from ultralytics.utils import LOGGER

from distil.engine.teacher import detector

INDEX = "index.json"


def pseudo_label_key(teacher: str | Path, images: Sequence[str], conf: float, imgsz: int,
                     classes: torch.Tensor) -> str:
    """A short hash of everything the labels depend on."""
    digest = hashlib.sha1()
    digest.update(Path(teacher).read_bytes())
    digest.update(json.dumps({"conf": conf, "imgsz": imgsz, "classes": classes.tolist(),
                              "images": list(images)}).encode())
    return digest.hexdigest()[:16]


def pseudo_labels(teacher: str | Path, images: Sequence[str], conf: float, imgsz: int, classes: torch.Tensor,
                  root: Path, device=None, batch: int = 16) -> dict[str, str]:
    """Image -> its label file written from the teacher's detections (made once, then reused).

    Args:
        teacher: Teacher checkpoint.
        images: Image files.
        conf: Score from which a detection becomes a label.
        imgsz: Size the teacher reads the images at (the training size).
        classes: For each teacher class, the dataset class or -1 (see `teacher_signals.class_map`).
        root: Folder under which the labels of each key are kept.
        device: Where the teacher runs.
        batch: Images per teacher pass.
    """
    folder = root / pseudo_label_key(teacher, images, conf, imgsz, classes)
    index_file = folder / INDEX
    if index_file.exists():
        return json.loads(index_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    model = detector(teacher)
    index, boxes = {}, 0
    LOGGER.info(f"distil: the teacher labels {len(images)} unlabeled images once (score >= {conf}) into {folder}")
    for start in range(0, len(images), batch):
        chunk = list(images[start:start + batch])
        for offset, result in enumerate(model.predict(chunk, imgsz=imgsz, conf=conf, device=device, verbose=False)):
            mapped = classes[result.boxes.cls.long().cpu().clamp(0, len(classes) - 1)]
            lines = [f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}"
                     for c, (x, y, w, h) in zip(mapped.tolist(), result.boxes.xywhn.cpu().tolist()) if c >= 0]
            label = folder / f"{start + offset:07d}.txt"
            label.write_text("\n".join(lines) + ("\n" if lines else ""))
            index[chunk[offset]] = str(label)
            boxes += len(lines)
    index_file.write_text(json.dumps(index, indent=1))  # written last: a folder with it is complete
    LOGGER.info(f"distil: {boxes} pseudo-labels on {len(images)} images ({boxes / max(len(images), 1):.2f} per image)")
    return index
