"""DistillationTrainer: the Ultralytics DetectionTrainer, with a frozen teacher teaching the student.

Usable exactly like any Ultralytics trainer::

    from ultralytics import YOLO
    from distil import DistillationTrainer

    YOLO("yolov8s.pt").train(trainer=DistillationTrainer, data="coco.yaml",
                             distill_model="rtdetr-x.pt", distill_weight=1.0, distill_loss="cwd")

What it changes, and why there:

- `__init__` checks the distillation settings (`distil.engine.settings`) before any data is read, and
  writes them back resolved, so ``args.yaml`` and ``last.pt`` hold exactly what this run does.
- `_setup_train` also builds the loader of unlabeled images (``distill_unlabeled``), and
  `preprocess_batch` appends a batch of them to every labeled batch (`distil.engine.unlabeled`); it
  also tells the model how far training is (the weight schedule) and when to measure the gradient
  balance.
- `set_model_attributes` wraps the student in `FeatureDistillationModel`. Ultralytics calls it once
  the model is on its device and before freezing, the AMP check, DDP, the optimizer and the EMA,
  so the adapters take part in all of them and the teacher is frozen by the base trainer's own
  ``teacher_model.`` rule.
- `build_optimizer` sees only the student, the adapters and the loss: the base method would add
  every parameter of the model, the teacher's too.
- `setup_model` rebuilds the wrapper when resuming from a ``last.pt`` (the checkpoint holds no
  teacher; it is loaded again from ``distill_model``).
- `save_model` also writes the adapters beside the checkpoints; `final_eval` records what
  happened in ``distill.json``. At the end, Ultralytics itself turns ``best.pt`` and ``last.pt``
  into the plain student.
"""

from __future__ import annotations

import json
import logging
from copy import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG, LOCAL_RANK, LOGGER, RANK
from ultralytics.utils.torch_utils import torch_distributed_zero_first, unwrap_model

from distil.engine.checkpoints import load_model
from distil.engine.labeling import LabelStore
from distil.engine.labeling.job import training_labels
from distil.engine.model import FeatureDistillationModel
from distil.engine.periodic_validation import StudentTrainer
from distil.engine.settings import DistillSettings, canonicalize
from distil.engine.teacher import teacher_names
from distil.engine.teacher_signals import class_map
from distil.engine.unlabeled import UnlabeledBatches, append_images, unlabeled_images
from distil.enhancement.dataset import enhance_dataset

RECORD_NAME = "distill.json"


