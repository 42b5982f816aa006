"""Run parameters: one dataclass per notebook, flat keys, validated before any work starts.

The same flat names appear in ``params/*.yaml``, in each notebook's ``parameters`` cell and
here, so ``papermill ... -p loss cwd`` and ``-f params/demo.yaml`` both land in the same field.
One params file may serve the whole notebook series, so a key that belongs to another notebook is
accepted and ignored; a key no notebook knows is a typo and stops the run, with the closest
valid names suggested.

This module imports nothing else of the package (Ultralytics only lazily, to find model YAMLs).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

PLAIN_TYPES = (str, int, float, bool, list, tuple, type(None))
NOTEBOOK_NAMES_IGNORED = {"In", "Out", "exit", "quit", "get_ipython"}


class ParamsError(ValueError):
    """A parameter is unknown, of the wrong type, out of range, or names a missing file."""


def project_root() -> Path:
    """Where relative paths in params resolve: ``$DISTIL_ROOT``, else this source checkout, else cwd."""
    if os.environ.get("DISTIL_ROOT"):
        return Path(os.environ["DISTIL_ROOT"]).resolve()
    repo = Path(__file__).resolve().parents[1]
    return repo if (repo / "pyproject.toml").exists() and (repo / "params").is_dir() else Path.cwd()


def resolve_path(value: str | Path) -> Path:
    """An absolute path; relative ones are taken from the project root (notebooks run elsewhere)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_root() / path


def resolve_model_file(spec: str | Path, role: str) -> Path:
    """Find a model checkpoint or YAML on disk, never downloading it.

    A ``.pt`` must exist (relative paths: from the cwd, then the project root). A ``.yaml`` may
    also be a name that ships with this package (``distil/cfg``) or with Ultralytics
    (``yolov8s.yaml``, ``rtdetr-l.yaml``).

    Raises:
        FileNotFoundError: Nothing is found; the message says where it looked and what to do.
        ValueError: The suffix is neither ``.pt`` nor ``.yaml``/``.yml``.
    """
    path = Path(spec).expanduser()
    if path.suffix not in {".pt", ".yaml", ".yml"}:
        raise ValueError(f"{role} {str(spec)!r} must be a .pt checkpoint or a model .yaml file")
    candidates = list(dict.fromkeys([path.resolve(), resolve_path(path)]))  # the cwd, then the project root
    for candidate in candidates:
        if candidate.exists():
            return candidate
    if path.suffix == ".pt":
        raise FileNotFoundError(
            f"{role} checkpoint {str(spec)!r} not found (looked at {' and '.join(map(str, candidates))}). "
            "distil never downloads weights: copy the checkpoint to this machine and give its path."
        )
    shipped = Path(__file__).parent / "cfg" / path.name
    if path.parent == Path(".") and shipped.exists():
        return shipped
    from ultralytics.nn.tasks import yaml_model_load

    try:  # Ultralytics' own model YAMLs, including scaled names such as yolov8s.yaml
        yaml_model_load(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{role} model YAML {str(spec)!r} not found: not on disk, not in distil/cfg, not an Ultralytics model YAML"
        ) from None
    return path


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
            return float(value)
        if origin is str and isinstance(value, str):
            return value
        if origin is list and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(option) or (Any,)
            if item is Any or all(isinstance(v, item) and not isinstance(v, bool) for v in value):
                return list(value)
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ParamsError(f"parameter {name}={value!r} has type {type(value).__name__}; expected {wanted}")


