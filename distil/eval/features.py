"""Feature maps of the distilled levels on real images: teacher, untrained student, trained student.

What ``02_teacher_features`` shows: the maps the teacher hands over (the inputs of its decoder),
what an untrained student has at the paired layers, and what the trained student produces there
after its adapters, i.e. exactly the tensors the feature loss compared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from ultralytics.data.augment import LetterBox

from distil.engine.adapter import FeatureAdapter
from distil.engine.checkpoints import load_model
from distil.engine.hooks import FeatureTap, forward_until, head_inputs
from distil.engine.pairing import LevelPair, pair_layers
from distil.engine.teacher import build_from_yaml, load_teacher
from distil.engine.teacher_signals import TeacherReader


def letterboxed(image_bgr: np.ndarray, imgsz: int) -> np.ndarray:
    """The image as the model sees it: resized and padded to a square, still BGR uint8."""
    return LetterBox((imgsz, imgsz), auto=False)(image=image_bgr)


def model_input(image_bgr: np.ndarray, imgsz: int) -> torch.Tensor:
    """A BGR image letterboxed to a square (1, 3, imgsz, imgsz) RGB float tensor in [0, 1]."""
    boxed = letterboxed(image_bgr, imgsz)
    return torch.from_numpy(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))).float()[None] / 255


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
    """Outputs of layers ``indices`` for input ``x``, running the model only as far as needed (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        with FeatureTap(indices).attach(model) as tap:
            forward_until(model, x.to(next(model.parameters()).device), max(indices))
            return [m.detach().cpu() for m in tap.take()]
    finally:
        model.train(was_training)


def load_student(spec: str | Path) -> nn.Module:
    """A student from a checkpoint or (untrained) from its YAML, in fp32 eval mode."""
    model = load_model(spec)[0] if str(spec).endswith(".pt") else build_from_yaml(spec)
    return model.float().eval()


def load_adapters(run_dir: str | Path) -> FeatureAdapter | None:
    """The trained adapters of a distillation run (``weights/adapters_best.pt``), or None."""
    path = Path(run_dir) / "weights" / "adapters_best.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    levels = state["levels"]
    adapter = FeatureAdapter([lv["adapter"]["in_channels"] for lv in levels],
                             [lv["adapter"]["out_channels"] for lv in levels])
    adapter.load_state_dict(state["state_dict"])
    return adapter.eval()


@dataclass
class FeatureComparison:
    """Per image, the maps of each model at the paired levels."""

    pairs: list[LevelPair]
    maps: list[dict[str, list[torch.Tensor]]]  # one dict per image: label -> one map per level

    @property
    def level_names(self) -> list[str]:
        return [p.name for p in self.pairs]


def compare_features(teacher: str | Path, student: str | Path, images: Sequence[np.ndarray], imgsz: int,
                     run_dir: str | Path | None = None, teacher_layers="auto",
                     student_layers="auto") -> FeatureComparison:
    """Teacher, untrained student and (when a finished run is given) trained student + adapters.

    A run's recorded pairing (``distill.json``) takes precedence over ``*_layers``, so the maps
    shown are the ones that run distilled.
    """
    teacher_model = load_teacher(teacher)
    untrained = load_student(student)
    record = Path(run_dir) / "distill.json" if run_dir else None
    if record is not None and record.exists():
        levels = json.loads(record.read_text())["levels"]
        teacher_layers = [lv["teacher"]["index"] for lv in levels]
        student_layers = [lv["student"]["index"] for lv in levels]
    pairs = pair_layers(teacher_model, untrained, imgsz, teacher_layers, student_layers)
    t_idx, s_idx = [p.teacher.index for p in pairs], [p.student.index for p in pairs]
    trained = adapters = None
    if run_dir is not None and (Path(run_dir) / "weights" / "best.pt").exists():
        trained = load_student(Path(run_dir) / "weights" / "best.pt")
        adapters = load_adapters(run_dir)
    maps = []
    for image in images:
        x = model_input(image, imgsz)
        entry = {"teacher": feature_maps(teacher_model, x, t_idx),
                 "untrained student": feature_maps(untrained, x, s_idx)}
        if trained is not None:
            student_maps = feature_maps(trained, x, s_idx)
            if adapters is not None:
                with torch.no_grad():
                    student_maps = adapters(student_maps)
                entry["trained student + adapter"] = student_maps
            else:
                entry["trained student"] = student_maps
        maps.append(entry)
    return FeatureComparison(pairs, maps)


@torch.no_grad()
def teacher_saliency(teacher: str | Path | nn.Module, images: Sequence[np.ndarray], imgsz: int) -> list[dict]:
    """Per image, the teacher's objectness at the strides of its head's inputs (what ``distill_mask: teacher``
    weights the feature loss by), each (1, 1, H, W) in [0, 1]."""
    model = load_teacher(teacher)
    reader = TeacherReader(model, head_inputs(model), saliency=True)
    return [reader(model, model_input(image, imgsz).to(next(model.parameters()).device)).saliency
            for image in images]
