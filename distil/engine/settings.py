"""The distillation settings: each defined once, validated once, one word everywhere.

Every setting is one `Setting` in `SETTINGS`: its key and check (its default and meaning are written in
``distil/cfg/default.yaml``, with every other key of distil). The key is the
same word in params files, ``papermill -p``, `distil.train` and ``YOLO(...).train(trainer=DistillationTrainer,
...)``. In Ultralytics it travels as a config key this module registers, so it lands in ``args.yaml``
and ``last.pt``, survives resume and reaches DDP workers (they rebuild the trainer from ``vars(args)``;
unpickling the trainer class imports ``distil`` first, which registers the keys).

Older names stay accepted as aliases (``loss`` for ``distill_loss``, Ultralytics' own ``dis`` for
``distill_weight``, ...), and an error names the key as the user wrote it. `canonicalize` folds
aliases into their setting and `DistillSettings.from_values` checks everything: the params classes
and the trainer both go through these two functions, and nowhere else are these values checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distil.defaults import distil_keys
from distil.engine.losses import LOSSES, build_loss, loss_arguments
from distil.paths import resolve_model_file

MASKS = ("none", "gt", "teacher")
DET_MODES = ("online", "offline")
DET_TARGETS = ("score", "probs", "hard")


class SettingError(ValueError):
    """A distillation setting has a bad value; the message names the key as written and what is accepted."""


# --- checks: (value, key as written) -> clean value ---------------------------------------------
def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[Any, str], float]:
    """A float within [low, high] (or (low, high] with ``low_open``); ints are accepted, bools are not."""

    def check(value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingError(f"{key}={value!r} must be a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            bounds = f"{'>' if low_open else '>='} {low}" if high is None else f"within [{low}, {high}]"
            raise SettingError(f"{key}={value} must be {bounds}")
        return float(value)

    return check


def choice(options: Callable[[], Collection[str]]) -> Callable[[Any, str], str]:
    """One of ``options()`` (a callable, so losses registered later count), case-insensitive."""

    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or value.lower() not in options():
            raise SettingError(f"{key}={value!r} is not one of {sorted(options())}")
        return value.lower()

    return check


def layers(value: Any, key: str) -> str | tuple[int, ...]:
    """``'auto'`` or layer indices (a list, one int, or a comma-separated string such as ``'15,18,21'``)."""
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.strip("[]() ").split(",") if v.strip()]
        except ValueError:
            raise SettingError(f"{key}={value!r} is not 'auto' or a list of layer indices like [15, 18, 21]") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise SettingError(f"{key}={value!r} is not 'auto' or a non-empty list of layer indices like [15, 18, 21]")
    return tuple(value)


def whole(low: int = 0) -> Callable[[Any, str], int]:
    """An int >= low (a float with no fraction is accepted)."""

    def check(value: Any, key: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SettingError(f"{key}={value!r} must be a whole number >= {low}")
        return value

    return check


def image_source(value: Any, key: str) -> str:
    """'' (none), or a folder of images or a .txt list of image paths (checked to exist when training starts)."""
    if value is None or value in ("", "none"):
        return ""
    if not isinstance(value, (str, Path)):
        raise SettingError(f"{key}={value!r} must be a folder of images or a .txt list of image paths")
    return str(value)


def mapping(value: Any, key: str) -> dict[str, Any]:
    """A mapping of argument names to values (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SettingError(f"{key}={value!r} must be a mapping of argument names to values, e.g. {{tau: 2.0}}")
    for name, item in value.items():
        if isinstance(item, float) and not math.isfinite(item):
            raise SettingError(f"{key}: {name}={item!r} must be a finite number")
        if not isinstance(item, (str, int, float, bool, type(None))):
            raise SettingError(f"{key}: {name}={item!r} must be a plain value (a number, a word, true/false)")
    return dict(value)


@dataclass(frozen=True)
class Setting:
    """One distillation setting: its key, check, and the older names it answers to; its default and meaning are
    written in ``distil/cfg/default.yaml`` (`distil.defaults`)."""

    key: str
    check: Callable[[Any, str], Any]
    aliases: tuple[str, ...] = ()

    @property
    def default(self) -> Any:
        return distil_keys()[self.key].default

    @property
    def help(self) -> str:
        return distil_keys()[self.key].help


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("distill_weight", number(low=0), aliases=("dis",)),
    Setting("distill_loss", choice(lambda: LOSSES), aliases=("loss",)),
    Setting("distill_loss_args", mapping),
    Setting("distill_teacher_layers", layers, aliases=("teacher_layers",)),
    Setting("distill_student_layers", layers, aliases=("student_layers",)),
    Setting("distill_mask", choice(lambda: MASKS)),
    Setting("distill_mask_bg", number(0, 1), aliases=("mask_bg",)),
    Setting("distill_det", number(low=0)),
    Setting("distill_det_conf", number(0, 1, low_open=True)),
    Setting("distill_det_mode", choice(lambda: DET_MODES)),
    Setting("distill_det_targets", choice(lambda: DET_TARGETS)),
    Setting("distill_det_labels", image_source),
    Setting("distill_unlabeled", image_source),
    Setting("distill_unlabeled_ratio", number(low=0, low_open=True)),
    Setting("distill_teacher_every", whole(1)),
    Setting("distill_warmup", number(low=0)),
    Setting("distill_stop", whole(0)),
)}
# Names of the cwd temperature before loss arguments existed; they become distill_loss_args' tau.
TAU_ALIASES = ("distill_tau", "cwd_tau")
OLD_TAU_DEFAULT = 1.0
ALIASES: dict[str, str] = {alias: s.key for s in SETTINGS.values() for alias in s.aliases}