@dataclass
class Params:
    """Parameters every notebook shares."""

    name: str = "demo"  # run name: outputs go to outputs/*/<name>
    data: str = "demo"  # 'demo' (generated here) or the path of a YOLO data.yaml
    imgsz: int = 160  # training and validation image size
    batch: int = 16
    device: str = "auto"  # 'auto' (GPU if present), 'cpu', '0', '0,1', ...
    seed: int = 0
    workers: int = 0  # dataloader workers (Ultralytics uses 0 on CPU anyway)
    outputs: str = "outputs"  # root of everything a run writes
    demo_train: int = 400  # demo dataset: training images
    demo_val: int = 100  # demo dataset: validation images
    demo_test: int = 100  # demo dataset: test images (kept apart for results reported after tuning on val)
    demo_seed: int = 0  # demo dataset: seed of the generated images (training seeds vary apart from it)
    demo_imgsz: int = 160  # demo dataset: image side in pixels
    enhance: str = "none"  # enhancement applied to every image models see: 'none', 'default' or a pipeline YAML
    rebuild: bool = False  # redo work whose result exists (a teacher, a finished run) instead of reusing it

    registry: ClassVar[list[type[Params]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Params.registry.append(cls)

    # loading ----------------------------------------------------------------------------
    @classmethod
    def known_keys(cls) -> set[str]:
        """Every key some notebook's params accept (a params file may serve them all)."""
        return {f.name for c in [Params, *Params.registry] for f in dataclasses.fields(c)}

    @classmethod
    def load(cls, source: Params | dict | str | Path | None = None, **overrides: Any):
        """Build and validate params from a dict, a YAML file or another Params, plus overrides.

        Raises:
            ParamsError: Unknown key, wrong type, bad value or missing file.
        """
        if isinstance(source, Params):
            values = dataclasses.asdict(source)
        elif isinstance(source, (str, Path)):
            path = resolve_path(source)
            if not path.exists():
                raise ParamsError(f"params file {source} not found (looked at {path})")
            values = yaml.safe_load(path.read_text()) or {}
            if not isinstance(values, dict):
                raise ParamsError(f"params file {source} must hold a mapping of flat keys")
        else:
            values = dict(source or {})
        values.update(overrides)
        unknown = sorted(set(values) - cls.known_keys())
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(cls.known_keys()), n=2)
                hints.append(f"{key!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
            raise ParamsError(f"unknown parameter {', '.join(hints)}; valid keys for {cls.__name__}: "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        own = {f.name for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        checked = {k: check_type(k, v, hints[k]) for k, v in values.items() if k in own}
        params = cls(**checked)
        params.validate()
        return params

    @classmethod
    def from_notebook(cls, namespace: dict[str, Any]):
        """Params from a notebook's globals, right after its parameters cell (and papermill's).

        Every public global of a plain type counts as a parameter, so a misspelt ``-p`` name or
        params-file key fails here, in the notebook's first cells, not hours later.
        """
        values = {k: v for k, v in namespace.items()
                  if not k.startswith("_") and k not in NOTEBOOK_NAMES_IGNORED and isinstance(v, PLAIN_TYPES)}
        return cls.load(values)

    # validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check values and files; subclasses extend this."""
        positive = {"imgsz": 32, "batch": 1, "demo_train": 1, "demo_val": 1, "demo_imgsz": 32}
        for key, minimum in positive.items():
            if getattr(self, key) < minimum:
                raise ParamsError(f"parameter {key}={getattr(self, key)} must be >= {minimum}")
        if self.workers < 0 or self.seed < 0 or self.demo_seed < 0 or self.demo_test < 0:
            raise ParamsError("parameters workers, seed, demo_seed and demo_test must be >= 0")
        if not self.name or "/" in self.name or self.name in {".", ".."}:
            raise ParamsError(f"parameter name={self.name!r} must be a plain folder name")
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
        their number of training images share the same validation images (and the first training ones)."""
        n_train = self.demo_train if n_train is None else n_train
        return (self.outputs_dir / "data" /
                f"demo-{n_train}-{self.demo_val}-{self.demo_test}-{self.demo_imgsz}-s{self.demo_seed}")

    @property
    def ultralytics_device(self) -> str | None:
        """``device`` as Ultralytics takes it (None picks the GPU when there is one)."""
        return None if self.device == "auto" else self.device

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ModelParams(Params):
    """Parameters naming the teacher and the student (the notebooks that load models)."""

    teacher: str = "auto"  # teacher .pt; 'auto' is the one 00_teacher keeps in outputs/teacher/<name>/teacher.pt
    student: str = "yolov8s.yaml"  # student .pt or YOLO model YAML
    teacher_layers: str | list[int] = "auto"  # 'auto' (inputs of the teacher's head) or layer indices
    student_layers: str | list[int] = "auto"  # 'auto' (inputs of the student's Detect head) or layer indices
    loss: str = "mse"  # feature loss: a name from distil.losses.LOSSES (also names the run: <name>-<loss>)

    @property
    def teacher_path(self) -> Path:
        """The teacher checkpoint: as given, or the one 00_teacher keeps for this name."""
        if self.teacher == "auto":
            return self.outputs_dir / "teacher" / self.name / "teacher.pt"
        return resolve_path(self.teacher) if Path(self.teacher).suffix == ".pt" else Path(self.teacher)

    @property
    def runs_dir(self) -> Path:
        return self.outputs_dir / "runs"

    def run_dir(self, run: str, baseline: bool = False) -> Path:
        """A run folder under outputs/runs; ``'auto'`` names it ``<name>-<loss>`` or ``<name>-baseline``."""
        if run in ("auto", ""):
            run = f"{self.name}-baseline" if baseline else f"{self.name}-{self.loss}"
        return self.runs_dir / run

    def require_teacher(self) -> None:
        """Check that the teacher can be found, with a hint to run 00_teacher when it is ours to make."""
        try:
            resolve_model_file(self.teacher_path if self.teacher == "auto" else self.teacher,
                               "teacher (parameter teacher)")
        except (FileNotFoundError, ValueError) as error:
            hint = " Run notebooks/00_teacher.ipynb with the same params to build it." if self.teacher == "auto" else ""
            raise ParamsError(f"{error}{hint}") from None


@dataclass
class TeacherParams(ModelParams):
    """Parameters of ``00_teacher``: make sure ``teacher`` exists, training it when asked."""

    teacher_weights: str = ""  # start from this checkpoint (e.g. rtdetr-x.pt); '' trains teacher_model
    teacher_model: str = "rtdetr-demo.yaml"  # architecture trained from scratch when no weights are given
    teacher_train: int = 800  # demo data: training images the teacher sees (the student sees demo_train)
    teacher_encoder_epochs: int = 20  # dense-head pre-training of backbone + encoder (0 skips it)
    teacher_epochs: int = 15  # RT-DETR epochs (with teacher_weights: 0 uses them as they are)
    teacher_freeze_encoder: bool = True  # train only the decoder on top of the pre-trained encoder
    teacher_lr0: float = 0.001  # AdamW learning rate of the RT-DETR stage

    def validate(self) -> None:
        super().validate()
        for key in ("teacher_train", "teacher_encoder_epochs", "teacher_epochs"):
            if getattr(self, key) < 0:
                raise ParamsError(f"parameter {key}={getattr(self, key)} must be >= 0")
        if self.teacher_path.suffix != ".pt":
            raise ParamsError(f"parameter teacher={self.teacher!r} must be 'auto' or the .pt path where the teacher "
                              "is kept")
        if self.teacher_weights:
            self.require_model("teacher_weights", "teacher start weights")
        elif self.teacher_epochs < 1 and not self.teacher_path.exists():
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

    explore_pipeline: str = "default"  # the pipeline shown: 'default' or a pipeline YAML
    explore_image: int = 0  # index (among validation images) of the image tuned live with sliders
    samples: int = 6  # images per grid


@dataclass
class FeatureParams(ModelParams):
    """Parameters of ``02_teacher_features``."""

    distilled_run: str = "auto"  # a distillation run under outputs/runs to compare with ('auto': <name>-<loss>)
    samples: int = 3  # images whose feature maps are shown

    def validate(self) -> None:
        super().validate()
        self.require_teacher()
        self.require_model("student", "student")


@dataclass
class EvalParams(ModelParams):
    """Parameters of ``04_evaluate``."""

    baseline_run: str = "auto"  # run trained without distillation ('auto': <name>-baseline)
    distilled_run: str = "auto"  # run trained with distillation ('auto': <name>-<loss>)
    speed_reps: int = 20  # timed repetitions per model (after warm-up)
    samples: int = 4  # images with detections side by side

    def validate(self) -> None:
        super().validate()
        self.require_teacher()
        for label, path in self.models().items():
            if label != "teacher" and not path.exists():
                raise ParamsError(f"the {label} run's {path} was not found; train it with 03_distill first "
                                  "(distill_weight 0 for the baseline)")

    @property
    def eval_dir(self) -> Path:
        return self.outputs_dir / "eval" / self.name

    def models(self) -> dict[str, Path]:
        """Label -> checkpoint of the three models compared."""
        return {"teacher": self.teacher_path,
                "baseline": self.run_dir(self.baseline_run, baseline=True) / "weights" / "best.pt",
                "distilled": self.run_dir(self.distilled_run) / "weights" / "best.pt"}


@dataclass
class DashboardParams(ModelParams):
    """Parameters of ``05_dashboard`` (served by Voila)."""

    models: str = ""  # 'label=path.pt,...' to compare; DISTIL_MODELS wins; '' = <name>-baseline and <name>-<loss>


@dataclass
class DistillParams(ModelParams):
    """Parameters of ``03_distill``: one distillation run (or, with weight 0, its baseline)."""

    epochs: int = 30
    distill_weight: float = 1.0  # weight of the feature loss; 0 trains the plain baseline
    distill_mask: str = "none"  # 'none' or 'gt' (weight positions inside ground-truth boxes)
    mask_bg: float = 0.1  # weight of background positions under distill_mask 'gt'
    cwd_tau: float = 1.0  # temperature of the 'cwd' loss
    optimizer: str = "auto"
    lr0: float = 0.01
    patience: int = 100
    amp: bool = True
    mosaic: float = 1.0
    close_mosaic: int = 10
    fraction: float = 1.0  # share of the training images used
    plots: bool = True
    resume: bool = False  # continue this run (same name) from its last.pt
    run: str = "auto"  # run folder under outputs/runs ('auto': <name>-<loss>, or <name>-baseline for weight 0)

    def validate(self) -> None:
        super().validate()
        if self.epochs < 1:
            raise ParamsError(f"parameter epochs={self.epochs} must be >= 1")
        if self.distill_weight < 0:
            raise ParamsError(f"parameter distill_weight={self.distill_weight} must be >= 0 (0 = baseline)")
        if not 0 <= self.mask_bg <= 1:
            raise ParamsError(f"parameter mask_bg={self.mask_bg} must be within [0, 1]")
        if self.cwd_tau <= 0:
            raise ParamsError(f"parameter cwd_tau={self.cwd_tau} must be > 0")
        if not 0 < self.fraction <= 1:
            raise ParamsError(f"parameter fraction={self.fraction} must be within (0, 1]")
        self.require_model("student", "student")
        if self.distilling:
            self.require_teacher()

    @property
    def distilling(self) -> bool:
        """False for the baseline (weight 0): no teacher is loaded at all."""
        return self.distill_weight > 0

    @property
    def run_name(self) -> str:
        return self.run_dir(self.run, baseline=not self.distilling).name
