"""Run parameters: one dataclass per notebook, flat keys, validated before any work starts.

The same flat names appear in ``params/*.yaml``, in each notebook's ``parameters`` cell and
here, so ``papermill ... -p distill_loss cwd`` and ``-f params/demo.yaml`` both land in the same
field. Each field's meaning is in its metadata (``help``), which the notebooks' parameters cells
show. The distillation settings are not defined here: their fields take key, default and help from
`distil.engine.settings.SETTINGS`, which also checks them, and their older names (``loss``,
``teacher_layers``, ...) are accepted as aliases.

One params file may serve the whole notebook series, so a key that belongs to another notebook is
accepted and ignored; a key no notebook knows is a typo and stops the run, with the closest valid
names suggested.
"""

from __future__ import annotations

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

from distil.engine.checkpoints import load_model
from distil.engine.model import check_student
from distil.engine.settings import ALIASES, SETTINGS, TAU_ALIASES, DistillSettings, SettingError, canonicalize
from distil.engine.teacher import build_from_yaml
from distil.engine.unlabeled import UnlabeledImagesError, unlabeled_images
from distil.params_files import BASE_KEY, ParamsFileError, read_params_file
from distil.paths import resolve_model_file, resolve_path

PLAIN_TYPES = (str, int, float, bool, list, tuple, dict, type(None))
NOTEBOOK_NAMES_IGNORED = {"In", "Out", "exit", "quit", "get_ipython"}


class ParamsError(ValueError):
    """A parameter is unknown, of the wrong type, out of range, or names a missing file."""


def param(default: Any, help: str) -> Any:
    """A params field with its meaning in the metadata."""
    return dataclasses.field(default=default, metadata={"help": help})


def setting(key: str) -> Any:
    """A params field for a distillation setting: default and meaning come from `SETTINGS`."""
    spec = SETTINGS[key]
    default = spec.default
    factory = (lambda: copy.deepcopy(default)) if isinstance(default, (dict, list)) else None
    metadata = {"help": spec.help + (f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""),
                "setting": True}
    if factory:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_help(params_class: type, name: str) -> str:
    """What a field means (its ``help`` metadata)."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(params_class) if f.name == name)


def check_type(name: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` if it fits the annotation (ints are accepted for floats), else raise."""
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