def canonicalize(values: Mapping[str, Any], given: Collection[str] | None = None) -> tuple[dict, dict[str, str]]:
    """Fold aliases into their settings.

    Args:
        values: Keys and values, settings among them (other keys pass through unchanged).
        given: The keys the user set explicitly (default: every key of ``values``). Ultralytics
            fills in defaults for every config key, its own ``dis`` included, so a default must not
            count as a choice; a key whose value is None counts as not given.

    Returns:
        The values under canonical keys (settings not given are absent), and for each setting
        given, the key it was written as.

    Raises:
        SettingError: One setting given under two names with different values.
    """
    given = set(values) if given is None else set(given)
    out = {k: v for k, v in values.items() if k not in ALIASES and k not in SETTINGS and k not in TAU_ALIASES}
    written: dict[str, str] = {}
    for setting in SETTINGS.values():
        names = [k for k in (setting.key, *setting.aliases) if k in given and values.get(k) is not None]
        if len({repr(values[k]) for k in names}) > 1:
            raise SettingError(f"{' and '.join(f'{k}={values[k]!r}' for k in names)} name the same setting "
                               f"({setting.key}) with different values: give one")
        if names:
            out[setting.key], written[setting.key] = values[names[0]], names[0]
    taus = [k for k in TAU_ALIASES if k in given and values.get(k) is not None]
    if taus:
        loss = str(out.get("distill_loss", SETTINGS["distill_loss"].default)).lower()
        tau, key = values[taus[0]], taus[0]
        if loss in LOSSES and "tau" in loss_arguments(loss):
            args = dict(out.get("distill_loss_args") or {})
            if "tau" in args and args["tau"] != tau:
                raise SettingError(f"{key}={tau!r} and distill_loss_args tau={args['tau']!r} differ: give one")
            out["distill_loss_args"] = {**args, "tau": tau}
            written.setdefault("distill_loss_args", key)
        elif tau != OLD_TAU_DEFAULT:
            raise SettingError(f"{key}={tau!r} is the temperature of the 'cwd' loss, but the loss is {loss!r}, "
                               "which has none")
    return out, written


