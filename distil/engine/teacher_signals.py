"""What the frozen teacher says about a batch: its feature maps, where it sees objects, what it detects.

`TeacherReader` runs the teacher once per training step on exactly the (augmented) images the
student sees, and only as far as needed: up to its last hooked layer for feature distillation alone;
the whole model when its detections are targets (``distill_det``) or, for a YOLO teacher, when its
head's scores make the feature mask (``distill_mask: teacher``).

- **Saliency** (the teacher-guided mask): for an RT-DETR, the score RT-DETR itself uses to pick its
  queries, ``max_c sigmoid(enc_score_head(enc_output(input_proj(x))))`` at every encoder position,
  computed from the decoder's inputs with the decoder's own modules (the decoder itself is not run);
  for a YOLO teacher, the largest class score of its head at every anchor. Class-agnostic, so it
  works whatever classes the teacher knows, on labeled and unlabeled images alike.
- **Detections**: an RT-DETR's decoder output (its top query-class pairs, as its own postprocess picks
  them; no NMS needed) or a YOLO teacher's post-NMS boxes, kept from ``distill_det_conf`` up, with the
  teacher's classes mapped to the dataset's by name, each with the teacher's score of every dataset class
  (the soft target). Boxes are in the batch's own frame (normalised ``cx, cy, w, h``, as ``batch["bboxes"]``).
  `teacher_rows` is the one decoding of a teacher's output: the offline labels (`distil.engine.labeling`)
  use it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.nn.modules import Detect, RTDETRDecoder
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import xyxy2xywh

from distil.engine.hooks import FeatureTap, forward_until, forward_with_head_in_fp32, head_inputs, layer_table

YOLO_TEACHER_NMS_IOU = 0.7  # Ultralytics' own default for prediction


class ClassMappingError(ValueError):
    """The teacher's classes cannot be matched to the dataset's; the message lists both."""


def class_map(teacher_names: Mapping[int, str], dataset_names: Mapping[int, str]) -> torch.Tensor:
    """For each teacher class, the dataset class of the same name (case and spaces ignored), or -1.

    Raises:
        ClassMappingError: A dataset class has no teacher class of its name (no overlap at all included).
    """
    def key(name: str) -> str:
        return " ".join(str(name).lower().replace("_", " ").split())

    by_name = {key(name): index for index, name in dataset_names.items()}
    mapping = torch.full((max(teacher_names) + 1,), -1, dtype=torch.long)
    for index, name in teacher_names.items():
        mapping[index] = by_name.get(key(name), -1)
    missing = sorted(set(by_name) - {key(name) for name in teacher_names.values()})
    if missing:
        overlap = "no class in common" if len(missing) == len(by_name) else f"no teacher class for {missing}"
        raise ClassMappingError(
            f"the teacher's detections cannot be targets here: {overlap}. Dataset classes: "
            f"{sorted(dataset_names.values())}; teacher classes: {sorted(teacher_names.values())}. Response "
            "distillation (distill_det) needs every dataset class among the teacher's, matched by name; feature "
            "distillation (distill_weight) works with any teacher."
        )
    return mapping


@dataclass
class Detections:
    """The teacher's detections of a batch, one row per box, in the batch's frame."""

    batch_idx: torch.Tensor  # (M,) image index
    cls: torch.Tensor  # (M,) dataset class
    bboxes: torch.Tensor  # (M, 4) normalised cx, cy, w, h
    scores: torch.Tensor  # (M,) teacher confidence
    probs: torch.Tensor | None = None  # (M, nc) the teacher's score of every dataset class, where known

    @classmethod
    def empty(cls, device: torch.device, classes: int | None = None) -> Detections:
        probs = None if classes is None else torch.zeros(0, classes, device=device)
        return cls(torch.zeros(0, device=device), torch.zeros(0, device=device), torch.zeros(0, 4, device=device),
                   torch.zeros(0, device=device), probs)


@dataclass
class TeacherSignals:
    """What the teacher said about one batch."""

    maps: list[torch.Tensor]  # at the distilled layers
    saliency: dict[int, torch.Tensor] | None  # stride -> (B, 1, H, W) in [0, 1]
    detections: Detections | None


class TeacherReader:
    """Reads a frozen teacher on a batch; which signals it computes is fixed at construction.

    It holds no module of the teacher (the teacher is passed to each call), so copies of the
    distillation model (Ultralytics' EMA, checkpoints) never carry a piece of the teacher.

    Args:
        teacher: The teacher (eval mode, frozen).
        feature_layers: Teacher layers whose outputs are distilled.
        saliency: Compute the teacher-guided mask.
        detections: Compute detections as targets.
        conf: Score from which a detection is kept.
        classes: For each teacher class, its dataset class or -1 (see `class_map`); needed for detections.
        cpu_bf16: On a CPU, run the teacher in bf16 (autocast), as AMP runs it in fp16 on a GPU; every
            signal comes back in fp32. Worth it only where the CPU has bf16 instructions (`cpu_computes_bf16`).
    """

    def __init__(self, teacher: nn.Module, feature_layers: Sequence[int], saliency: bool = False,
                 detections: bool = False, conf: float = 0.5, classes: torch.Tensor | None = None,
                 cpu_bf16: bool = False) -> None:
        head = teacher.model[-1]
        if (saliency or detections) and not isinstance(head, (RTDETRDecoder, Detect)):
            raise TypeError(f"the teacher's head is {type(head).__name__}: the teacher-guided mask and its "
                            "detections need an RT-DETR (RTDETRDecoder) or YOLO (Detect) teacher")
        self.rtdetr = isinstance(head, RTDETRDecoder)
        if detections and classes is None:
            raise ValueError("detections as targets need the teacher-to-dataset class map")
        self.feature_layers = list(feature_layers)
        self.head_layers = head_inputs(teacher)
        self.want_saliency, self.want_detections = saliency, detections
        self.conf, self.classes, self.cpu_bf16 = conf, classes, cpu_bf16
        self.full_forward = detections or (saliency and not self.rtdetr)
        taps = self.feature_layers + (self.head_layers if saliency else [])
        self.tap = FeatureTap(sorted(set(taps)))
        self.last_layer = max(taps)

    def saliency_strides(self, teacher: nn.Module, imgsz: int) -> list[int]:
        """The strides at which saliency exists: those of the head's inputs."""
        table = {info.index: info.stride for info in layer_table(teacher, imgsz)}
        return [table[i] for i in self.head_layers]

    @torch.no_grad()
    def __call__(self, teacher: nn.Module, images: torch.Tensor) -> TeacherSignals:
        bf16 = self.cpu_bf16 and images.device.type == "cpu"
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with self.tap.attach(teacher) as tap:
            if self.full_forward:  # the head (an RT-DETR decoder) in fp32: see forward_with_head_in_fp32
                output = forward_with_head_in_fp32(teacher, images, autocast) if bf16 else teacher(images)
            else:
                with autocast:
                    output = forward_until(teacher, images, self.last_layer)
            captured = {i: x.float().contiguous() for i, x in zip(self.tap.indices, tap.take())}
            saliency = self.read_saliency(teacher.model[-1], [captured[i] for i in self.head_layers], output,
                                          images) if self.want_saliency else None
        maps = [captured[i] for i in self.feature_layers]
        detections = self.read_detections(output, images) if self.want_detections else None
        return TeacherSignals(maps, saliency, detections)

    # saliency ------------------------------------------------------------------------------------
    def read_saliency(self, head: nn.Module, head_maps: list[torch.Tensor], output,
                      images: torch.Tensor) -> dict[int, torch.Tensor]:
        """Stride -> (B, 1, H, W): the teacher's objectness at every position of each head input."""
        if self.rtdetr:
            scores = rtdetr_encoder_scores(head, head_maps)  # (B, sum HW, nc) logits
            flat = scores.float().sigmoid().amax(-1)
        else:
            y = output[0] if isinstance(output, (tuple, list)) else output  # (B, 4 + nc, A), scores after sigmoid
            flat = y[:, 4:].float().amax(1)
        out, start = {}, 0
        for feature in head_maps:
            h, w = feature.shape[2:]
            out[images.shape[2] // h] = flat[:, start:start + h * w].reshape(-1, 1, h, w)
            start += h * w
        return out

    # detections ----------------------------------------------------------------------------------
    def read_detections(self, output, images: torch.Tensor) -> Detections:
        """Boxes from ``conf`` up whose class the dataset knows, as normalised cx, cy, w, h, with the teacher's
        score of every dataset class (``probs``)."""
        height, width = images.shape[2:]
        rows = teacher_rows(output, self.rtdetr, self.conf, (height, width))
        classes = self.classes.to(rows.boxes.device)
        dataset_cls = classes[rows.cls.clamp(0, len(classes) - 1)]
        keep = (dataset_cls >= 0) & (rows.cls < len(classes))
        columns = dataset_columns(classes)
        return Detections(rows.batch_idx[keep].float(), dataset_cls[keep].float(), rows.boxes[keep].clamp(0, 1),
                          rows.scores[keep], rows.probs[keep][:, columns])


@dataclass
class TeacherRows:
    """A teacher's detections of a batch from a score up, in its own class space."""

    batch_idx: torch.Tensor  # (M,)
    boxes: torch.Tensor  # (M, 4) cx, cy, w, h normalised to the input
    scores: torch.Tensor  # (M,) the score of the box's class
    cls: torch.Tensor  # (M,) teacher class
    probs: torch.Tensor  # (M, nc) the teacher's score of every class for this box


def teacher_rows(output, rtdetr: bool, conf: float, size: tuple[int, int]) -> TeacherRows:
    """Decode a teacher's eval-mode output into scored boxes, each with its whole class-score vector.

    RT-DETR: the decoder's last layer, selected as its own ``postprocess`` does (the top (query, class) pairs by
    sigmoid score, one row per pair), each row carrying the sigmoid scores of its query. YOLO: its head's boxes
    after Ultralytics' NMS (IoU 0.7), each with the class scores of the anchor it came from.

    Args:
        output: The model's output in eval mode: RT-DETR ``(y, (dec_bboxes, dec_scores, ...))``, YOLO ``(y, ...)``.
        rtdetr: Which of the two it is.
        conf: Keep rows from this score up.
        size: The input's (height, width) in pixels (YOLO boxes are in pixels).
    """
    if rtdetr:
        dec_bboxes, dec_scores = output[1][0], output[1][1]
        boxes, probs = dec_bboxes[-1].float(), dec_scores[-1].float().sigmoid()  # (B, Q, 4), (B, Q, nc)
        nc = probs.shape[-1]
        top, index = probs.flatten(1).topk(probs.shape[1], dim=1)  # as RTDETRDecoder.postprocess
        query = torch.div(index, nc, rounding_mode="floor")
        batch_idx = torch.arange(len(probs), device=probs.device)[:, None].expand_as(query)
        keep = top >= conf
        q, b = query[keep], batch_idx[keep]
        return TeacherRows(b.float(), boxes[b, q], top[keep], (index - query * nc)[keep], probs[b, q])
    y = (output[0] if isinstance(output, (tuple, list)) else output).float()  # (B, 4 + nc, A), scores after sigmoid
    kept, indices = non_max_suppression(y, conf_thres=conf, iou_thres=YOLO_TEACHER_NMS_IOU, return_idxs=True)
    height, width = size
    scale = y.new_tensor([width, height, width, height])
    batch_idx = torch.cat([torch.full((len(k),), i, device=y.device) for i, k in enumerate(kept)]).float()
    rows = torch.cat(kept)
    probs = torch.cat([y[i, 4:, idx.long().view(-1)].T for i, idx in enumerate(indices)])
    return TeacherRows(batch_idx, xyxy2xywh(rows[:, :4]) / scale, rows[:, 4], rows[:, 5].long(), probs)


def dataset_columns(classes: torch.Tensor) -> torch.Tensor:
    """For each dataset class, the teacher class mapped to it (`class_map` makes sure there is one)."""
    wanted = int(classes.max()) + 1 if bool((classes >= 0).any()) else 0
    return torch.stack([torch.nonzero(classes == d)[0, 0] for d in range(wanted)]) if wanted else \
        torch.zeros(0, dtype=torch.long, device=classes.device)


def rtdetr_encoder_scores(decoder: RTDETRDecoder, head_maps: list[torch.Tensor]) -> torch.Tensor:
    """RT-DETR's class logits at every encoder position, as its query selection computes them.

    The same modules and the same order as ``RTDETRDecoder._get_decoder_input`` (``enc_output`` on the
    projected, flattened decoder inputs masked by the valid anchors, then ``enc_score_head``), before its
    top-k selection: (B, sum of H*W over levels, nc).
    """
    feats, shapes = decoder._get_encoder_input(head_maps)
    _, valid_mask = decoder._generate_anchors(shapes, feats)
    return decoder.enc_score_head(decoder.enc_output(valid_mask * feats))