@dataclass
class Params:
    """Parameters every notebook shares."""

    name: str = param("demo", "run name: outputs go to outputs/*/<name>")
    data: str = param("demo", "'demo' (generated here) or the path of a YOLO data.yaml")
    imgsz: int = param(160, "training and validation image size")
    batch: int = param(16, "images per batch")
    device: str = param("auto", "'auto' (GPU if present), 'cpu', '0', '0,1', ...")
    seed: int = param(0, "seed of training (the generated data has its own, demo_seed)")
    workers: int = param(0, "dataloader workers (Ultralytics uses 0 on CPU anyway)")
    outputs: str = param("outputs", "root of everything a run writes")
    demo_train: int = param(400, "demo dataset: training images")
    demo_val: int = param(100, "demo dataset: validation images")
    demo_test: int = param(100, "demo dataset: test images (kept apart for results reported after tuning on val)")
    demo_seed: int = param(0, "demo dataset: seed of the generated images (training seeds vary apart from it)")
    demo_imgsz: int = param(160, "demo dataset: image side in pixels")
    demo_unlabeled: int = param(0, "demo dataset: images of its unlabeled split (distill_unlabeled: demo)")
    enhance: str = param("none", "enhancement applied to every image models see: 'none', 'default' or a "
                                 "pipeline YAML")
    samples: int = param(4, "sample images each figure shows")
    rebuild: bool = param(False, "redo work whose result exists (a teacher, a finished run) instead of reusing it")

    registry: ClassVar[list[type[Params]]] = []
    # The key each field was written as, where that was an older name (set by `load`), for error messages.
    written: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Params.registry.append(cls)

    # loading ----------------------------------------------------------------------------
    @classmethod
    def known_keys(cls) -> set[str]:
        """Every key some notebook's params accept (a params file may serve them all), aliases included."""
        return {f.name for c in [Params, *Params.registry] for f in dataclasses.fields(c)} | set(ALIASES) | \
            set(TAU_ALIASES)

    @classmethod
    def load(cls, source: Params | dict | str | Path | None = None, **overrides: Any):
        """Build and validate params from a dict, a YAML file or another Params, plus overrides.

        Raises:
            ParamsError: Unknown key, wrong type, bad value or missing file.
        """
        if isinstance(source, Params):
            values, written = dataclasses.asdict(source), dict(source.written)
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
        unknown = sorted(set(values) - cls.known_keys())
        if unknown:
            raise ParamsError(unknown_keys_message(unknown, cls))
        unknown = sorted(set(overrides) - cls.known_keys())
        if unknown:
            raise ParamsError(unknown_keys_message(unknown, cls))
        try:  # older names of distillation settings -> their keys; an override replaces what it names
            values, written_in_source = canonicalize(values)
            given, written_in_overrides = canonicalize(overrides)
        except SettingError as error:
            raise ParamsError(f"parameter {error}") from None
        values.update(given)
        written.update({**written_in_source, **written_in_overrides})
        own = {f.name for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        checked = {k: check_type(written.get(k, k), v, hints[k]) for k, v in values.items() if k in own}
        params = cls(**checked)
        params.written = {k: v for k, v in written.items() if k in own}
        params.validate()
        return params

    @classmethod
    def from_notebook(cls, namespace: dict[str, Any]):
        """Params from a notebook's globals, right after its parameters cell (and papermill's).

        Every public global of a plain type counts as a parameter, so a misspelt ``-p`` name or
        params-file key fails here, in the notebook's first cells, not hours later. A setting that
        papermill injected under an older name (``-p loss cwd``) replaces the parameters cell's
        default of its key.
        """
        values = {k: v for k, v in namespace.items()
                  if not k.startswith("_") and k not in NOTEBOOK_NAMES_IGNORED and isinstance(v, PLAIN_TYPES)}
        if BASE_KEY in values:
            raise ParamsError(f"this params file builds on base: {values[BASE_KEY]}, which papermill's -f does not "
                              "read: run it with distil run <notebook> -f <file> (or python -m distil.run_notebook), "
                              "which resolves it, or write every key into the file")
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(cls)}
        for alias, key in ALIASES.items():
            if alias in values and key in values and values[key] == defaults.get(key):
                del values[key]
        if any(alias in values for alias in TAU_ALIASES) and values.get("distill_loss_args") == {}:
            del values["distill_loss_args"]
        return cls.load(values)

    # validation ---------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """The key a field was written as (an alias, or its own name)."""
        return self.written.get(name, name)

    def validate(self) -> None:
        """Check values and files; subclasses extend this."""
        positive = {"imgsz": 32, "batch": 1, "demo_train": 1, "demo_val": 1, "demo_imgsz": 32, "samples": 1}
        for key, minimum in positive.items():
            if getattr(self, key) < minimum:
                raise ParamsError(f"parameter {key}={getattr(self, key)} must be >= {minimum}")
        if min(self.workers, self.seed, self.demo_seed, self.demo_test, self.demo_unlabeled) < 0:
            raise ParamsError("parameters workers, seed, demo_seed, demo_test and demo_unlabeled must be >= 0")
        check_folder_name("name", self.name)
        if self.enhance not in {"none", "default"} and not resolve_path(self.enhance).exists():
            raise ParamsError(f"parameter enhance={self.enhance!r} is not 'none', 'default' or an existing pipeline "
                              f"YAML (looked at {resolve_path(self.enhance)})")
        if self.data != "demo":
            path = resolve_path(self.data)
            if path.suffix not in {".yaml", ".yml"} or not path.exists():
                raise ParamsError(f"parameter data={self.data!r}: expected 'demo' or an existing YOLO data.yaml "
                                  f"(looked at {path})")

    def require_model(self, key: str, role: str) -> None:
        """Check that the model file in ``key`` can be found, as a `ParamsError` if not."""
        try:
            resolve_model_file(getattr(self, key), f"{role} (parameter {key})")
        except (FileNotFoundError, ValueError) as error:
            raise ParamsError(str(error)) from None

    # locations ----------------------------------------------------------------------------
    @property
    def outputs_dir(self) -> Path:
        return resolve_path(self.outputs)

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

    @property
    def ultralytics_device(self) -> str | None:
        """``device`` as Ultralytics takes it (None picks the GPU when there is one)."""
        return None if self.device == "auto" else self.device

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_folder_name(key: str, value: str, special: tuple[str, ...] = ()) -> None:
    """A params value that becomes a folder's name: one plain name (no separator, not ``.`` or ``..``, no leading
    dot), or one of ``special``; what it names is the only thing distil may create or replace under that name.

    Raises:
        ParamsError: It would reach outside its folder (``run: ..`` once made the whole outputs folder the run's).
    """
    if value in special:
        return
    if not value or any(sep in value for sep in ("/", "\\", "\0")) or value.startswith(".") or value != value.strip():
        allowed = f" (or {' / '.join(repr(v) for v in special if v)})" if any(special) else ""
        raise ParamsError(f"parameter {key}={value!r} must be a plain folder name{allowed}: no '/', no leading '.', "
                          "not '.' or '..'")


