"""Prepare the teacher for ``00_teacher``: use a given checkpoint, fine-tune it, or train one.

Feature distillation reads only the teacher's encoder outputs (the inputs of its decoder), so
what must be strong is its backbone and hybrid encoder. A DETR-style decoder, with one-to-one
matching, learns slowly; a dense YOLO head learns fast. Training from scratch therefore goes in
two stages:

1. **encoder**: the teacher's backbone + encoder with a YOLO ``Detect`` head in place of the
   RT-DETR decoder (same layer indices), trained with the default YOLO recipe;
2. **decoder**: the RT-DETR model warm-started from stage 1 (weights matched by layer name),
   training the decoder on top of the frozen encoder, so the features the student will learn
   from are exactly the ones stage 1 made.

The result is cached: a teacher checkpoint that exists is reused unless ``rebuild`` is set, and
only a checkpoint this module made (it leaves ``teacher.json`` beside it) is ever replaced.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from ultralytics import RTDETR, YOLO
from ultralytics.nn.tasks import yaml_model_load

from distil.engine.teacher import detector
from distil.experiment import prepare_data, use_all_cpu_cores
from distil.manifest import write_manifest
from distil.params import TeacherParams
from distil.paths import resolve_model_file


@dataclass
class Stage:
    """One training stage of the teacher."""

    name: str
    epochs: int
    run_dir: str
    wall_time_s: float
    map50: float
    map50_95: float


@dataclass
class TeacherReport:
    """What ``00_teacher`` did and how good the teacher is on the validation set."""

    checkpoint: str
    source: str  # 'reused', 'given', 'fine-tuned' or 'trained'
    map50: float
    map50_95: float
    data: str
    stages: list[Stage] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def dense_variant(model_yaml: str | Path, out: Path) -> Path:
    """Write the teacher's model YAML with its RT-DETR decoder replaced by a YOLO ``Detect`` head.

    Every other layer, and so every layer index and weight name, stays the same.
    """
    cfg = yaml_model_load(resolve_model_file(model_yaml, "teacher architecture"))
    sources, _, module, _ = cfg["head"][-1]
    if module != "RTDETRDecoder":
        raise ValueError(f"{model_yaml}: its head is {module}, not RTDETRDecoder; train it directly instead")
    dense = {k: v for k, v in cfg.items() if k not in {"yaml_file", "scale", "channels"}}
    dense["head"] = [*cfg["head"][:-1], [sources, 1, "Detect", ["nc"]]]
    if cfg.get("scale") and cfg.get("scales"):
        dense["scales"] = {cfg["scale"]: cfg["scales"][cfg["scale"]]}
    elif cfg.get("scales"):
        first = next(iter(cfg["scales"]))
        dense["scales"] = {first: cfg["scales"][first]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(dense, sort_keys=False))
    return out


def teacher_data(params: TeacherParams) -> Path:
    """The teacher's dataset: for the demo, ``teacher_train`` images whose validation split is the student's."""
    return prepare_data(params, params.teacher_train)


def validation_map(checkpoint: str | Path, data: Path, params: TeacherParams, name: str) -> tuple[float, float]:
    """mAP50 and mAP50-95 of a checkpoint on the validation split, by the Ultralytics validator."""
    metrics = detector(checkpoint).val(data=str(data), imgsz=params.imgsz, batch=params.batch,
                                       device=params.ultralytics_device, plots=False, verbose=False,
                                       project=str(params.teacher_dir), name=name, exist_ok=True)
    return float(metrics.box.map50), float(metrics.box.map)


def train_stage(model: YOLO | RTDETR, name: str, data: Path, params: TeacherParams, epochs: int,
                **extra) -> tuple[Path, Stage]:
    """Train one stage with Ultralytics; return its best checkpoint and a summary."""
    started = time.time()
    model.add_callback("on_train_start", use_all_cpu_cores)
    model.train(data=str(data), epochs=epochs, imgsz=params.imgsz, batch=params.batch,
                device=params.ultralytics_device, workers=params.workers, seed=params.seed, deterministic=False,
                project=str(params.teacher_dir), name=name, exist_ok=True, plots=False, **extra)
    run_dir = Path(model.trainer.save_dir)
    results = model.trainer.metrics or {}
    stage = Stage(name, epochs, str(run_dir), round(time.time() - started, 1),
                  float(results.get("metrics/mAP50(B)", 0.0)), float(results.get("metrics/mAP50-95(B)", 0.0)))
    return run_dir / "weights" / "best.pt", stage


def encoder_layers(model_yaml: str | Path) -> int:
    """Number of layers before the decoder (all frozen in the decoder stage)."""
    cfg = yaml_model_load(resolve_model_file(model_yaml, "teacher architecture"))
    return len(cfg["backbone"]) + len(cfg["head"]) - 1


def prepare_teacher(params: TeacherParams) -> TeacherReport:
    """Make sure ``params.teacher_path`` holds a usable teacher; report its validation mAP.

    Raises:
        FileExistsError: ``rebuild`` would replace a checkpoint this project did not make.
    """
    started = time.time()
    checkpoint = params.teacher_path
    record = params.teacher_dir / "teacher.json"
    made_here = record.exists() and json.loads(record.read_text()).get("checkpoint") == str(checkpoint)
    data = teacher_data(params)
    if checkpoint.exists() and not params.rebuild:
        map50, map50_95 = validation_map(checkpoint, data, params, "val")
        return TeacherReport(str(checkpoint), "reused" if made_here else "given", map50, map50_95, str(data))
    if checkpoint.exists() and not made_here:
        raise FileExistsError(f"rebuild=True would replace {checkpoint}, which this project did not make; "
                              "set teacher to a new path under outputs/ instead")

    stages: list[Stage] = []
    if params.teacher_weights:  # fine-tune a given teacher on this dataset
        best, stage = train_stage(detector(resolve_model_file(params.teacher_weights, "teacher_weights")),
                                  "finetune", data, params, params.teacher_epochs, lr0=params.teacher_lr0,
                                  optimizer="AdamW")
        stages.append(stage)
        source = "fine-tuned"
    else:  # from scratch: dense encoder stage, then the decoder on the frozen encoder
        architecture = resolve_model_file(params.teacher_model, "teacher architecture")
        start = None
        if params.teacher_encoder_epochs:
            dense = dense_variant(architecture, params.teacher_dir / "encoder.yaml")
            start, stage = train_stage(YOLO(str(dense)), "encoder", data, params, params.teacher_encoder_epochs)
            stages.append(stage)
        model = detector(architecture)
        if start is not None:
            model.load(str(start))
        freeze = encoder_layers(architecture) if start is not None and params.teacher_freeze_encoder else None
        # No mosaic here: it shrinks objects four-fold. On the demo, the decoder on the frozen encoder
        # learned faster without it at lr 1e-3 than with it at 2e-4 (mAP50-95 0.36 against 0.28 in 10 epochs).
        best, stage = train_stage(model, "decoder", data, params, params.teacher_epochs, lr0=params.teacher_lr0,
                                  optimizer="AdamW", mosaic=0.0, **({"freeze": freeze} if freeze else {}))
        stages.append(stage)
        source = "trained"

    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, checkpoint)
    map50, map50_95 = validation_map(checkpoint, data, params, "val")
    report = TeacherReport(str(checkpoint), source, map50, map50_95, str(data), stages)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(report.as_dict(), indent=2))
    write_manifest(params.teacher_dir / "manifest.json", params.as_dict(), started, report=report.as_dict())
    return report
