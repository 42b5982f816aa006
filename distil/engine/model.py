"""The distillation wrapper: frozen teacher + student + adapters -> detection loss + feature loss.

`FeatureDistillationModel` subclasses Ultralytics' `DistillationModel` (``ultralytics/nn/distill_model.py``)
for what Ultralytics does with any instance of it: `BaseTrainer` freezes every ``teacher_model.``
parameter and keeps the teacher's BatchNorms in eval mode; `ModelEMA` copies the model without its
teacher; `strip_optimizer` turns ``best.pt``/``last.pt`` into the plain ``student_model`` at the end
of training; the base class delegates the criterion, `fuse` and head attributes to the student. Those
helpers find the parts by attribute name, so the names are theirs: ``teacher_model``,
``student_model``, and ``projector`` for the adapters (the trainer reads ``ema.projector``).

What it replaces: how features are found and compared. Layers are paired by stride from the two
heads' inputs (the base class only knows YOLO ``Detect`` heads), the teacher runs only up to its last
hooked layer, and the loss comes from `distil.engine.losses`. The base ``__init__`` is not called (it
looks for a Detect head in the teacher); `loss` and `__getstate__`/`__setstate__` are overridden.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from ultralytics.nn.distill_model import DistillationModel
from ultralytics.nn.modules import Detect
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import copy_attr

from distil.engine.adapter import FeatureAdapter
from distil.engine.hooks import FeatureTap, forward_until
from distil.engine.losses import build_loss
from distil.engine.masks import foreground_weights
from distil.engine.pairing import LevelPair, pair_layers
from distil.engine.settings import DistillSettings
from distil.engine.teacher import load_teacher


def check_student(student: nn.Module) -> None:
    """The student must be a YOLO detector: its head a ``Detect`` (the deployable model).

    Raises:
        TypeError: Another head (e.g. an RT-DETR decoder), with what to use instead.
    """
    head = student.model[-1] if hasattr(student, "model") else None
    if not isinstance(head, Detect):
        raise TypeError(f"the student must be a YOLO detector with a Detect head, got head "
                        f"{type(head).__name__}; use a YOLO model such as yolov8s.yaml or yolov8s.pt")


class FeatureDistillationModel(DistillationModel):
    """Teacher-student pair for feature distillation across architectures (e.g. RT-DETR -> YOLO).

    Attributes:
        teacher_model (nn.Module | None): Frozen teacher; None in EMA copies and checkpoints.
        student_model (nn.Module): The YOLO student being trained.
        projector (FeatureAdapter): 1x1-conv adapters, student channels -> teacher channels.
        feature_loss (FeatureLoss): The feature loss from the registry.
        pairs (list[LevelPair]): The resolved levels (layers, shapes, strides).
        settings (DistillSettings): What this distillation was asked to do.
        nonfinite (list[dict]): Steps and levels whose feature loss was NaN/Inf (skipped).
    """

    def __init__(self, teacher: str | Path | nn.Module, student: nn.Module, settings: DistillSettings,
                 imgsz: int = 640) -> None:
        """Load and freeze the teacher, pair layers, build adapters and loss, and hook both models.

        Args:
            teacher: Teacher checkpoint, YAML or module.
            student: Student DetectionModel (its ``args`` carry the trainer's arguments).
            settings: Validated distillation settings.
            imgsz: Input size used to measure feature shapes.

        Raises:
            PairingError: The layers cannot be paired.
        """
        nn.Module.__init__(self)  # the base __init__ finds layers through a Detect head only
        check_student(student)
        device = next(student.parameters()).device
        self.teacher_model = load_teacher(teacher).to(device)
        self.student_model = student
        self.settings = settings
        self.pairs: list[LevelPair] = pair_layers(
            self.teacher_model, student, imgsz, settings.distill_teacher_layers, settings.distill_student_layers
        )
        self.feats_idx = [p.student.index for p in self.pairs]
        self.teacher_feats_idx = [p.teacher.index for p in self.pairs]
        self.projector = FeatureAdapter([p.student.channels for p in self.pairs],
                                        [p.teacher.channels for p in self.pairs]).to(device)
        self.feature_loss = build_loss(settings.distill_loss, settings.distill_loss_args)
        self.steps = 0
        self.nonfinite: list[dict] = []
        self._teacher_tap = FeatureTap(self.teacher_feats_idx)
        self._student_tap = FeatureTap(self.feats_idx)
        copy_attr(self, student)  # names, nc, stride, args, yaml: what the trainer reads off its model

    @property
    def level_names(self) -> list[str]:
        """``p3``, ``p4``, ... one per level."""
        return [p.name for p in self.pairs]

    def loss_keys(self) -> list[str]:
        """The distillation entries of the loss dict: the total, then one per level."""
        return ["dis_loss", *(f"dis_{name}" for name in self.level_names)]

    # hooks -----------------------------------------------------------------------------------
    # The taps are attached only inside `loss` (a training step), so no hook is ever pickled with
    # the model, and validation or export forwards capture nothing.
    def _register_feature_hooks(self) -> None:
        """Nothing to do: hooks live only for the duration of a training step."""

    def _remove_feature_hooks(self) -> None:
        """Detach both taps (Ultralytics calls this before saving the bare student)."""
        self._student_tap.remove()
        self._teacher_tap.remove()

    def __getstate__(self) -> dict:
        """Plain state: the base class's version expects its own hook bookkeeping."""
        return self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        """Plain state (see `__getstate__`)."""
        self.__dict__.update(state)

    # loss ------------------------------------------------------------------------------------
    def loss(self, batch: dict, preds=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Detection loss plus the weighted feature loss (training), or the detection loss alone.

        Args:
            batch: Ultralytics training batch (``img`` normalised to [0, 1], ``bboxes``, ``batch_idx``, ...).
            preds: Student predictions, given by the validator.

        Returns:
            The loss vector (box, cls, dfl, distill; each already times the batch size) and the
            detached loss items with ``dis_loss`` and one ``dis_<level>`` per level.
        """
        if not self.training:  # validation: the student alone, distillation reported as zero
            regular, items = self.student_model.loss(batch, preds)
            zero = torch.zeros(1, device=regular.device)
            items.update({key: zero[0].detach() for key in self.loss_keys()})
            return torch.cat([regular, zero]), items

        images = batch["img"]
        self.steps += 1
        with torch.no_grad(), self._teacher_tap.attach(self.teacher_model) as tap:
            forward_until(self.teacher_model, images, max(self.teacher_feats_idx))
            teacher_maps = tap.take()
        with self._student_tap.attach(self.student_model) as tap:
            preds = self.student_model(images)
            student_maps = tap.take()
        regular, items = self.student_model.loss(batch, preds)

        adapted = self.projector(student_maps)
        per_level = []
        for pair, student_map, teacher_map in zip(self.pairs, adapted, teacher_maps):
            weight = self.position_weights(batch, student_map) if self.settings.distill_mask == "gt" else None
            value = self.feature_loss(student_map.float(), teacher_map.float(), weight)
            if not torch.isfinite(value):
                self.report_nonfinite(pair, value)
                value = student_map.new_zeros((), dtype=torch.float32)
            per_level.append(self.settings.distill_weight * value)
        distill = torch.stack(per_level).sum()
        items["dis_loss"] = distill.detach()
        for name, value in zip(self.level_names, per_level):
            items[f"dis_{name}"] = value.detach()
        return torch.cat([regular, (distill * images.shape[0]).view(1).to(regular.dtype)]), items

    def position_weights(self, batch: dict, feature_map: torch.Tensor) -> torch.Tensor:
        """The ground-truth foreground weights at this map's resolution."""
        return foreground_weights(batch["bboxes"], batch["batch_idx"], feature_map.shape[0],
                                  tuple(feature_map.shape[2:]), self.settings.distill_mask_bg)

    def report_nonfinite(self, pair: LevelPair, value: torch.Tensor) -> None:
        """Record and log a NaN/Inf feature loss; the caller drops it so the student stays finite."""
        event = {"step": self.steps, "level": pair.name, "teacher_layer": pair.teacher.index,
                 "student_layer": pair.student.index, "value": float(value.detach())}
        self.nonfinite.append(event)
        LOGGER.warning(f"distil: non-finite {self.settings.distill_loss} loss ({event['value']}) at step {self.steps}, "
                       f"level {pair.name} (teacher layer {pair.teacher.index}, student layer "
                       f"{pair.student.index}); skipped for this step")

    def describe(self) -> dict:
        """The distillation as resolved, for ``distill.json``."""
        return {
            "teacher": str(self.settings.distill_model),
            "teacher_type": type(self.teacher_model).__name__ if self.teacher_model is not None else None,
            "student_type": type(self.student_model).__name__,
            "settings": self.settings.as_dict(),
            "levels": [
                {**pair.as_dict(), "adapter": {"in_channels": s, "out_channels": t}}
                for pair, (s, t) in zip(self.pairs, self.projector.channels)
            ],
            "student_parameters": sum(p.numel() for p in self.student_model.parameters()),
            "adapter_parameters": sum(p.numel() for p in self.projector.parameters()),
        }