def unknown_keys_message(unknown: list[str], params_class: type[Params]) -> str:
    """Unknown keys, each with the closest known names."""
    known = sorted(params_class.known_keys())
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=2)
        hints.append(f"{key!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    return (f"unknown parameter {', '.join(hints)}; valid keys for {params_class.__name__}: "
            f"{', '.join(f.name for f in dataclasses.fields(params_class))}")


@dataclass
class ModelParams(Params):
    """Parameters naming the teacher and the student (the notebooks that load models)."""

    teacher: str = param("auto", "teacher .pt; 'auto' is the one 00_teacher keeps in "
                                 "outputs/teacher/<name>/teacher.pt; 'none' trains the baseline")
    student: str = param("yolov8s.yaml", "student .pt or YOLO model YAML")
    distill_weight: float = setting("distill_weight")
    distill_loss: str = setting("distill_loss")
    distill_loss_args: dict = setting("distill_loss_args")
    distill_teacher_layers: str | list[int] = setting("distill_teacher_layers")
    distill_student_layers: str | list[int] = setting("distill_student_layers")
    distill_mask: str = setting("distill_mask")
    distill_mask_bg: float = setting("distill_mask_bg")
    distill_det: float = setting("distill_det")
    distill_det_conf: float = setting("distill_det_conf")
    distill_det_mode: str = setting("distill_det_mode")
    distill_det_targets: str = setting("distill_det_targets")
    distill_det_labels: str = setting("distill_det_labels")
    distill_unlabeled: str = setting("distill_unlabeled")
    distill_unlabeled_ratio: float = setting("distill_unlabeled_ratio")
    distill_teacher_every: int = setting("distill_teacher_every")
    distill_warmup: float = setting("distill_warmup")
    distill_stop: int = setting("distill_stop")

    @property
    def teacher_path(self) -> Path:
        """The teacher checkpoint: as given, or the one 00_teacher keeps for this name."""
        if self.teacher == "auto":
            return self.outputs_dir / "teacher" / self.name / "teacher.pt"
        return resolve_path(self.teacher) if Path(self.teacher).suffix == ".pt" else Path(self.teacher)

    @property
    def runs_dir(self) -> Path:
        return self.outputs_dir / "runs"

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
        try:  # each setting alone; together (and the teacher) where a run needs them: DistillParams
            for key in SETTINGS:
                SETTINGS[key].check(getattr(self, key), self.key(key))
        except SettingError as error:
            raise ParamsError(f"parameter {error}") from None
        if self.distill_unlabeled == "demo" and (self.data != "demo" or self.demo_unlabeled < 1):
            raise ParamsError(f"parameter {self.key('distill_unlabeled')}='demo' means the demo dataset's unlabeled "
                              "split: it needs data: demo and demo_unlabeled > 0 (how many images to generate)")

    def require_student(self) -> None:
        """Check that the student can be found and is a YOLO detector (a Detect head), before anything is built."""
        self.require_model("student", "student")
        path = resolve_model_file(self.student, "student")
        try:
            check_student(load_model(path)[0] if path.suffix == ".pt" else build_from_yaml(path))
        except TypeError as error:
            raise ParamsError(f"parameter student={self.student!r}: {error}") from None

    def require_teacher(self) -> None:
        """Check that the teacher can be found, with a hint to run 00_teacher when it is ours to make."""
        try:
            resolve_model_file(self.teacher_path if self.teacher == "auto" else self.teacher,
                               "teacher (parameter teacher)")
        except (FileNotFoundError, ValueError) as error:
            hint = " Run notebooks/00_teacher.ipynb with the same params to build it." if self.teacher == "auto" else ""
            raise ParamsError(f"{error}{hint}") from None


