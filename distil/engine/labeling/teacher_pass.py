"""One worker's share of the labeling: the teacher over a list of image files, in batches, as scored boxes.

The images are decoded in a thread pool while the teacher runs on the batch before (OpenCV releases the GIL
while it decodes), brought to the teacher's own inference frame as its Ultralytics predictor does it
(RT-DETR: stretched to the square input; YOLO: letterboxed, not rect, so that a box never depends on which
images shared its batch), and read by the same decoding the online path uses (`teacher_signals.teacher_rows`).
Boxes are stored normalised to the original image, so they do not depend on the labeling size either.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.nn.modules import RTDETRDecoder
from ultralytics.utils import ops
from ultralytics.utils.patches import imread

from distil.engine.hooks import forward_with_head_in_fp32
from distil.engine.labeling.store import ShardLabels
from distil.engine.teacher import cpu_computes_bf16, load_teacher, ready_for_inference
from distil.engine.teacher_signals import teacher_rows


def read_image(path: str) -> np.ndarray | None:
    """The image as BGR, or None where it cannot be decoded (a damaged or non-image file)."""
    try:
        return imread(path)
    except Exception:  # any decoder failure means the file is not a readable image
        return None


class TeacherLabeler:
    """A frozen teacher that turns image files into `ShardLabels`.

    Args:
        teacher: The teacher checkpoint.
        imgsz: The square size the teacher reads images at.
        conf: Boxes from this score up are kept.
        device: Where the teacher runs (``'cpu'``, ``'cuda:0'``, ...).
        half: fp16 on a GPU; bf16 on a CPU with bf16 units (fp32 elsewhere).
        batch: Images per teacher pass.
        decode_threads: Threads decoding images ahead of the teacher.
    """

    def __init__(self, teacher: str | Path, imgsz: int, conf: float, device: str | torch.device = "cpu",
                 half: bool = False, batch: int = 16, decode_threads: int = 2) -> None:
        self.device = torch.device(device)
        model = load_teacher(teacher).to(self.device)
        self.rtdetr = isinstance(model.model[-1], RTDETRDecoder)
        self.fp16 = half and self.device.type == "cuda"
        self.bf16 = half and self.device.type == "cpu" and cpu_computes_bf16()
        self.model = ready_for_inference(model.half() if self.fp16 else model)
        self.classes = len(model.names)
        self.imgsz, self.conf, self.batch = imgsz, conf, batch
        self.frame = LetterBox((imgsz, imgsz), auto=False, scale_fill=self.rtdetr)  # the teacher's predictor's frame
        self.pool = ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix="decode")

    def worker(self) -> dict:
        """Which process, on which machine and device, does the labeling (recorded in each shard)."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "device": str(self.device)}

    def __call__(self, files: Sequence[str]) -> ShardLabels:
        """The teacher's boxes on ``files``; an image that cannot be decoded gets none and is listed."""
        started, cpu_started = time.time(), time.process_time()
        chunks = [list(files[i:i + self.batch]) for i in range(0, len(files), self.batch)]
        parts, unreadable = [], []
        upcoming = self.decode(chunks[0]) if chunks else []
        for index, start in enumerate(range(0, len(files), self.batch)):
            images = [future.result() for future in upcoming]
            if index + 1 < len(chunks):  # the next batch decodes while the teacher reads this one
                upcoming = self.decode(chunks[index + 1])
            readable = [i for i, image in enumerate(images) if image is not None]
            unreadable += [start + i for i, image in enumerate(images) if image is None]
            if readable:
                parts.append(self.read([images[i] for i in readable], [start + i for i in readable]))
        if not parts:
            labels = ShardLabels.empty(self.classes)
        else:
            labels = ShardLabels(*(np.concatenate([getattr(p, name) for p in parts])
                                   for name in ("image", "boxes", "scores", "cls", "probs")))
        labels.unreadable = unreadable
        labels.worker = {**self.worker(), "wall_s": round(time.time() - started, 3),
                         "cpu_s": round(time.process_time() - cpu_started, 3)}  # this process's, all its threads
        return labels

    def decode(self, files: Sequence[str]) -> list[Future]:
        return [self.pool.submit(read_image, str(file)) for file in files]

    @torch.no_grad()
    def read(self, images: list[np.ndarray], rows: list[int]) -> ShardLabels:
        """The teacher's boxes on decoded images; ``rows`` are their places in the shard."""
        framed = np.stack([self.frame(image=image) for image in images])
        x = torch.from_numpy(framed).to(self.device).permute(0, 3, 1, 2).flip(1)  # BHWC BGR -> BCHW RGB
        x = (x.half() if self.fp16 else x.float()).div_(255)
        if self.bf16:
            output = forward_with_head_in_fp32(self.model, x, torch.autocast("cpu", dtype=torch.bfloat16))
        else:
            output = self.model(x)
        found = teacher_rows(output, self.rtdetr, self.conf, (self.imgsz, self.imgsz))
        image = found.batch_idx.long().cpu().numpy()
        boxes = found.boxes.float().cpu().numpy()
        if not self.rtdetr:  # letterboxed: back to each image's own frame (a stretch keeps normalised coordinates)
            boxes = self.unletterbox(boxes, image, [im.shape[:2] for im in images])
        return ShardLabels(np.asarray(rows, np.int32)[image], boxes.clip(0, 1).astype(np.float32),
                           found.scores.float().cpu().numpy(), found.cls.long().cpu().numpy().astype(np.int32),
                           found.probs.float().cpu().numpy())

    def unletterbox(self, boxes: np.ndarray, image: np.ndarray, shapes: list[tuple[int, int]]) -> np.ndarray:
        """Normalised boxes of the letterboxed input -> normalised boxes of each original image."""
        out = np.zeros_like(boxes)
        for i, (height, width) in enumerate(shapes):
            mine = image == i
            if not mine.any():
                continue
            xyxy = ops.xywh2xyxy(torch.from_numpy(boxes[mine] * self.imgsz))
            xyxy = ops.scale_boxes((self.imgsz, self.imgsz), xyxy, (height, width))
            out[mine] = (ops.xyxy2xywh(xyxy) / torch.tensor([width, height, width, height])).numpy()
        return out
