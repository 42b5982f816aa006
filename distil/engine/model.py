"""The distillation wrapper: frozen teacher + student + adapters -> the training loss of one step.

The loss of a step, every term times the number of labeled images (Ultralytics' convention):

    detection(ground truth, labeled images only)
    + factor * distill_weight * sum over levels of feature_loss(adapter(student map), teacher map, mask)
    + factor * distill_det * detection(teacher's detections as targets, every image)

``factor`` is the schedule (`distil.engine.schedule`: warm-up, then off for the last epochs).
Unlabeled images (`distil.engine.unlabeled`) come after the labeled ones in a batch and enter only the
distillation terms.

`FeatureDistillationModel` subclasses Ultralytics' `DistillationModel` (``ultralytics/nn/distill_model.py``)
for what Ultralytics does with any instance of it: `BaseTrainer` freezes every ``teacher_model.``
parameter and keeps the teacher's BatchNorms in eval mode; `ModelEMA` copies the model without its
teacher; `strip_optimizer` turns ``best.pt``/``last.pt`` into the plain ``student_model`` at the end
of training; the base class delegates the criterion, `fuse` and head attributes to the student. Those
helpers find the parts by attribute name, so the names are theirs: ``teacher_model``,
``student_model``, and ``projector`` for the adapters (the trainer reads ``ema.projector``).

What it replaces: how features are found and compared. Layers are paired by stride from the two
heads' inputs (the base class only knows YOLO ``Detect`` heads), the teacher runs only up to its last
hooked layer (fused, channels-last, and in bf16 under ``amp`` on a CPU with bf16 instructions, as AMP
runs it in fp16 on a GPU), and the loss comes from `distil.engine.losses`. The base ``__init__`` is not
called (it looks for a Detect head in the teacher); `loss` and `__getstate__`/`__setstate__` are overridden.
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
from distil.engine.hooks import FeatureTap
from distil.engine.losses import build_loss
from distil.engine.masks import foreground_weights, saliency_weights
from distil.engine.pairing import LevelPair, PairingError, pair_layers
from distil.engine.response import ResponseLoss, response_targets
from distil.engine.schedule import distill_factor
from distil.engine.settings import DistillSettings
from distil.engine.teacher import cpu_computes_bf16, load_teacher, ready_for_inference
from distil.engine.teacher_signals import Detections, TeacherReader, TeacherSignals, class_map


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
    """Teacher-student pair for distillation across architectures (e.g. RT-DETR -> YOLO).

    Attributes:
        teacher_model (nn.Module | None): Frozen teacher; None in EMA copies and checkpoints.
        student_model (nn.Module): The YOLO student being trained.
        projector (FeatureAdapter): 1x1-conv adapters, student channels -> teacher channels.
        feature_loss (FeatureLoss): The feature loss from the registry.
        pairs (list[LevelPair]): The resolved levels (layers, shapes, strides).
        settings (DistillSettings): What this distillation was asked to do.
        progress (float): Epochs done so far, fractional; the trainer sets it before each step (the schedule).
        measure_balance (bool): Set by the trainer for the steps whose gradient balance is recorded.
        balance (list[dict]): Per recorded step, the gradient norm each term sends into the student's neck.
        nonfinite (list[dict]): Steps and terms whose loss was NaN/Inf (skipped).
    """

    def __init__(self, teacher: str | Path | nn.Module, student: nn.Module, settings: DistillSettings,
                 imgsz: int = 640) -> None:
        """Load and freeze the teacher, pair layers, build adapters and losses.

        Args:
            teacher: Teacher checkpoint, YAML or module.
            student: Student DetectionModel (its ``args`` carry the trainer's arguments, its ``names`` the
                dataset's classes).
            settings: Validated distillation settings.
            imgsz: Input size used to measure feature shapes.

        Raises:
            PairingError: The layers cannot be paired, or the teacher mask has no map at a level's stride.
            ClassMappingError: Response distillation, and the teacher's classes do not cover the dataset's.
        """
        nn.Module.__init__(self)  # the base __init__ finds layers through a Detect head only
        check_student(student)
        device = next(student.parameters()).device
        self.teacher_model = ready_for_inference(load_teacher(teacher).to(device))
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
        self.classes = class_map(self.teacher_model.names, student.names) if settings.distill_det > 0 else None
        online = settings.distill_det > 0 and settings.distill_det_mode == "online"
        self.reader = TeacherReader(self.teacher_model, self.teacher_feats_idx,
                                    saliency=settings.distill_mask == "teacher", detections=online,
                                    conf=settings.distill_det_conf, classes=self.classes,
                                    cpu_bf16=amp_requested(student) and cpu_computes_bf16())
        self.reads_teacher = settings.distill_weight > 0 or online  # offline response alone needs no teacher pass
        self.teacher_every = settings.distill_teacher_every
        if settings.distill_mask == "teacher":
            strides = set(self.reader.saliency_strides(self.teacher_model, imgsz))
            missing = sorted({p.stride for p in self.pairs} - strides)
            if missing:
                raise PairingError(f"distill_mask='teacher' reads the teacher's objectness at the strides of its "
                                   f"head's inputs {sorted(strides)}, but levels at stride {missing} are distilled")
        self.progress = 0.0
        self.measure_balance = False
        self.steps = 0
        self.balance: list[dict] = []
        self.nonfinite: list[dict] = []
        self._student_tap = FeatureTap(self.feats_idx)
        copy_attr(self, student)  # names, nc, stride, args, yaml: what the trainer reads off its model

    @property
    def level_names(self) -> list[str]:
        """``p3``, ``p4``, ... one per level."""
        return [p.name for p in self.pairs]

    def loss_keys(self) -> list[str]:
        """The distillation entries of the loss dict: feature total and per level, then the response term."""
        keys = ["dis_loss", *(f"dis_{name}" for name in self.level_names)] if self.settings.distill_weight > 0 else []
        return keys + (["det_loss"] if self.settings.distill_det > 0 else [])

    def factor(self) -> float:
        """The schedule's multiplier of every distillation term at the current step."""
        s = self.settings
        return distill_factor(self.progress, int(self.student_model.args.epochs), s.distill_warmup, s.distill_stop)

    # hooks -----------------------------------------------------------------------------------
    # The taps are attached only inside `loss` (a training step), so no hook is ever pickled with
    # the model, and validation or export forwards capture nothing.
    def _register_feature_hooks(self) -> None:
        """Nothing to do: hooks live only for the duration of a training step."""

    def _remove_feature_hooks(self) -> None:
        """Detach the taps (Ultralytics calls this before saving the bare student)."""
        self._student_tap.remove()
        self.reader.tap.remove()

    def __getstate__(self) -> dict:
        """Plain state: the base class's version expects its own hook bookkeeping."""
        return self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        """Plain state (see `__getstate__`)."""
        self.__dict__.update(state)

    # loss ------------------------------------------------------------------------------------
    def loss(self, batch: dict, preds=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of a training step (see the module docstring), or the detection loss alone in validation.

        Args:
            batch: Ultralytics batch (``img`` in [0, 1], ``bboxes``, ``batch_idx``, ...); in training,
                ``n_labeled`` says how many images at its start carry labels (default: all).
            preds: Student predictions, given by the validator.

        Returns:
            The loss vector (box, cls, dfl, then the distillation terms; each times the number of labeled
            images) and the detached loss items, with one entry per `loss_keys`.
        """
        if not self.training:  # validation: the student alone, distillation reported as zero
            regular, items = self.student_model.loss(batch, preds)
            zero = torch.zeros(1, device=regular.device)
            items.update({key: zero[0].detach() for key in self.loss_keys()})
            return torch.cat([regular, zero]), items

        images = batch["img"]
        n_labeled = int(batch.get("n_labeled", len(images)))
        self.steps += 1
        factor = self.factor()
        with self._student_tap.attach(self.student_model) as tap:
            preds = self.student_model(images)
            student_maps = tap.take()
        regular, items = self.student_model.loss(batch, labeled_part(preds, n_labeled))  # ground truth: labeled only
        terms = self.distillation_terms(batch, preds, student_maps, n_labeled, factor) if factor > 0 else {}
        if self.measure_balance:
            self.record_balance(student_maps, regular.sum(), terms, factor, n_labeled, len(images))
        zero = regular.new_zeros(())
        distill = sum(terms.values(), zero)
        logged = {"dis_loss": sum((v for k, v in terms.items() if k.startswith("dis_")), zero), **terms}
        for key in self.loss_keys():  # per labeled image, as Ultralytics logs its own terms
            items[key] = (logged.get(key, zero) / n_labeled).detach()
        return torch.cat([regular, distill.view(1).to(regular.dtype)]), items

    def teacher_reads_this_step(self) -> bool:
        """Whether the teacher runs on this step's batch: every step, or every ``distill_teacher_every``-th (the first
        of each k), or never when nothing needs it (offline detections alone)."""
        return self.reads_teacher and (self.steps - 1) % self.teacher_every == 0

    def distillation_terms(self, batch: dict, preds, student_maps: list[torch.Tensor], n_labeled: int,
                           factor: float) -> dict[str, torch.Tensor]:
        """Each distillation term of this step, weighted and scheduled: ``dis_<level>`` and ``det_loss``.

        The feature term exists on the steps the teacher reads (all of them unless ``distill_teacher_every`` > 1,
        which needs the detections from the stored labels, so the response term is there on every step).
        """
        signals = self.reader(self.teacher_model, batch["img"]) if self.teacher_reads_this_step() else None
        terms = {}
        if self.settings.distill_weight > 0 and signals is not None:
            scale = factor * self.settings.distill_weight * n_labeled
            for pair, value in zip(self.pairs, self.feature_levels(student_maps, signals, batch, n_labeled)):
                terms[f"dis_{pair.name}"] = scale * value
        if self.settings.distill_det > 0:  # online: what the teacher saw in this batch; offline: what it wrote
            teacher_boxes = signals.detections if self.reader.want_detections else written_by_teacher(batch)
            targets = response_targets(teacher_boxes, batch, n_labeled)
            loss = ResponseLoss(self.student_model.criterion, self.settings.distill_det_targets)
            response = loss(parsed(preds), targets).sum()
            terms["det_loss"] = self.finite(factor * self.settings.distill_det * n_labeled * response, "response")
        return terms

    def feature_levels(self, student_maps: list[torch.Tensor], signals: TeacherSignals, batch: dict,
                       n_labeled: int) -> list[torch.Tensor]:
        """The feature loss per level (unweighted), over every image of the batch."""
        values = []
        for pair, student_map, teacher_map in zip(self.pairs, self.projector(student_maps), signals.maps):
            weight = self.position_weights(pair, batch, student_map, signals, n_labeled)
            value = self.feature_loss(student_map.float(), teacher_map.float(), weight)
            values.append(self.finite(value, pair.name, pair))
        return values

    def position_weights(self, pair: LevelPair, batch: dict, feature_map: torch.Tensor, signals: TeacherSignals,
                         n_labeled: int) -> torch.Tensor | None:
        """Where the feature loss looks at this level (None: everywhere alike).

        ``gt``: inside the labeled images' boxes (unlabeled images, which have none, count alike everywhere);
        ``teacher``: where the teacher sees objects, on every image.
        """
        mask, background = self.settings.distill_mask, self.settings.distill_mask_bg
        if mask == "teacher":
            return saliency_weights(signals.saliency[pair.stride], tuple(feature_map.shape[2:]), background)
        if mask == "gt":
            weights = foreground_weights(batch["bboxes"], batch["batch_idx"], feature_map.shape[0],
                                         tuple(feature_map.shape[2:]), background)
            weights[n_labeled:] = 1.0
            return weights
        return None

    def finite(self, value: torch.Tensor, term: str, pair: LevelPair | None = None) -> torch.Tensor:
        """``value``, or zero (recorded and logged) when it is NaN/Inf, so the student stays finite."""
        if torch.isfinite(value):
            return value
        event = {"step": self.steps, "term": term, "value": float(value.detach())}
        if pair is not None:
            event.update(level=pair.name, teacher_layer=pair.teacher.index, student_layer=pair.student.index)
        self.nonfinite.append(event)
        where = f"level {pair.name} (teacher layer {pair.teacher.index}, student layer {pair.student.index})" \
            if pair is not None else "the response term"
        LOGGER.warning(f"distil: non-finite {self.settings.distill_loss if pair else 'response'} loss "
                       f"({event['value']}) at step {self.steps}, {where}; skipped for this step")
        return value.new_zeros(())

    def record_balance(self, student_maps: list[torch.Tensor], detection: torch.Tensor,
                       terms: dict[str, torch.Tensor], factor: float, n_labeled: int, n_images: int) -> None:
        """The gradient norm each term of this step sends into the student's neck (the maps its head reads)."""
        norms = {}
        for name, term in {"detection": detection, **terms}.items():
            grads = torch.autograd.grad(term, student_maps, retain_graph=True, allow_unused=True)
            norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
        self.balance.append({"step": self.steps, "epoch": round(self.progress, 3), "factor": round(factor, 4),
                             "labeled_images": n_labeled, "images": n_images, "grad_norm": norms})
        self.measure_balance = False

    def teacher_precision(self) -> str:
        """How the teacher's pass computes: ``bf16`` (CPU), ``fp16 (amp)`` (GPU) or ``fp32``."""
        if self.reader.cpu_bf16:
            return "bf16"
        on_gpu = self.teacher_model is not None and next(self.teacher_model.parameters()).device.type == "cuda"
        return "fp16 (amp)" if on_gpu and amp_requested(self.student_model) else "fp32"

    def describe(self) -> dict:
        """The distillation as resolved, for ``distill.json``."""
        classes = None
        if self.classes is not None:
            classes = {self.teacher_model.names[t]: self.student_model.names[int(d)]
                       for t, d in enumerate(self.classes.tolist()) if d >= 0 and t in self.teacher_model.names}
        return {
            "teacher": str(self.settings.distill_model),
            "teacher_type": type(self.teacher_model).__name__ if self.teacher_model is not None else None,
            "teacher_precision": self.teacher_precision(),
            "student_type": type(self.student_model).__name__,
            "settings": self.settings.as_dict(),
            "levels": [
                {**pair.as_dict(), "adapter": {"in_channels": s, "out_channels": t}}
                for pair, (s, t) in zip(self.pairs, self.projector.channels)
            ],
            "response_classes": classes,
            "student_parameters": sum(p.numel() for p in self.student_model.parameters()),
            "adapter_parameters": sum(p.numel() for p in self.projector.parameters()),
        }


def amp_requested(student: nn.Module) -> bool:
    """Whether the trainer's ``amp`` is on (a student built outside a trainer has no arguments: off)."""
    args = getattr(student, "args", None)
    return bool(args.get("amp", False) if isinstance(args, dict) else getattr(args, "amp", False))


def written_by_teacher(batch: dict) -> Detections:
    """The labels the teacher wrote for the unlabeled images of this batch (offline), with the score and class vector
    each box carried through the augmentation (`distil.engine.unlabeled`)."""
    if "pseudo_cls" not in batch:
        return Detections.empty(batch["img"].device)
    cls = batch["pseudo_cls"].view(-1)
    scores = batch.get("pseudo_scores")
    return Detections(batch["pseudo_batch_idx"].view(-1).float(), cls.float(), batch["pseudo_bboxes"].view(-1, 4),
                      torch.ones_like(cls, dtype=torch.float32) if scores is None else scores.view(-1).float(),
                      batch.get("pseudo_probs"))


def parsed(preds) -> dict[str, torch.Tensor]:
    """The training outputs dict of a student's predictions (inference mode wraps it in a tuple)."""
    return preds[1] if isinstance(preds, tuple) else preds


def labeled_part(preds, n_labeled: int) -> dict[str, torch.Tensor]:
    """The student's predictions for the first ``n_labeled`` images of the batch."""
    preds = parsed(preds)
    if n_labeled == preds["boxes"].shape[0]:
        return preds
    return {"boxes": preds["boxes"][:n_labeled], "scores": preds["scores"][:n_labeled],
            "feats": [f[:n_labeled] for f in preds["feats"]]}