@dataclass
class TrainingParams(ModelParams):
    """What the notebooks that train (00_teacher, 03_distill) share beyond the models."""

    hours: float = param(0.0, "hours each training run may take (each teacher stage, each student): the learning-rate "
                             "schedule fits itself to them (Ultralytics' time; for a GPU lent for minutes); 0: the "
                             "epochs decide")

    def validate(self) -> None:
        super().validate()
        if self.hours < 0:
            raise ParamsError(f"parameter hours={self.hours} must be >= 0 (0 lets the epochs decide)")


@dataclass
class TeacherParams(TrainingParams):
    """Parameters of ``00_teacher``: make sure ``teacher`` exists, training it when asked."""

    teacher_weights: str = param("", "start from this checkpoint (e.g. rtdetr-x.pt); '' trains teacher_model")
    teacher_model: str = param("", "architecture trained from scratch when no weights are given, e.g. "
                                   "rtdetr-demo.yaml (RT-DETR: encoder first, then decoder) or a YOLO model YAML")
    teacher_train: int = param(800, "demo data: training images the teacher sees (the student sees demo_train)")
    teacher_encoder_epochs: int = param(20, "dense-head pre-training of backbone + encoder (0 skips it)")
    teacher_epochs: int = param(15, "RT-DETR epochs (with teacher_weights: 0 uses them as they are)")
    teacher_freeze_encoder: bool = param(True, "train only the decoder on top of the pre-trained encoder")
    teacher_lr0: float = param(0.001, "AdamW learning rate of the RT-DETR stage")
    teacher_refine_epochs: int = param(0, "RT-DETR from scratch: more decoder epochs after the decoder stage, from its "
                                          "best, at teacher_refine_lr0 (0: none)")
    teacher_refine_lr0: float = param(0.0003, "AdamW learning rate of the refine stage: lower, to settle a decoder "
                                              "that the decoder stage's rate leaves shaking from epoch to epoch")
    teacher_cache: str = param("", "a teacher 00_teacher made elsewhere with these same params (with its .json "
                                   "record beside it), copied in instead of training; '' trains here")
    teacher_batch: int = param(0, "images per batch when training the teacher (0: batch, the student's)")

    def validate(self) -> None:
        super().validate()
        for key in ("teacher_train", "teacher_encoder_epochs", "teacher_epochs", "teacher_batch",
                    "teacher_refine_epochs"):
            if getattr(self, key) < 0:
                raise ParamsError(f"parameter {key}={getattr(self, key)} must be >= 0")
        if self.teacher_refine_epochs and self.teacher_weights:
            raise ParamsError(f"teacher_refine_epochs={self.teacher_refine_epochs} refines an RT-DETR trained from "
                              "scratch (teacher_model); a teacher fine-tuned from teacher_weights trains in one stage: "
                              "set teacher_refine_epochs: 0 and give teacher_epochs what it needs")
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
        elif self.teacher_epochs < 1:
            raise ParamsError(f"teacher_epochs=0 trains nothing, so teacher must be an existing checkpoint; "
                              f"{self.teacher_path} was not found")
        else:
            self.require_model("teacher_model", "teacher architecture")

    @property
    def teacher_dir(self) -> Path:
        return self.outputs_dir / "teacher" / self.name


@dataclass
class PreprocessParams(Params):
    """Parameters of ``01_preprocessing``."""

    explore_pipeline: str = param("default", "the pipeline shown: 'default' or a pipeline YAML")
    explore_image: int = param(0, "index (among validation images) of the image tuned live with sliders")


@dataclass
class FeatureParams(ModelParams):
    """Parameters of ``02_teacher_features``."""

    def validate(self) -> None:
        super().validate()
        self.require_teacher()
        self.require_student()


