"""Run parameters: one class per notebook, composed of the groups of keys it reads, validated before any work.

The keys are flat, the same names in ``params/*.yaml``, in each notebook's ``parameters`` cell and here, so
``papermill ... -p distill_loss cwd`` and ``-f params/demo.yaml`` both land in the same field. Their defaults and
meanings are written once, in ``distil/cfg/default.yaml`` (distil's keys) and Ultralytics' ``cfg/default.yaml``
(its own: ``imgsz``, ``epochs``, ...), and read from there (`distil.defaults`); the distillation settings are also
checked by the engine (`distil.engine.settings`), and their older names (``loss``, ``teacher_layers``, ...)
are accepted as aliases.

Each notebook's class holds only the groups of keys that notebook reads (`SeriesKeys` for all, `DistillKeys` for
the one that trains, ...), so its parameters cell lists only those. One params file may serve the whole series,
so a key that belongs to another notebook is accepted and ignored; a key neither distil nor Ultralytics knows is a
typo and stops the run, with the closest valid names suggested. `DistillParams` also takes any other Ultralytics
training key (``cos_lr``, ``lr0``, ``mosaic``, ...) and passes it on to training, where Ultralytics checks it.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ultralytics.utils import LOGGER

from distil import teacher_stages as stage_list
from distil.defaults import distil_keys, key, ultralytics_keys
from distil.engine.checkpoints import load_model
from distil.engine.model import check_student
from distil.engine.settings import ALIASES, SETTINGS, TAU_ALIASES, DistillSettings, SettingError, canonicalize
from distil.engine.teacher import build_from_yaml
from distil.engine.unlabeled import UnlabeledImagesError, unlabeled_images
from distil.params_files import BASE_KEY, ParamsFileError, read_params_file
from distil.paths import resolve_model_file, resolve_path

PLAIN_TYPES = (str, int, float, bool, list, tuple, dict, type(None))
NOTEBOOK_NAMES_IGNORED = {"In", "Out", "exit", "quit", "get_ipython"}
# older names of keys that are Ultralytics' own now, accepted with one line that says so
RENAMED = {"hours": "time"}
# Ultralytics keys distil itself sets for a run (from data, student, run, outputs): never taken from params
SET_BY_DISTIL = {"model", "project", "exist_ok", "task", "mode", "save_dir"}


class ParamsError(ValueError):
    """A parameter is unknown, of the wrong type, out of range, or names a missing file."""


def param(name: str) -> Any:
    """The field of a key: its default and meaning from the defaults files (`distil.defaults`)."""
    spec = key(name)
    aliases = SETTINGS[name].aliases if name in SETTINGS else ()
    metadata = {"help": spec.help + (f" (alias: {', '.join(aliases)})" if aliases else ""),
                "ultralytics": name not in distil_keys()}
    if isinstance(spec.default, (dict, list)):
        default = spec.default
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=spec.default, metadata=metadata)


def field_help(params_class: type, name: str) -> str:
    """What a field means (its ``help`` metadata)."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(params_class) if f.name == name)