@dataclass(frozen=True)
class DistillSettings:
    """Everything that defines one distillation, validated; field names are the setting keys.

    ``distill_model`` (the teacher) is Ultralytics' own key; the rest are `SETTINGS`.
    """

    distill_model: str
    distill_weight: float = SETTINGS["distill_weight"].default
    distill_loss: str = SETTINGS["distill_loss"].default
    distill_loss_args: dict[str, Any] = field(default_factory=dict)
    distill_teacher_layers: str | tuple[int, ...] = SETTINGS["distill_teacher_layers"].default
    distill_student_layers: str | tuple[int, ...] = SETTINGS["distill_student_layers"].default
    distill_mask: str = SETTINGS["distill_mask"].default
    distill_mask_bg: float = SETTINGS["distill_mask_bg"].default
    distill_det: float = SETTINGS["distill_det"].default
    distill_det_conf: float = SETTINGS["distill_det_conf"].default
    distill_det_mode: str = SETTINGS["distill_det_mode"].default
    distill_det_targets: str = SETTINGS["distill_det_targets"].default
    distill_det_labels: str = SETTINGS["distill_det_labels"].default
    distill_unlabeled: str = SETTINGS["distill_unlabeled"].default
    distill_unlabeled_ratio: float = SETTINGS["distill_unlabeled_ratio"].default
    distill_teacher_every: int = SETTINGS["distill_teacher_every"].default
    distill_warmup: float = SETTINGS["distill_warmup"].default
    distill_stop: int = SETTINGS["distill_stop"].default

    @classmethod
    def from_values(cls, values: Mapping[str, Any], written: Mapping[str, str] | None = None,
                    check_teacher: bool = True) -> DistillSettings:
        """Check every setting in ``values`` (canonical keys; missing ones take their defaults).

        Args:
            values: Canonical keys and values (see `canonicalize`), ``distill_model`` among them.
            written: For error messages, the key each setting was written as.
            check_teacher: Resolve ``distill_model`` to a file on disk (a module is taken as it is).

        Raises:
            SettingError: A bad value; the message names the key as written and what is accepted.
            FileNotFoundError: The teacher file does not exist.
        """
        written = dict(written or {})
        clean = {}
        for key, setting in SETTINGS.items():
            raw = values.get(key)
            clean[key] = setting.check(setting.default if raw is None else raw, written.get(key, key))
        try:  # the loss's own arguments, checked by the loss itself
            build_loss(clean["distill_loss"], clean["distill_loss_args"])
        except ValueError as error:
            raise SettingError(f"{written.get('distill_loss_args', 'distill_loss_args')}: {error}") from None
        if clean["distill_weight"] == 0 and clean["distill_det"] == 0:
            raise SettingError(f"{written.get('distill_weight', 'distill_weight')}=0 and "
                               f"{written.get('distill_det', 'distill_det')}=0: nothing to distil; give a feature "
                               "weight, a detection weight, or train without the teacher (the baseline)")
        if clean["distill_det_mode"] == "offline" and clean["distill_det"] > 0 and not clean["distill_unlabeled"]:
            raise SettingError(f"{written.get('distill_det_mode', 'distill_det_mode')}='offline' has the teacher label "
                               "the unlabeled images: give distill_unlabeled (or use 'online')")
        offline = clean["distill_det_mode"] == "offline"
        if clean["distill_teacher_every"] > 1 and clean["distill_det"] > 0 and not offline:
            raise SettingError(f"{written.get('distill_teacher_every', 'distill_teacher_every')}="
                               f"{clean['distill_teacher_every']} runs the teacher on some batches only, so its "
                               "detections must come from its stored labels: set distill_det_mode: offline")
        if clean["distill_det_labels"] and not offline:
            raise SettingError(f"{written.get('distill_det_labels', 'distill_det_labels')}="
                               f"{clean['distill_det_labels']!r} gives stored labels, which offline distillation "
                               "reads: set distill_det_mode: offline")
        teacher = values.get("distill_model")
        if not teacher:
            raise SettingError("distill_model is not set: give the teacher checkpoint (.pt) or model YAML")
        if check_teacher and isinstance(teacher, str):
            teacher = str(resolve_model_file(teacher, "teacher (distill_model)"))
        return cls(distill_model=teacher, **clean)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (layers as lists), e.g. for ``distill.json``."""
        values = asdict(self)
        values["distill_model"] = str(self.distill_model)
        for key in ("distill_teacher_layers", "distill_student_layers"):
            values[key] = values[key] if values[key] == "auto" else list(values[key])
        return values

    def write_into(self, args: Any) -> None:
        """Put the resolved settings into an Ultralytics args namespace, so ``args.yaml`` and ``last.pt``
        hold them under their own keys (``dis`` mirrors ``distill_weight``; the old tau names are cleared)."""
        for key, value in self.as_dict().items():
            if key != "distill_model":
                setattr(args, key, value)
        args.dis = self.distill_weight
        for key in TAU_ALIASES:
            if hasattr(args, key):
                setattr(args, key, None)


def register_cfg_keys(extra: Mapping[str, Any] | None = None) -> None:
    """Add the settings (and ``extra`` keys) to Ultralytics' default config (idempotent).

    Their default there is None, meaning "not given": `canonicalize` then falls back to the
    setting's own default, and Ultralytics' ``dis`` default (6.0) is never mistaken for a choice.
    """
    from ultralytics.utils import DEFAULT_CFG, DEFAULT_CFG_DICT

    for key, default in {**dict.fromkeys([*SETTINGS, "distill_tau"]), **(extra or {})}.items():
        if key not in DEFAULT_CFG_DICT:
            DEFAULT_CFG_DICT[key] = default
            setattr(DEFAULT_CFG, key, default)