@dataclass
class EvalParams(ModelParams):
    """Parameters of ``04_evaluate``."""

    baseline_run: str = param("auto", "run trained without distillation ('auto': <name>-baseline)")
    distilled_run: str = param("auto", "run trained with distillation ('auto': <name>-<what teaches>, e.g. "
                                       "demo-cwd-det-u)")
    oracle_run: str = param("auto", "the ceiling, trained on true labels ('auto': study-oracle-s<seed> if the study "
                                    "ran it; '': none)")
    speed_reps: int = param(20, "timed repetitions per model (after warm-up)")

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
        same = all(trained.get(key) == getattr(self, key) for key in ("name", "data", "student", "imgsz", "seed"))
        return study / "weights" / "best.pt" if same else None


@dataclass
class DashboardParams(ModelParams):
    """Parameters of ``05_dashboard`` (served by Voila)."""

    models: str = param("", "the models compared: label=path.pt pairs, comma-separated (DISTIL_MODELS wins); "
                            "empty means the baseline and distilled runs of this name")


@dataclass
class DistillParams(TrainingParams):
    """Parameters of ``03_distill``: one distillation run (or, with weight 0, its baseline)."""

    epochs: int = param(30, "training epochs")
    optimizer: str = param("auto", "Ultralytics optimizer ('auto', 'SGD', 'AdamW', ...)")
    lr0: float = param(0.01, "initial learning rate")
    nbs: int = param(64, "nominal batch size: gradients of batches add up to it before each optimizer step (a small "
                         "dataset learns in fewer epochs with a smaller one)")
    patience: int = param(100, "epochs without improvement before stopping early")
    amp: bool = param(True, "mixed precision on a GPU (the teacher too); the teacher in bf16 on a CPU with bf16 units")
    mosaic: float = param(1.0, "probability of mosaic augmentation")
    close_mosaic: int = param(10, "last epochs trained without mosaic")
    val_period: int = param(1, "validate the first epoch, every N-th and the last N (checkpoints follow): on a small "
                               "CPU task validation is a large share of each epoch")
    fraction: float = param(1.0, "share of the training images used")
    plots: bool = param(True, "Ultralytics training plots")
    resume: bool = param(False, "continue this run (same name) from its last.pt")
    run: str = param("auto", "run folder under outputs/runs ('auto': <name>-baseline, or <name>-<what teaches>, "
                             "e.g. demo-mse-det-u)")
    run_cache: str = param("", "a finished run of these same params shipped as a folder (make baseline), copied in "
                               "instead of training when this run is absent; '' trains here")

    def validate(self) -> None:
        super().validate()
        check_folder_name("run", self.run, ("auto", ""))
        if self.epochs < 1:
            raise ParamsError(f"parameter epochs={self.epochs} must be >= 1")
        if not 0 < self.fraction <= 1:
            raise ParamsError(f"parameter fraction={self.fraction} must be within (0, 1]")
        if self.nbs < 1:
            raise ParamsError(f"parameter nbs={self.nbs} must be >= 1")
        if self.val_period < 1:
            raise ParamsError(f"parameter val_period={self.val_period} must be >= 1 (1 validates every epoch)")
        self.require_student()
        if self.run_cache and not self.rebuild:
            shipped = resolve_path(self.run_cache)
            if not (shipped / "weights" / "best.pt").exists() or not (shipped / "manifest.json").exists():
                raise ParamsError(f"parameter run_cache={self.run_cache!r}: {shipped} must hold weights/best.pt and "
                                  "manifest.json (a run shipped by python -m distil.shipped_runs ship); set "
                                  "run_cache: '' to train this run here")
        if self.distilling:
            self.require_teacher()
            self.distill_settings()
            if self.distill_unlabeled and self.distill_unlabeled != "demo":
                try:
                    unlabeled_images(self.unlabeled_source)
                except UnlabeledImagesError as error:
                    raise ParamsError(f"parameter {error}") from None

    def distill_settings(self) -> DistillSettings:
        """The distillation these params ask for, checked by the engine (the check the trainer makes too).

        Raises:
            ParamsError: A setting has a bad value; the message names the key as written.
        """
        values = {key: getattr(self, key) for key in SETTINGS}
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
