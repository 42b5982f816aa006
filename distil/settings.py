"""The distillation settings, carried as Ultralytics config keys.

Ultralytics knows two distillation keys, ``distill_model`` (the teacher) and ``dis`` (the loss
weight). Everything else a distillation run needs travels in keys this module adds to the
Ultralytics default config, so that ``YOLO(...).train(trainer=DistillationTrainer,
distill_loss="cwd", ...)`` is accepted, lands in ``args.yaml`` and ``last.pt``, survives resume,
and reaches DDP workers (they rebuild the trainer from ``vars(args)``, and unpickling the
trainer class imports this module first, which registers the keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distil.config import resolve_model_file
from distil.losses import LOSSES

# key -> (default, what it means). Defaults are what a plain `YOLO.train()` call gets.
DISTILL_KEYS: dict[str, tuple[Any, str]] = {
    "distill_loss": ("mse", "feature loss name from distil.losses.LOSSES"),
    "distill_teacher_layers": ("auto", "teacher layer indices, or 'auto' (the inputs of its head)"),
    "distill_student_layers": ("auto", "student layer indices, or 'auto' (the inputs of its Detect head)"),
    "distill_mask": ("none", "'none', or 'gt' to weight positions inside ground-truth boxes"),
    "distill_mask_bg": (0.1, "weight of background positions when distill_mask is 'gt', in [0, 1]"),
    "distill_tau": (1.0, "temperature of the 'cwd' loss"),
}
# Not distillation, but a key of ours too: the enhancement pipeline applied to every loaded image.
EXTRA_KEYS: dict[str, tuple[Any, str]] = {
    **DISTILL_KEYS,
    "enhance": ("none", "enhancement of every image: 'none', 'default' or a pipeline YAML (distil.preprocess)"),
}
MASKS = ("none", "gt")


def register_cfg_keys() -> None:
    """Add our keys to Ultralytics' default config (idempotent)."""
    from ultralytics.utils import DEFAULT_CFG, DEFAULT_CFG_DICT

    for key, (default, _) in EXTRA_KEYS.items():
        if key not in DEFAULT_CFG_DICT:
            DEFAULT_CFG_DICT[key] = default
            setattr(DEFAULT_CFG, key, default)


def parse_layers(value: Any, key: str) -> str | list[int]:
    """``'auto'`` or a list of non-negative ints (a comma-separated string is accepted too)."""
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.strip("[]() ").split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{key}={value!r} is not 'auto' or a list of layer indices like [15, 18, 21]") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ValueError(f"{key}={value!r} is not 'auto' or a non-empty list of layer indices like [15, 18, 21]")
    return list(value)


@dataclass(frozen=True)
class DistillSettings:
    """Everything that defines one distillation, validated.

    Attributes:
        teacher: Teacher checkpoint (``.pt``) or model YAML, as given.
        weight: Multiplier of the feature loss (Ultralytics' ``dis``).
        loss: Feature loss name.
        teacher_layers: Teacher layer indices, or ``'auto'``.
        student_layers: Student layer indices, or ``'auto'``.
        mask: ``'none'`` or ``'gt'``.
        mask_bg: Weight of background positions under the ``'gt'`` mask.
        tau: Temperature of the ``cwd`` loss.
    """

    teacher: str
    weight: float
    loss: str = "mse"
    teacher_layers: str | tuple[int, ...] = "auto"
    student_layers: str | tuple[int, ...] = "auto"
    mask: str = "none"
    mask_bg: float = 0.1
    tau: float = 1.0

    @classmethod
    def from_args(cls, args: Any) -> DistillSettings:
        """Read and validate the settings from an Ultralytics args namespace or dict.

        Raises:
            ValueError: A setting has a bad value; the message names the key and what is accepted.
            FileNotFoundError: The teacher file does not exist.
        """
        get = args.get if isinstance(args, dict) else lambda k, d=None: getattr(args, k, d)
        teacher = get("distill_model")
        if not teacher:
            raise ValueError("distill_model is not set: give the teacher checkpoint (.pt) or model YAML")
        loss = str(get("distill_loss", "mse")).lower()
        if loss not in LOSSES:
            raise ValueError(f"distill_loss={loss!r} is not a known feature loss; choose one of {sorted(LOSSES)}")
        mask = str(get("distill_mask", "none")).lower()
        if mask not in MASKS:
            raise ValueError(f"distill_mask={mask!r} is not one of {MASKS}")
        weight = float(get("dis", 1.0))
        mask_bg = float(get("distill_mask_bg", 0.1))
        tau = float(get("distill_tau", 1.0))
        if weight < 0:
            raise ValueError(f"dis={weight} (the distillation weight) must be >= 0")
        if not 0 <= mask_bg <= 1:
            raise ValueError(f"distill_mask_bg={mask_bg} must be within [0, 1]")
        if tau <= 0:
            raise ValueError(f"distill_tau={tau} must be > 0")
        teacher_layers = parse_layers(get("distill_teacher_layers", "auto"), "distill_teacher_layers")
        student_layers = parse_layers(get("distill_student_layers", "auto"), "distill_student_layers")
        if isinstance(teacher, (str, Path)):
            teacher = str(resolve_model_file(teacher, "teacher (distill_model)"))
        return cls(
            teacher=teacher,
            weight=weight,
            loss=loss,
            teacher_layers=teacher_layers if teacher_layers == "auto" else tuple(teacher_layers),
            student_layers=student_layers if student_layers == "auto" else tuple(student_layers),
            mask=mask,
            mask_bg=mask_bg,
            tau=tau,
        )
