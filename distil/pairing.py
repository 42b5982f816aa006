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

from distil.hooks import LayerInfo, head_inputs, layer_table


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
        teacher_layers: ``'auto'`` (inputs of the teacher's head) or layer indices.
        student_layers: ``'auto'`` (inputs of the student's head) or layer indices.

    Returns:
        One `LevelPair` per level, finest first.

    Raises:
        PairingError: Different level counts, an index out of range or without a feature map,
            strides that do not match, or a stride the other model does not have.
    """
    teacher_table, student_table = layer_table(teacher, imgsz), layer_table(student, imgsz)
    teacher_heads, student_heads = head_inputs(teacher), head_inputs(student)

    def fail(reason: str) -> PairingError:
        return PairingError(
            f"Layer pairing cannot work: {reason}.\n{candidates_text('Teacher', teacher_table, teacher_heads)}\n"
            f"{candidates_text('Student', student_table, student_heads)}\n"
            "Give teacher_layers and student_layers as lists of equal length whose strides match level by level, "
            "or 'auto' for the layers marked *."
        )

    def pick(role: str, table: list[LayerInfo], wanted: Sequence[int], depth: int) -> list[LayerInfo]:
        by_index = {info.index: info for info in table}
        for index in wanted:
            if index >= depth:
                raise fail(f"{role} layer {index} is out of range (the {role} has layers 0..{depth - 1}, "
                           f"layer {depth - 1} being its head)")
            if index not in by_index:
                raise fail(f"{role} layer {index} ({type_name(role, index)}) does not output a feature map")
        return [by_index[i] for i in wanted]

    def type_name(role: str, index: int) -> str:
        model = teacher if role == "teacher" else student
        return type(model.model[index]).__name__

    student_infos = pick("student", student_table, student_heads if student_layers == "auto" else student_layers,
                         len(student.model) - 1)
    if teacher_layers == "auto":
        by_stride = {info.stride: info for info in teacher_table if info.index in teacher_heads}
        missing = [s.stride for s in student_infos if s.stride not in by_stride]
        if missing:
            raise fail(f"the teacher's head has no input at stride {missing} (it has {sorted(by_stride)})")
        teacher_infos = [by_stride[s.stride] for s in student_infos]
    else:
        teacher_infos = pick("teacher", teacher_table, teacher_layers, len(teacher.model) - 1)
    if len(teacher_infos) != len(student_infos):
        raise fail(f"{len(teacher_infos)} teacher levels {[t.index for t in teacher_infos]} against "
                   f"{len(student_infos)} student levels {[s.index for s in student_infos]}")
    for t, s in zip(teacher_infos, student_infos):
        if t.stride != s.stride:
            raise fail(f"teacher layer {t.index} has stride {t.stride} but student layer {s.index} "
                       f"has stride {s.stride}")
    if len({s.index for s in student_infos}) != len(student_infos):
        raise fail(f"student layers {[s.index for s in student_infos]} repeat an index")
    return [LevelPair(t, s) for t, s in zip(teacher_infos, student_infos)]


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
