"""Pair teacher layers with student layers, level by level, before any training starts.

By default both sides use the inputs of their heads (RT-DETR-x: layers 25/28/31 into its
decoder; YOLOv8s: 15/18/21 into Detect) and levels are matched by stride, which is what makes
a transformer teacher and a CNN student comparable position by position. Explicit indices may be
given for either side. Any pairing that cannot work stops here, with the candidate layers of both
models listed, so the user can pick valid indices without reading model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from torch import nn

from distil.engine.hooks import LayerInfo, head_inputs, layer_table


@dataclass(frozen=True)
class LevelPair:
    """One distillation level: a teacher layer and a student layer with the same stride."""

    teacher: LayerInfo
    student: LayerInfo

    @property
    def stride(self) -> int:
        return self.student.stride

    @property
    def name(self) -> str:
        """Pyramid level name, ``p3`` for stride 8."""
        return f"p{round(math.log2(self.stride))}"

    def as_dict(self) -> dict:
        return {"level": self.name, "stride": self.stride, "teacher": asdict(self.teacher),
                "student": asdict(self.student)}


class PairingError(ValueError):
    """The requested layers cannot be paired; the message lists the candidates."""


def candidates_text(role: str, table: Sequence[LayerInfo], heads: Sequence[int]) -> str:
    """A readable list of a model's feature-map layers; ``*`` marks the inputs of its head."""
    lines = [f"{role} layers (index, module, CxHxW, stride; * feeds the head):"]
    lines += [f"  {'*' if info.index in heads else ' '} {info.describe()}" for info in table]
    return "\n".join(lines)


@dataclass(frozen=True)
class ModelLayers:
    """One model's feature-map layers (measured at one input size) and the inputs of its head."""

    role: str
    model: nn.Module
    table: tuple[LayerInfo, ...]
    heads: tuple[int, ...]

    @classmethod
    def measure(cls, role: str, model: nn.Module, imgsz: int) -> ModelLayers:
        return cls(role, model, tuple(layer_table(model, imgsz)), tuple(head_inputs(model)))

    def pick(self, indices: Sequence[int]) -> list[LayerInfo]:
        """The layers at ``indices``; `Unpairable` if one is out of range or yields no feature map."""
        depth = len(self.model.model) - 1
        by_index = {info.index: info for info in self.table}
        for index in indices:
            if index >= depth:
                raise Unpairable(f"{self.role} layer {index} is out of range (the {self.role} has layers "
                                 f"0..{depth - 1}, layer {depth - 1} being its head)")
            if index not in by_index:
                raise Unpairable(f"{self.role} layer {index} ({type(self.model.model[index]).__name__}) does not "
                                 "output a feature map")
        return [by_index[i] for i in indices]

    def head_input_at(self, strides: Sequence[int]) -> list[LayerInfo]:
        """For each stride, the head input with that stride; `Unpairable` if the head has none."""
        by_stride = {info.stride: info for info in self.table if info.index in self.heads}
        missing = [s for s in strides if s not in by_stride]
        if missing:
            raise Unpairable(f"the {self.role}'s head has no input at stride {missing} (it has {sorted(by_stride)})")
        return [by_stride[s] for s in strides]

    def candidates(self) -> str:
        return candidates_text(self.role.capitalize(), self.table, self.heads)


class Unpairable(Exception):
    """Why a pairing cannot work; `pair_layers` turns it into a `PairingError` listing the candidates."""


def check_levels(teacher_infos: Sequence[LayerInfo], student_infos: Sequence[LayerInfo]) -> None:
    """Equal level counts, equal strides level by level, no student layer twice; else `Unpairable`."""
    if len(teacher_infos) != len(student_infos):
        raise Unpairable(f"{len(teacher_infos)} teacher levels {[t.index for t in teacher_infos]} against "
                         f"{len(student_infos)} student levels {[s.index for s in student_infos]}")
    for t, s in zip(teacher_infos, student_infos):
        if t.stride != s.stride:
            raise Unpairable(f"teacher layer {t.index} has stride {t.stride} but student layer {s.index} "
                             f"has stride {s.stride}")
    if len({s.index for s in student_infos}) != len(student_infos):
        raise Unpairable(f"student layers {[s.index for s in student_infos]} repeat an index")


def pair_layers(
    teacher: nn.Module,
    student: nn.Module,
    imgsz: int,
    teacher_layers: str | Sequence[int] = "auto",
    student_layers: str | Sequence[int] = "auto",
) -> list[LevelPair]:
    """Resolve and check the layer pairs of a teacher and a student.

    Args:
        teacher: Ultralytics teacher model (RT-DETR or YOLO).
        student: Ultralytics YOLO student model.
        imgsz: Square input size used to measure shapes and strides.
        teacher_layers: ``'auto'`` (the teacher's head inputs at the student's strides) or layer indices.
        student_layers: ``'auto'`` (inputs of the student's head) or layer indices.

    Returns:
        One `LevelPair` per level, finest first.

    Raises:
        PairingError: Different level counts, an index out of range or without a feature map,
            strides that do not match, or a stride the other model does not have.
    """
    t, s = ModelLayers.measure("teacher", teacher, imgsz), ModelLayers.measure("student", student, imgsz)
    try:
        student_infos = s.pick(s.heads if student_layers == "auto" else student_layers)
        teacher_infos = (t.head_input_at([info.stride for info in student_infos]) if teacher_layers == "auto"
                         else t.pick(teacher_layers))
        check_levels(teacher_infos, student_infos)
    except Unpairable as reason:
        raise PairingError(
            f"Layer pairing cannot work: {reason}.\n{t.candidates()}\n{s.candidates()}\n"
            "Give distill_teacher_layers and distill_student_layers as lists of equal length whose strides match "
            "level by level, or 'auto' for the layers marked *."
        ) from None
    return [LevelPair(ti, si) for ti, si in zip(teacher_infos, student_infos)]


def layers_frame(model: nn.Module, imgsz: int):
    """The feature-map layers of a model as a table; ``head input`` marks the default candidates."""
    import pandas as pd

    heads = head_inputs(model)
    rows = [{"index": info.index, "module": info.module, "C": info.channels, "H": info.height, "W": info.width,
             "stride": info.stride, "head input": info.index in heads} for info in layer_table(model, imgsz)]
    return pd.DataFrame(rows).set_index("index")


def pairs_frame(pairs: Sequence[LevelPair]):
    """The resolved pairing as a table: one row per level, with the adapter it needs."""
    import pandas as pd

    return pd.DataFrame([{"level": p.name, "stride": p.stride, "teacher layer": p.teacher.index,
                          "teacher CxHxW": "x".join(map(str, p.teacher.shape)), "student layer": p.student.index,
                          "student CxHxW": "x".join(map(str, p.student.shape)),
                          "adapter": f"1x1 conv {p.student.channels} -> {p.teacher.channels}"} for p in pairs])