def check_type(name: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` if it fits the annotation (ints are accepted for floats; numbers must be finite), else raise."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return None
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ParamsError(f"parameter {name}={value!r} must be a finite number")
            return float(value)
        if origin is str and isinstance(value, str):
            return value
        if origin is dict and isinstance(value, dict):
            return dict(value)
        if origin is list and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(option) or (Any,)
            if item is Any or all(isinstance(v, item) and not isinstance(v, bool) for v in value):
                return list(value)
    wanted = " or ".join(o.__name__ if isinstance(o, type) else str(o) for o in options)
    raise ParamsError(f"parameter {name}={value!r} has type {type(value).__name__}; expected {wanted}")


def check_folder_name(key_name: str, value: str, special: tuple[str, ...] = ()) -> None:
    """A params value that becomes a folder's name: one plain name (no separator, not ``.`` or ``..``, no leading
    dot), or one of ``special``; what it names is the only thing distil may create or replace under that name.

    Raises:
        ParamsError: It would reach outside its folder (``run: ..`` once made the whole outputs folder the run's).
    """
    if value in special:
        return
    if not value or any(sep in value for sep in ("/", "\\", "\0")) or value.startswith(".") or value != value.strip():
        allowed = f" (or {' / '.join(repr(v) for v in special if v)})" if any(special) else ""
        raise ParamsError(f"parameter {key_name}={value!r} must be a plain folder name{allowed}: no '/', no leading "
                          "'.', not '.' or '..'")


def injected_keys(namespace: dict[str, Any]) -> set[str] | None:
    """The keys papermill injected into a notebook (its ``# Parameters`` cell, read back from IPython's input
    history), or None where the notebook did not run under papermill."""
    for source in reversed(namespace.get("In") or []):
        if isinstance(source, str) and source.lstrip().startswith("# Parameters"):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                return None
            return {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
                    if isinstance(target, ast.Name)}
    return None


@dataclass
class Params:
    """What every notebook's params do: load, validate, and say which key was written how."""

    # The key each field was written as, where that was an older name (set by `load`), for error messages.
    written: ClassVar[dict[str, str]] = {}
    takes_ultralytics_keys: ClassVar[bool] = False  # whether other Ultralytics keys go on to training

    def __post_init__(self) -> None:
        self.training: dict[str, Any] = {}  # the Ultralytics training keys passed on (set by `load`)

    # loading ----------------------------------------------------------------------------
    @classmethod
    def known_keys(cls) -> set[str]:
        """Every key a params file may hold: distil's and Ultralytics', and the older names of both."""
        return (set(distil_keys()) | set(ultralytics_keys()) | set(ALIASES) | set(TAU_ALIASES) | set(RENAMED)
                | set(stage_list.LEGACY_KEYS))

    @classmethod
    def own_keys(cls) -> set[str]:
        """The keys this notebook reads (its fields)."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def takes(cls, name: str) -> bool:
        """Whether this notebook's params use ``name`` (a field, an alias of one, or an Ultralytics training key)."""
        name = RENAMED.get(name, ALIASES.get(name, name))
        return name in cls.own_keys() or name in TAU_ALIASES and "distill_loss_args" in cls.own_keys() or (
            cls.takes_ultralytics_keys and name in ultralytics_keys() and name not in SET_BY_DISTIL)

    @classmethod
    def load(cls, source: Params | dict | str | Path | None = None, **overrides: Any):
        """Build and validate params from a dict, a YAML file or another Params, plus overrides.

        Raises:
            ParamsError: Unknown key, wrong type, bad value or missing file.
        """
        if isinstance(source, Params):
            values, written = source.as_dict(), dict(source.written)
        elif isinstance(source, (str, Path)):
            path = resolve_path(source)
            if not path.exists():
                raise ParamsError(f"params file {source} not found (looked at {path})")
            try:
                values, written = read_params_file(path), {}
            except ParamsFileError as error:
                raise ParamsError(str(error)) from None
        else:
            values, written = dict(source or {}), {}
        for given in (values, overrides):
            unknown = sorted(set(given) - cls.known_keys())
            if unknown:
                raise ParamsError(unknown_keys_message(unknown, cls))
        values, overrides = renamed(values), renamed(overrides)
        try:  # older names of distillation settings -> their keys; an override replaces what it names
            values, written_in_source = canonicalize(values)
            given, written_in_overrides = canonicalize(overrides)
        except SettingError as error:
            raise ParamsError(f"parameter {error}") from None
        values.update(given)
        written.update({**written_in_source, **written_in_overrides})
        own = cls.own_keys()
        values = stages_from_legacy_keys(values, say="teacher_stages" in own)
        hints = typing.get_type_hints(cls)
        checked = {k: check_type(written.get(k, k), v, hints[k]) for k, v in values.items() if k in own}
        params = cls(**checked)
        params.written = {k: v for k, v in written.items() if k in own}
        params.training = {k: v for k, v in values.items() if k not in own and cls.takes(k)}
        params.validate()
        return params

    @classmethod
    def from_notebook(cls, namespace: dict[str, Any]):
        """Params from a notebook's globals, right after its parameters cell (and papermill's).

        Every public global of a plain type counts as a parameter, so a misspelt ``-p`` name or params-file key
        fails here, in the notebook's first cells, not hours later. A setting that papermill injected under an
        older name (``-p loss cwd``) replaces the parameters cell's default of its key. A params file that builds
        on a ``base`` has the base's keys where papermill injected none of its own.
        """
        values = {k: v for k, v in namespace.items()
                  if not k.startswith("_") and k not in NOTEBOOK_NAMES_IGNORED and isinstance(v, PLAIN_TYPES)}
        injected = injected_keys(namespace)
        if BASE_KEY in values:
            base = values.pop(BASE_KEY)
            if injected is None:
                raise ParamsError(f"base: {base} names a params file to build on, which only a params file can do: "
                                  "give it in the file (papermill -f, distil run -f)")
            try:
                inherited = read_params_file(resolve_path(base))
            except ParamsFileError as error:
                raise ParamsError(f"{error} (give base: a path from the project root when papermill reads the file, "
                                  "or run it with distil run, which reads it from the file's own folder)") from None
            values.update({k: v for k, v in inherited.items() if k not in injected})
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(cls)}
        for alias, name in ALIASES.items():
            if alias in values and name in values and values[name] == defaults.get(name):
                del values[name]
        if any(alias in values for alias in TAU_ALIASES) and values.get("distill_loss_args") == {}:
            del values["distill_loss_args"]
        for old, new in RENAMED.items():
            if old in values and values.get(new) == defaults.get(new):
                values.pop(new, None)
        return cls.load(values)

    # validation ---------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """The key a field was written as (an alias, or its own name)."""
        return self.written.get(name, name)

    def validate(self) -> None:
        """Check values and files (each group checks its own keys)."""

    def require_model(self, name: str, role: str) -> None:
        """Check that the model file in ``name`` can be found, as a `ParamsError` if not."""
        try:
            resolve_model_file(getattr(self, name), f"{role} (parameter {name})")
        except (FileNotFoundError, ValueError) as error:
            raise ParamsError(str(error)) from None

    def as_dict(self) -> dict[str, Any]:
        """Every key, the Ultralytics training keys passed on included (what a manifest records)."""
        return {**dataclasses.asdict(self), **getattr(self, "training", {})}


def renamed(values: dict[str, Any]) -> dict[str, Any]:
    """Keys renamed to Ultralytics' own names (``hours`` -> ``time``), each said once."""
    out = dict(values)
    for old, new in RENAMED.items():
        if old in out:
            value = out.pop(old)
            if new in out and out[new] not in (value, None):
                raise ParamsError(f"parameters {old}={value!r} and {new}={out[new]!r} name the same key ({new}): "
                                  "give one")
            LOGGER.info(f"distil: '{old}' is Ultralytics' own '{new}' now ({key(new).help}); {old}: {value} is read "
                        f"as {new}: {value or None}")
            out[new] = value or None
    return out


def stages_from_legacy_keys(values: dict[str, Any], say: bool) -> dict[str, Any]:
    """The per-stage teacher keys of earlier versions (``teacher_epochs``, ...) as the ``teacher_stages`` they mean,
    said in one line where ``say`` (the teacher's notebook); other notebooks ignore them, as every teacher key."""
    legacy = {k: values[k] for k in stage_list.LEGACY_KEYS if k in values}
    if not legacy:
        return values
    out = {k: v for k, v in values.items() if k not in legacy}
    if not say:
        return out
    if out.get("teacher_stages", "auto") != "auto":
        raise ParamsError(f"parameters {', '.join(legacy)} and teacher_stages say the same (the teacher's stages): "
                          "give teacher_stages only")
    try:
        kind = stage_list.teacher_kind(out.get("teacher_weights", ""), out.get("teacher_model", ""))
        out["teacher_stages"] = stage_list.stages_from_legacy_keys(legacy, kind)
    except stage_list.StagesError as error:
        raise ParamsError(str(error)) from None
    LOGGER.info(f"distil: {', '.join(legacy)} are one list now, teacher_stages (docs/own-dataset.md); read as "
                f"teacher_stages: {json.dumps(out['teacher_stages'])}")
    return out


def unknown_keys_message(unknown: list[str], params_class: type[Params]) -> str:
    """Unknown keys, each with the closest known names."""
    known = sorted(params_class.known_keys())
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=2)
        hints.append(f"{name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    return (f"unknown parameter {', '.join(hints)}: neither distil (distil/cfg/default.yaml, docs/settings.md) nor "
            "Ultralytics (its cfg/default.yaml) has such a key")


# --- groups of keys -------------------------------------------------------------------------------------------
@dataclass
class SeriesKeys(Params):
    """What every notebook reads: the series' name, its data (the demo's generation), where outputs go."""

    name: str = param("name")
    data: str = param("data")
    outputs: str = param("outputs")
    enhance: str = param("enhance")
    samples: int = param("samples")
    rebuild: bool = param("rebuild")
    strict_labels: bool = param("strict_labels")
    demo_train: int = param("demo_train")
    demo_val: int = param("demo_val")
    demo_test: int = param("demo_test")
    demo_seed: int = param("demo_seed")
    demo_imgsz: int = param("demo_imgsz")
    demo_unlabeled: int = param("demo_unlabeled")

    def validate(self) -> None:
        super().validate()
        for name, minimum in {"demo_train": 1, "demo_val": 1, "demo_imgsz": 32, "samples": 1}.items():
            if getattr(self, name) < minimum:
                raise ParamsError(f"parameter {name}={getattr(self, name)} must be >= {minimum}")
        if min(self.demo_seed, self.demo_test, self.demo_unlabeled) < 0:
            raise ParamsError("parameters demo_seed, demo_test and demo_unlabeled must be >= 0")
        check_folder_name("name", self.name)
        if self.enhance not in {"none", "default"} and not resolve_path(self.enhance).exists():
            raise ParamsError(f"parameter enhance={self.enhance!r} is not 'none', 'default' or an existing pipeline "
                              f"YAML (looked at {resolve_path(self.enhance)})")
        if self.data != "demo":
            path = resolve_path(self.data)
            if path.suffix not in {".yaml", ".yml"} or not path.exists():
                raise ParamsError(f"parameter data={self.data!r}: expected 'demo' or an existing YOLO data.yaml "
                                  f"(looked at {path})")

    @property
    def outputs_dir(self) -> Path:
        return resolve_path(self.outputs)

    @property
    def runs_dir(self) -> Path:
        return self.outputs_dir / "runs"

    def demo_data_dir(self, n_train: int | None = None) -> Path:
        """Where the generated dataset lives: one folder per setting. Datasets that differ only in
        their number of training images share the same validation images (and the first training ones).

        ``n_train`` given (the teacher's larger set): a dataset without the unlabeled split.
        """
        unlabeled = self.demo_unlabeled if n_train is None else 0
        n_train = self.demo_train if n_train is None else n_train
        suffix = f"-u{unlabeled}" if unlabeled else ""
        return (self.outputs_dir / "data" /
                f"demo-{n_train}-{self.demo_val}-{self.demo_test}-{self.demo_imgsz}-s{self.demo_seed}{suffix}")


@dataclass
class DeviceKeys(Params):
    """Ultralytics' keys of where and how big (their defaults are Ultralytics'): what every model-running notebook
    reads."""

    imgsz: int = param("imgsz")
    batch: int = param("batch")
    device: str | int | None = param("device")
    seed: int = param("seed")
    workers: int = param("workers")

    def validate(self) -> None:
        super().validate()
        if self.imgsz < 32 or self.batch < 1 or self.workers < 0 or self.seed < 0:
            raise ParamsError(f"parameters imgsz={self.imgsz} (>= 32), batch={self.batch} (>= 1), workers="
                              f"{self.workers} and seed={self.seed} (>= 0) are out of range")

    @property
    def ultralytics_device(self) -> str | None:
        """``device`` as Ultralytics takes it (None, or the older ``'auto'``, picks the GPU when there is one)."""
        return None if self.device in (None, "", "auto") else str(self.device)


@dataclass
class TeacherKey(SeriesKeys):
    """The teacher: a checkpoint, or ``auto`` (the one 00_teacher keeps for this series), or ``none``."""

    teacher: str = param("teacher")

    @property
    def teacher_path(self) -> Path:
        """The teacher checkpoint: as given, or the one 00_teacher keeps for this name."""
        if self.teacher == "auto":
            return self.outputs_dir / "teacher" / self.name / "teacher.pt"
        return resolve_path(self.teacher) if Path(self.teacher).suffix == ".pt" else Path(self.teacher)

    def require_teacher(self) -> None:
        """Check that the teacher can be found, with a hint to run 00_teacher when it is ours to make."""
        try:
            resolve_model_file(self.teacher_path if self.teacher == "auto" else self.teacher,
                               "teacher (parameter teacher)")
        except (FileNotFoundError, ValueError) as error:
            hint = " Run notebooks/00_teacher.ipynb with the same params to build it." if self.teacher == "auto" else ""
            raise ParamsError(f"{error}{hint}") from None


@dataclass
class StudentKey(Params):
    """The student: a YOLO checkpoint or model YAML."""

    student: str = param("student")

    def require_student(self) -> None:
        """Check that the student can be found and is a YOLO detector (a Detect head), before anything is built."""
        self.require_model("student", "student")
        path = resolve_model_file(self.student, "student")
        try:
            check_student(load_model(path)[0] if path.suffix == ".pt" else build_from_yaml(path))
        except TypeError as error:
            raise ParamsError(f"parameter student={self.student!r}: {error}") from None


def check_settings(params: Params) -> None:
    """Each distillation setting the params have, alone (together, and with the teacher, where a run needs them:
    `DistillParams.distill_settings`)."""
    try:
        for name in SETTINGS:
            if hasattr(params, name):
                SETTINGS[name].check(getattr(params, name), params.key(name))
    except SettingError as error:
        raise ParamsError(f"parameter {error}") from None


@dataclass
class PairingKeys(Params):
    """Which layers of teacher and student are paired."""

    distill_teacher_layers: str | list[int] = param("distill_teacher_layers")
    distill_student_layers: str | list[int] = param("distill_student_layers")

    def validate(self) -> None:
        super().validate()
        check_settings(self)


@dataclass
class RunNameKeys(TeacherKey):
    """What teaches a run: what its folder is named after (``<name>-cwd-det-u``), read wherever runs are found."""

    distill_weight: float = param("distill_weight")
    distill_loss: str = param("distill_loss")
    distill_det: float = param("distill_det")
    distill_unlabeled: str = param("distill_unlabeled")

    @property
    def distilling(self) -> bool:
        """Whether a teacher teaches at all; if not (``teacher: none``, or both weights 0), this is the baseline:
        the same student and schedule on the labeled images alone."""
        return self.teacher != "none" and (self.distill_weight > 0 or self.distill_det > 0)

    def run_dir(self, run: str, baseline: bool = False) -> Path:
        """A run folder under outputs/runs. ``'auto'``: ``<name>-baseline``, or ``<name>-`` followed by what
        teaches: the feature loss (``mse``, ...), ``det`` for the teacher's detections, ``u`` for unlabeled
        images (e.g. ``demo-mse-det-u``)."""
        if run in ("auto", ""):
            if baseline:
                return self.runs_dir / f"{self.name}-baseline"
            parts = [self.distill_loss] if self.distill_weight > 0 else []
            parts += ["det"] if self.distill_det > 0 else []
            parts += ["u"] if self.distill_unlabeled else []
            run = "-".join([self.name, *(parts or [self.distill_loss])])
        return self.runs_dir / run

    @property
    def unlabeled_source(self) -> str:
        """``distill_unlabeled`` as a folder or list: ``demo`` becomes the generated unlabeled split."""
        if self.distill_unlabeled == "demo":
            return str(self.demo_data_dir() / "images" / "unlabeled")
        return str(resolve_path(self.distill_unlabeled)) if self.distill_unlabeled else ""

    def validate(self) -> None:
        super().validate()
        check_settings(self)
        if self.distill_unlabeled == "demo" and (self.data != "demo" or self.demo_unlabeled < 1):
            raise ParamsError(f"parameter {self.key('distill_unlabeled')}='demo' means the demo dataset's unlabeled "
                              "split: it needs data: demo and demo_unlabeled > 0 (how many images to generate)")


@dataclass
class DistillKeys(PairingKeys, RunNameKeys):
    """Every distillation setting (`distil.engine.settings`): what the training notebook reads."""

    distill_loss_args: dict = param("distill_loss_args")
    distill_mask: str = param("distill_mask")
    distill_mask_bg: float = param("distill_mask_bg")
    distill_det_conf: float = param("distill_det_conf")
    distill_det_mode: str = param("distill_det_mode")
    distill_det_targets: str = param("distill_det_targets")
    distill_det_labels: str = param("distill_det_labels")
    distill_unlabeled_ratio: float = param("distill_unlabeled_ratio")
    distill_teacher_every: int = param("distill_teacher_every")
    distill_warmup: float = param("distill_warmup")
    distill_stop: int = param("distill_stop")


@dataclass
class TimeKey(Params):
    """Ultralytics' ``time``: hours each training may take (the schedule fits itself to them)."""

    time: float | None = param("time")

    def validate(self) -> None:
        super().validate()
        if self.time is not None and self.time < 0:
            raise ParamsError(f"parameter time={self.time} must be > 0 hours (or empty: the epochs decide)")

    @property
    def hours(self) -> float | None:
        return self.time or None


# --- one class per notebook ---------------------------------------------------------------------------------
@dataclass
class TeacherParams(DeviceKeys, TimeKey, TeacherKey):
    """Parameters of ``00_teacher``: make sure ``teacher`` exists, training it when asked."""

    teacher_weights: str = param("teacher_weights")
    teacher_model: str = param("teacher_model")
    teacher_train: int = param("teacher_train")
    teacher_stages: str | list = param("teacher_stages")
    teacher_cache: str = param("teacher_cache")
    teacher_batch: int = param("teacher_batch")

    def validate(self) -> None:
        super().validate()
        for name in ("teacher_train", "teacher_batch"):
            if getattr(self, name) < 0:
                raise ParamsError(f"parameter {name}={getattr(self, name)} must be >= 0")
        if self.teacher_stages != "auto" and not isinstance(self.teacher_stages, list):
            raise ParamsError(f"parameter teacher_stages={self.teacher_stages!r} must be 'auto' or a list of stages")
        if self.teacher_path.suffix != ".pt":
            raise ParamsError(f"parameter teacher={self.teacher!r} must be 'auto' or the .pt path where the teacher "
                              "is kept")
        if self.teacher_path.exists() and not self.rebuild:
            return  # used as it is (or as cached); nothing else is needed
        if self.teacher_cache and not self.rebuild:
            return  # checked when it is copied in
        if self.teacher_weights:
            self.require_model("teacher_weights", "teacher start weights")
        elif not self.teacher_model:
            raise ParamsError(
                f"no teacher at {self.teacher_path}, and no way given to make one: set teacher: <checkpoint.pt> to use "
                "a trained detector as it is, teacher_weights: <checkpoint.pt> (with teacher_epochs) to fine-tune one "
                "on your data, or teacher_model: <model.yaml> (e.g. rtdetr-demo.yaml) to train one from scratch; "
                "params/custom.yaml shows all three")
        else:
            self.require_model("teacher_model", "teacher architecture")
        if not self.stages:
            raise ParamsError(f"teacher_stages is empty, which trains nothing, so teacher must be an existing "
                              f"checkpoint; {self.teacher_path} was not found")

    @property
    def stages(self) -> list[dict[str, Any]]:
        """The teacher's stages, ``auto`` resolved, checked (`distil.teacher_stages`).

        Raises:
            ParamsError: They cannot train this teacher.
        """
        try:
            kind = stage_list.teacher_kind(self.teacher_weights, self.teacher_model)
            stages = stage_list.auto_stages(kind) if self.teacher_stages == "auto" else self.teacher_stages
            return stage_list.checked_stages(stages, kind, set(ultralytics_keys()))
        except stage_list.StagesError as error:
            raise ParamsError(str(error)) from None

    @property
    def teacher_dir(self) -> Path:
        return self.outputs_dir / "teacher" / self.name


@dataclass
class PreprocessParams(SeriesKeys):
    """Parameters of ``01_preprocessing``."""

    explore_pipeline: str = param("explore_pipeline")
    explore_image: int = param("explore_image")


@dataclass
class FeatureParams(DeviceKeys, StudentKey, PairingKeys, TeacherKey):
    """Parameters of ``02_teacher_features``."""

    def validate(self) -> None:
        super().validate()
        self.require_teacher()
        self.require_student()


@dataclass
class EvalParams(DeviceKeys, StudentKey, RunNameKeys):
    """Parameters of ``04_evaluate``."""

    baseline_run: str = param("baseline_run")
    distilled_run: str = param("distilled_run")
    oracle_run: str = param("oracle_run")
    speed_reps: int = param("speed_reps")

    def validate(self) -> None:
        super().validate()
        check_folder_name("baseline_run", self.baseline_run, ("auto",))
        check_folder_name("distilled_run", self.distilled_run, ("auto",))
        check_folder_name("oracle_run", self.oracle_run, ("auto", ""))
        self.require_teacher()
        for label, path in self.models().items():
            if label != "teacher" and not path.exists():
                how = ("with benchmarks/kd_study.py --arms oracle, or set oracle_run: ''" if label == "oracle" else
                       "with 03_distill first (with teacher: none for the baseline)")
                raise ParamsError(f"the {label} run's {path} was not found; train it {how}")

    @property
    def eval_dir(self) -> Path:
        return self.outputs_dir / "eval" / self.name

    def models(self) -> dict[str, Path]:
        """Label -> checkpoint of the models compared: teacher, baseline, distilled, and the oracle if any."""
        models = {"teacher": self.teacher_path,
                  "baseline": self.run_dir(self.baseline_run, baseline=True) / "weights" / "best.pt",
                  "distilled": self.run_dir(self.distilled_run) / "weights" / "best.pt"}
        oracle = self.oracle_checkpoint()
        return {**models, "oracle": oracle} if oracle else models

    def oracle_checkpoint(self) -> Path | None:
        """The ceiling's checkpoint: a named run, or with 'auto' the study's oracle of this seed, once it finished
        (it has a manifest) training the same student on the same data."""
        if not self.oracle_run:
            return None
        if self.oracle_run != "auto":
            return self.run_dir(self.oracle_run) / "weights" / "best.pt"
        study = self.runs_dir / f"study-oracle-s{self.seed}"
        manifest = study / "manifest.json"
        if not manifest.exists():
            return None
        trained = json.loads(manifest.read_text())["params"]
        same = all(trained.get(name) == getattr(self, name) for name in ("name", "data", "student", "imgsz", "seed"))
        return study / "weights" / "best.pt" if same else None


@dataclass
class DashboardParams(RunNameKeys):
    """Parameters of ``05_dashboard`` (served by Voila)."""

    models: str = param("models")


@dataclass
class DistillParams(DeviceKeys, TimeKey, StudentKey, DistillKeys):
    """Parameters of ``03_distill``: one distillation run (or, with weight 0, its baseline). Any other Ultralytics
    training key in the params (``lr0``, ``cos_lr``, ``mosaic``, ...) goes on to training (`training`)."""

    takes_ultralytics_keys: ClassVar[bool] = True

    epochs: int = param("epochs")
    patience: int = param("patience")
    amp: bool = param("amp")
    plots: bool = param("plots")
    resume: bool = param("resume")
    val_period: int = param("val_period")
    run: str = param("run")
    run_cache: str = param("run_cache")

    def validate(self) -> None:
        super().validate()
        check_folder_name("run", self.run, ("auto", ""))
        if self.epochs < 1:
            raise ParamsError(f"parameter epochs={self.epochs} must be >= 1")
        if self.val_period < 1:
            raise ParamsError(f"parameter val_period={self.val_period} must be >= 1 (1 validates every epoch)")
        reserved = sorted(set(self.training) & SET_BY_DISTIL)
        if reserved:
            raise ParamsError(f"parameters {', '.join(reserved)} are set by distil for each run (from student, run "
                              "and outputs): leave them out")
        self.check_training_keys()
        self.require_student()
        if self.run_cache and not self.rebuild:
            shipped = resolve_path(self.run_cache)
            if not (shipped / "weights" / "best.pt").exists() or not (shipped / "manifest.json").exists():
                raise ParamsError(f"parameter run_cache={self.run_cache!r}: {shipped} must hold weights/best.pt and "
                                  "manifest.json (a run shipped by distil ship-run); set run_cache: '' to train this "
                                  "run here")
        if self.distilling:
            self.require_teacher()
            self.distill_settings()
            if self.distill_unlabeled and self.distill_unlabeled != "demo":
                try:
                    unlabeled_images(self.unlabeled_source)
                except UnlabeledImagesError as error:
                    raise ParamsError(f"parameter {error}") from None

    def check_training_keys(self) -> None:
        """The Ultralytics keys passed on, checked by Ultralytics' own configuration check now, not at training."""
        from ultralytics.cfg import check_cfg

        try:
            check_cfg(dict(self.training))
        except (TypeError, ValueError, SyntaxError) as error:
            raise ParamsError(f"parameter {error}") from None
        for name, value in self.training.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ParamsError(f"parameter {name}={value!r} must be a finite number")

    def distill_settings(self) -> DistillSettings:
        """The distillation these params ask for, checked by the engine (the check the trainer makes too).

        Raises:
            ParamsError: A setting has a bad value; the message names the key as written.
        """
        values = {name: getattr(self, name) for name in SETTINGS}
        values["distill_model"] = str(self.teacher_path)
        values["distill_unlabeled"] = self.unlabeled_source
        values["distill_det_labels"] = str(resolve_path(self.distill_det_labels)) if self.distill_det_labels else ""
        try:
            return DistillSettings.from_values(values, self.written, check_teacher=False)
        except SettingError as error:
            raise ParamsError(f"parameter {error}") from None

    @property
    def run_name(self) -> str:
        return self.run_dir(self.run, baseline=not self.distilling).name


NOTEBOOK_PARAMS = {"00_teacher": TeacherParams, "01_preprocessing": PreprocessParams,
                   "02_teacher_features": FeatureParams, "03_distill": DistillParams, "04_evaluate": EvalParams,
                   "05_dashboard": DashboardParams}