def training_imgsz(imgsz: int | list[int]) -> int:
    """The square size, rounded up to a multiple of 32, at which feature shapes are measured."""
    size = max(imgsz) if isinstance(imgsz, (list, tuple)) else int(imgsz)
    return max(32, -(-size // 32) * 32)


class TeacherFreezingSummary(logging.Filter):
    """Drops Ultralytics' "Freezing layer 'teacher_model...'" lines (one per teacher tensor) and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.tensors = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Freezing layer 'teacher_model."):
            self.tensors += 1
            return False
        return True


class DistillationTrainer(StudentTrainer):
    """Ultralytics detection trainer that distills a frozen teacher's features into the student.

    The distillation settings are Ultralytics config keys: ``distill_model`` (teacher ``.pt`` or YAML)
    and those of `distil.engine.settings.SETTINGS` (``distill_weight``, ``distill_loss``, ...); and
    ``enhance``, the enhancement pipeline applied to every image (see `distil.enhancement.dataset`).
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None):
        """Check the distillation settings first, so a bad value fails before any data is read.

        Raises:
            SettingError: A distillation setting is missing or invalid (a ValueError).
            FileNotFoundError: The teacher file does not exist.
        """
        overrides = dict(overrides or {})
        early = get_cfg(cfg, overrides)
        settings = None if early.resume else self.read_settings(vars(early), given=overrides)
        super().__init__(cfg, overrides, _callbacks)
        if self.resume:  # the arguments now come from the checkpoint
            settings = self.read_settings(vars(self.args))
            if not settings.distill_model.endswith(".pt"):
                raise ValueError(
                    f"cannot resume: this run's teacher {settings.distill_model} is a model YAML, which gets new "
                    "random weights each time it is built; resuming needs a .pt teacher"
                )
        self.distill_settings = settings
        settings.write_into(self.args)
        if settings.distill_unlabeled:  # a missing or empty folder fails here, before training
            self.unlabeled_files = len(unlabeled_images(settings.distill_unlabeled))
        if settings.distill_det > 0:  # and so do class names that cannot match
            class_map(teacher_names(settings.distill_model), self.data["names"])
        self.unlabeled: UnlabeledBatches | None = None
        self.labels: LabelStore | None = None  # offline: the teacher's stored labels
        self.step_in_epoch = (-1, 0)  # (epoch, batches seen in it)

    @staticmethod
    def read_settings(args: dict, given=None) -> DistillSettings:
        """The settings in an Ultralytics args dict; ``given``: the keys the user set (default: all that are set)."""
        values, written = canonicalize(args, given)
        return DistillSettings.from_values({**values, "distill_model": args.get("distill_model")}, written)

    # model --------------------------------------------------------------------------------
    @property
    def distill_model(self) -> FeatureDistillationModel | None:
        """The wrapper, once built."""
        model = unwrap_model(self.model) if isinstance(self.model, nn.Module) else None
        return model if isinstance(model, FeatureDistillationModel) else None

    def set_model_attributes(self) -> None:
        """Give the student the dataset's names and args, then wrap it with teacher and adapters."""
        wrapper = self.distill_model
        student = wrapper.student_model if wrapper else self.model
        self.model = student
        super().set_model_attributes()
        if wrapper is None:
            wrapper = FeatureDistillationModel(self.distill_settings.distill_model, student, self.distill_settings,
                                               imgsz=training_imgsz(self.args.imgsz))
        else:
            wrapper.names, wrapper.nc, wrapper.args = student.names, student.nc, student.args
        self.model = wrapper
        self.write_record()

    def setup_model(self):
        """Resuming from a distillation ``last.pt``: rebuild student, teacher and adapters from it."""
        if isinstance(self.model, nn.Module) or not str(self.model).endswith(".pt"):
            return super().setup_model()
        weights, ckpt = load_model(self.model)
        if not isinstance(weights, FeatureDistillationModel):
            return super().setup_model()
        teacher = self.distill_settings.distill_model
        LOGGER.info(f"distil: resuming distillation from {self.model} with teacher {teacher}")
        student = self.get_model(cfg=weights.student_model.yaml, weights=weights.student_model, verbose=False)
        student.args = self.args
        model = FeatureDistillationModel(teacher, student, self.distill_settings, imgsz=training_imgsz(self.args.imgsz))
        model.projector.load_state_dict(weights.projector.state_dict())
        model.steps = weights.steps
        model.nonfinite = list(weights.nonfinite)
        model.balance = list(getattr(weights, "balance", []))  # absent in checkpoints of older versions
        self.model = model
        return ckpt

    def build_optimizer(self, model, *args, **kwargs):
        """Optimize the student and the adapters only; the teacher never enters the optimizer."""
        wrapper = unwrap_model(model)
        if isinstance(wrapper, FeatureDistillationModel):
            model = nn.ModuleDict({"student_model": wrapper.student_model, "projector": wrapper.projector,
                                   "feature_loss": wrapper.feature_loss})
        return super().build_optimizer(model, *args, **kwargs)

    # batches ------------------------------------------------------------------------------
    def _setup_train(self) -> None:
        """Set up training as Ultralytics does (saying once, not per tensor, that the teacher is frozen), then the
        loader of unlabeled images."""
        quiet = TeacherFreezingSummary()
        LOGGER.addFilter(quiet)
        try:
            super()._setup_train()
        finally:
            LOGGER.removeFilter(quiet)
        if quiet.tensors and self.distill_model is not None:
            count = sum(p.numel() for p in self.distill_model.teacher_model.parameters())
            LOGGER.info(f"distil: the teacher is frozen ({count:,} parameters in {quiet.tensors} tensors)")
        s = self.distill_settings
        if s.distill_unlabeled:
            labels = None
            if s.distill_det > 0 and s.distill_det_mode == "offline":
                with torch_distributed_zero_first(LOCAL_RANK):  # one process labels; the others read its labels
                    self.labels = training_labels(s.distill_model, unlabeled_images(s.distill_unlabeled),
                                                  training_imgsz(self.args.imgsz), s.distill_det_conf,
                                                  Path(self.save_dir).parent / "pseudo-labels", s.distill_det_labels,
                                                  str(self.device), progress=RANK in {-1, 0})
                labels = self.labels.per_image(s.distill_det_conf, self.distill_model.classes.numpy())
                found = sum(len(image.scores) for image in labels.values())
                self.warn_if_blind(found, len(labels))
            elif s.distill_det > 0:
                self.warn_if_blind(*self.teacher_sees_on_a_few(unlabeled_images(s.distill_unlabeled)))
            self.unlabeled = UnlabeledBatches(self, s.distill_unlabeled, s.distill_unlabeled_ratio,
                                              prepare=lambda dataset: enhance_dataset(dataset, self.args.enhance),
                                              pseudo_labels=labels)
            self.write_record()

    def teacher_sees_on_a_few(self, files: list[str], count: int = 8) -> tuple[int, int]:
        """How many detections the teacher makes, from ``distill_det_conf`` up, on the first unlabeled images (read
        as they are, letterboxed: no random state is drawn); and on how many images."""
        import cv2
        from ultralytics.data.augment import LetterBox

        size = training_imgsz(self.args.imgsz)
        frame = LetterBox((size, size), auto=False)
        images = [image for image in (cv2.imread(f) for f in files[:count]) if image is not None]
        if not images:
            return 0, 0
        x = torch.from_numpy(np.stack([frame(image=image) for image in images])).permute(0, 3, 1, 2).flip(1)
        wrapper = self.distill_model
        signals = wrapper.reader(wrapper.teacher_model, x.to(self.device).float().div(255))
        return len(signals.detections.scores), len(images)

    def warn_if_blind(self, detections: int, images: int) -> None:
        """Say it, before training, when the teacher finds nothing to teach on the unlabeled images."""
        if images and detections == 0:
            LOGGER.warning(f"distil: the teacher detects nothing from score {self.distill_settings.distill_det_conf} "
                           f"on {images} unlabeled images: as targets, its detections would teach the student that "
                           "there is nothing there. Check that it suits these images (02_teacher_features shows what "
                           "it sees, and the class names it knows), or lower distill_det_conf")

    def preprocess_batch(self, batch: dict) -> dict:
        """Append unlabeled images (while distillation is on), then preprocess everything alike.

        Also sets the model's ``progress`` (fractional epochs, for the schedule) and, at three steps of
        the first and of the last distilled epoch, asks it to record the gradient balance.
        """
        wrapper = self.distill_model
        if wrapper is None or not wrapper.training:
            return super().preprocess_batch(batch)
        epoch, seen = self.step_in_epoch
        seen = seen + 1 if epoch == self.epoch else 0
        self.step_in_epoch = (self.epoch, seen)
        batches = max(1, len(self.train_loader))
        wrapper.progress = self.epoch + seen / batches
        last_distilled = self.epochs - 1 - self.distill_settings.distill_stop
        wrapper.measure_balance = self.epoch in {self.start_epoch, last_distilled} and seen in {
            min(1, batches - 1), batches // 2, batches - 1}
        if self.unlabeled is not None and wrapper.factor() > 0:
            batch = append_images(batch, self.unlabeled.next())
        return super().preprocess_batch(batch)

    def _close_dataloader_mosaic(self) -> None:
        """Close mosaic for the last epochs in the unlabeled loader too."""
        super()._close_dataloader_mosaic()
        if self.unlabeled is not None:
            self.unlabeled.close_mosaic(hyp=copy(self.args))

    # records ------------------------------------------------------------------------------
    def save_model(self) -> bool:
        """Save checkpoints as usual, and the EMA adapters beside them when the features are taught (with
        ``distill_weight: 0`` they never train, and a file of them would pass for trained ones)."""
        ema = self.ema.ema if self.ema else None
        if isinstance(ema, FeatureDistillationModel):  # the checkpoint holds the EMA: keep the records there
            live = self.distill_model
            ema.steps, ema.nonfinite, ema.balance = live.steps, list(live.nonfinite), list(live.balance)
        saved = super().save_model()
        if saved and isinstance(ema, FeatureDistillationModel) and self.distill_settings.distill_weight > 0:
            state = {"state_dict": {k: v.detach().cpu() for k, v in ema.projector.state_dict().items()},
                     "levels": self.distill_model.describe()["levels"], "epoch": self.epoch}
            torch.save(state, self.wdir / "adapters_last.pt")
            if self.best_fitness == self.fitness:
                torch.save(state, self.wdir / "adapters_best.pt")
        return saved

    def write_record(self) -> None:
        """Write ``distill.json``: the distillation as resolved, plus how training went so far."""
        if RANK not in {-1, 0} or self.distill_model is None:
            return
        wrapper = self.distill_model
        unlabeled = None
        if self.distill_settings.distill_unlabeled:
            unlabeled = {"source": self.distill_settings.distill_unlabeled,
                         "images": len(self.unlabeled) if self.unlabeled else self.unlabeled_files,
                         "per_batch": self.unlabeled.batch if self.unlabeled else None,
                         "labeled_per_batch": self.batch_size,
                         "mixing": "each batch of labeled images gets distill_unlabeled_ratio times as many "
                                   "unlabeled ones appended; an epoch is one pass over the labeled images"}
        adapters = str(self.wdir / "adapters_best.pt") if self.distill_settings.distill_weight > 0 else None
        record = {**wrapper.describe(), "imgsz": training_imgsz(self.args.imgsz), "unlabeled": unlabeled,
                  "targets": self.targets_record(),
                  "steps": wrapper.steps, "nonfinite": wrapper.nonfinite, "gradient_balance": wrapper.balance,
                  "weights": {"best": str(self.best), "last": str(self.last), "adapters": adapters}}
        Path(self.save_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.save_dir) / RECORD_NAME).write_text(json.dumps(record, indent=2))

    def targets_record(self) -> dict | None:
        """Which detection targets this run learns from and where they came from (None: no response term)."""
        s = self.distill_settings
        if s.distill_det == 0:
            return None
        kind = {"score": "soft (score)", "probs": "soft (class scores)", "hard": "hard"}[s.distill_det_targets]
        if s.distill_det_mode == "online":
            return {"targets": f"online {kind}", "source": "the teacher on every augmented batch"}
        record = {"targets": f"offline {kind}", "teacher_every": s.distill_teacher_every,
                  "source": "given (distill_det_labels)" if s.distill_det_labels else "labeled when training started"}
        return {**record, "labels": self.labels.summary() if self.labels is not None else None}

    def final_eval(self) -> None:
        """Validate ``best.pt`` (now the plain student) as usual, then update ``distill.json``."""
        super().final_eval()
        self.write_record()
