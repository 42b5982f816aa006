"""Prepare the teacher for ``00_teacher``: use a given checkpoint, fine-tune it, or train one.

Feature distillation reads only the teacher's encoder outputs (the inputs of its decoder), so
what must be strong is its backbone and hybrid encoder. A DETR-style decoder, with one-to-one
matching, learns slowly; a dense YOLO head learns fast. Training from scratch therefore goes in
stages:

1. **encoder**: the teacher's backbone + encoder with a YOLO ``Detect`` head in place of the
   RT-DETR decoder (same layer indices), trained with the default YOLO recipe;
2. **decoder**: the RT-DETR model warm-started from stage 1 (weights matched by layer name),
   training the decoder on top of the frozen encoder, so the features the student will learn
   from are exactly the ones stage 1 made;
3. **refine** (``teacher_refine_epochs``, optional): the decoder again, from stage 2's best, at a lower
   learning rate. On the demo the decoder's validation mAP still moved by 0.01-0.02 from epoch to epoch at
   the end of stage 2; a lower rate settles it higher. ``distil teacher refine -f params.yaml`` adds this
   stage to a teacher made without it, without training stages 1 and 2 again.

The result is cached: a teacher checkpoint that exists is reused unless ``rebuild`` is set, and
only a checkpoint this module made (it leaves ``teacher.json`` beside it) is ever replaced. A cached
teacher made with other params is refused, naming them, as a student run is. Training can take
hours on a CPU, so each stage resumes from its ``last.pt`` when interrupted and a finished stage is
reused. ``teacher_cache`` names a teacher made elsewhere with the same params (the demo ships one in
``assets/``): it is copied in instead of training.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils import LOGGER

import distil.atomic as atomic
from distil.engine.teacher import detector, is_rtdetr_yaml
from distil.engine.whole_files import whole_file_trainer
from distil.eval.figures import read_results, training_seconds
from distil.experiment import checked_labels, prepare_data
from distil.manifest import device_description, write_manifest
from distil.params import ParamsError, TeacherParams
from distil.paths import project_root, resolve_model_file, resolve_path
from distil.portable import portable
from distil.runs import FolderLock, RunFolder, set_aside
from distil.shipped_runs import portable_file


@dataclass
class Stage:
    """One training stage of the teacher."""

    name: str
    epochs: int  # trained (early stopping or `time` may end a stage before the epochs asked for)
    run_dir: str
    wall_time_s: float
    map50: float
    map50_95: float
    device: str = ""  # where it trained ('' in records from before it was kept)


@dataclass
class TeacherReport:
    """What ``00_teacher`` did and how good the teacher is on the validation set."""

    checkpoint: str
    source: str  # 'reused', 'given', 'shipped', 'fine-tuned' or 'trained'
    map50: float
    map50_95: float
    data: str
    stages: list[Stage] = field(default_factory=list)
    params: dict = field(default_factory=dict)  # what made it (see `teacher_defining`)

    def as_dict(self) -> dict:
        return asdict(self)


def dense_variant(model_yaml: str | Path, out: Path) -> Path:
    """Write the teacher's model YAML with its RT-DETR decoder replaced by a YOLO ``Detect`` head.

    Every other layer, and so every layer index and weight name, stays the same.
    """
    cfg = yaml_model_load(resolve_model_file(model_yaml, "teacher architecture"))
    sources, _, module, _ = cfg["head"][-1]
    if module != "RTDETRDecoder":
        raise ValueError(f"{model_yaml}: its head is {module}, not RTDETRDecoder; a YOLO teacher is trained in one "
                         "stage (prepare_teacher does so when teacher_model is a YOLO YAML)")
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
    metrics = detector(checkpoint).val(data=str(data), imgsz=params.imgsz, batch=training_batch(params),
                                       device=params.ultralytics_device, plots=False, verbose=False,
                                       project=str(params.teacher_dir), name=name, exist_ok=True)
    return float(metrics.box.map50), float(metrics.box.map)


def train_stage(make_model, name: str, data: Path, params: TeacherParams, epochs: int,
                **extra) -> tuple[Path, Stage]:
    """Train one stage with Ultralytics (or resume it, or reuse it when finished); its best checkpoint and summary.

    Args:
        make_model: Returns the model to train when the stage starts from nothing.
    """
    started = time.time()
    run_dir = params.teacher_dir / name
    folder = RunFolder(run_dir, params.outputs_dir)
    last = folder.weights / "last.pt"
    state = folder.state
    if state == "damaged":  # killed while an older version wrote last.pt: go on from best.pt
        folder.resume_from_best()
        state = "interrupted"
    if state == "failed":  # stopped in its first epoch: nothing to go on from
        set_aside(run_dir, params.outputs_dir, f"teacher stage {name} left no checkpoint, so it starts again")
        state = "absent"
    if state == "finished":
        LOGGER.info(f"distil: teacher stage {name} already finished in {run_dir}; reusing it")
    else:
        if state == "interrupted":
            LOGGER.info(f"distil: resuming teacher stage {name} from {last} (epoch {folder.epochs_done + 1})")
            model = detector(last)
            model.train(trainer=whole_file_trainer(model), resume=True)
        else:
            model = make_model()
            model.train(trainer=whole_file_trainer(model), data=str(data), epochs=epochs, imgsz=params.imgsz,
                        batch=training_batch(params),
                        device=params.ultralytics_device, workers=params.workers, seed=params.seed,
                        deterministic=False, project=str(params.teacher_dir), name=name, exist_ok=True, plots=False,
                        time=params.time or None, **extra)
    results = read_results(run_dir)
    final = results.iloc[-1] if len(results) else {}
    seconds = training_seconds(results) if len(results) else time.time() - started
    stage = Stage(name, len(results), str(run_dir), round(seconds, 1),  # fewer epochs when `time` ended it
                  float(final.get("metrics/mAP50(B)", 0.0)), float(final.get("metrics/mAP50-95(B)", 0.0)),
                  device_description(params.ultralytics_device))
    return run_dir / "weights" / "best.pt", stage


def encoder_layers(model_yaml: str | Path) -> int:
    """Number of layers before the decoder (all frozen in the decoder stage)."""
    cfg = yaml_model_load(resolve_model_file(model_yaml, "teacher architecture"))
    return len(cfg["backbone"]) + len(cfg["head"]) - 1


# and "batch": the one the teacher trains with (teacher_defining)
TEACHER_KEYS = ("data", "imgsz", "seed", "demo_val", "demo_test", "demo_seed", "demo_imgsz", "enhance",
                "teacher_weights", "teacher_model", "teacher_train", "teacher_encoder_epochs", "teacher_epochs",
                "teacher_freeze_encoder", "teacher_lr0", "teacher_refine_epochs", "teacher_refine_lr0", "time")
REFINE_KEYS = ("teacher_refine_epochs", "teacher_refine_lr0")


def training_batch(params: TeacherParams) -> int:
    """The teacher's batch: ``teacher_batch``, else the student's ``batch``."""
    return params.teacher_batch or params.batch


def teacher_defining(params: TeacherParams) -> dict:
    """The params a trained teacher depends on (a teacher made with others is another teacher); ``batch`` is
    the one it trains with, so a student's batch can change without making the teacher another."""
    return {"batch": training_batch(params), **{key: getattr(params, key) for key in TEACHER_KEYS}}


def check_same_teacher(recorded: dict, params: TeacherParams, where: Path) -> None:
    """Refuse a cached teacher made with other params, naming them.

    A key its record lacks is one added since: the teacher was made with its default (keys are added with
    defaults that keep what was done before).

    Raises:
        ParamsError: ``where`` holds a teacher trained with other params.
    """
    defining, defaults = teacher_defining(params), teacher_defining(TeacherParams())
    if "time" not in recorded and "hours" in recorded:  # the record of a teacher made before `hours` was `time`
        recorded = {**recorded, "time": recorded["hours"] or None}
    recorded = {key: recorded.get(key, defaults[key]) for key in defining}
    differing = sorted(k for k, v in defining.items() if recorded[k] != v)
    if differing:
        changes = ", ".join(f"{k}: {recorded[k]!r} -> {defining[k]!r}" for k in differing)
        refine_only = set(differing) <= set(REFINE_KEYS) and not recorded["teacher_refine_epochs"]
        raise ParamsError(f"{where} holds a teacher trained with other params ({changes}): set rebuild: true to train "
                          "it again with these, or name: <new name> to keep both"
                          + ("; or add only its refine stage: distil teacher refine -f <params.yaml>"
                             if refine_only else ""))


def prepare_teacher(params: TeacherParams) -> TeacherReport:
    """Make sure ``params.teacher_path`` holds a usable teacher; report its validation mAP.

    The teacher's folder is held meanwhile (`distil.runs.FolderLock`): a second process is refused.

    Raises:
        FileExistsError: ``rebuild`` would replace a checkpoint this project did not make.
        ParamsError: The cached teacher was made with other params.
        RunBusyError: Another process is making this teacher.
    """
    with FolderLock(params.teacher_dir).held():
        return make_teacher(params)


def make_teacher(params: TeacherParams) -> TeacherReport:
    """`prepare_teacher`'s work, with the teacher's folder held."""
    started = time.time()
    checkpoint = params.teacher_path
    record = params.teacher_dir / "teacher.json"
    recorded = json.loads(record.read_text()) if record.exists() else {}
    made_here = recorded.get("checkpoint") == str(checkpoint)
    data = teacher_data(params)
    if checkpoint.exists() and not params.rebuild:
        if made_here:
            check_same_teacher(recorded.get("params", {}), params, params.teacher_dir)
        map50, map50_95 = validation_map(checkpoint, data, params, "val")
        return TeacherReport(str(checkpoint), "reused" if made_here else "given", map50, map50_95, str(data),
                             params=teacher_defining(params))
    if checkpoint.exists() and not made_here:
        raise FileExistsError(f"rebuild=True would replace {checkpoint}, which this project did not make; "
                              "set teacher to a new path under outputs/ instead")
    if params.teacher_cache and not params.rebuild:
        return copy_shipped_teacher(params, data, started)
    checked_labels(params, data)  # what Ultralytics would drop is said (or refused, with strict_labels) first
    started_before = params.teacher_dir / "params.json"
    if params.rebuild:  # stages of an earlier teacher must not be resumed or reused
        for stage in ("encoder", "decoder", "refine", "finetune", "direct"):
            set_aside(params.teacher_dir / stage, params.outputs_dir, "rebuild: true trains the teacher again")
    elif started_before.exists():  # an interrupted training: resume it only if it is this teacher
        check_same_teacher(json.loads(started_before.read_text()), params, params.teacher_dir)
    atomic.write_json(params.teacher_dir / "params.json", teacher_defining(params))

    stages: list[Stage] = []
    if params.teacher_weights:  # fine-tune a given teacher on this dataset
        weights = resolve_model_file(params.teacher_weights, "teacher_weights")
        best, stage = train_stage(lambda: detector(weights), "finetune", data, params, params.teacher_epochs,
                                  lr0=params.teacher_lr0, optimizer="AdamW")
        stages.append(stage)
        source = "fine-tuned"
    elif not is_rtdetr_yaml(yaml_model_load(resolve_model_file(params.teacher_model, "teacher architecture"))):
        # a YOLO teacher learns fast with its dense head: one stage, Ultralytics' default recipe
        if params.teacher_refine_epochs:
            raise ParamsError(f"teacher_refine_epochs={params.teacher_refine_epochs} refines an RT-DETR's decoder; "
                              f"{params.teacher_model} is a YOLO model, trained in one stage: set "
                              "teacher_refine_epochs: 0")
        architecture = resolve_model_file(params.teacher_model, "teacher architecture")
        best, stage = train_stage(lambda: detector(architecture), "direct", data, params, params.teacher_epochs)
        stages.append(stage)
        source = "trained"
    else:  # an RT-DETR from scratch: dense encoder stage, then the decoder on the frozen encoder
        architecture = resolve_model_file(params.teacher_model, "teacher architecture")
        start = None
        if params.teacher_encoder_epochs:
            dense = dense_variant(architecture, params.teacher_dir / "encoder.yaml")
            start, stage = train_stage(lambda: YOLO(str(dense)), "encoder", data, params,
                                       params.teacher_encoder_epochs)
            stages.append(stage)

        def decoder_model():
            model = detector(architecture)
            if start is not None:
                model.load(str(start))
            return model

        frozen = start is not None and params.teacher_freeze_encoder
        best, stage = train_decoder(decoder_model, "decoder", data, params, params.teacher_epochs,
                                    params.teacher_lr0, frozen)
        stages.append(stage)
        if params.teacher_refine_epochs:
            best, stage = train_refine(best, data, params, frozen)
            stages.append(stage)
        source = "trained"

    atomic.copy_file(best, checkpoint)
    return finish(params, checkpoint, source, data, stages, started)


def train_decoder(make_model, name: str, data: Path, params: TeacherParams, epochs: int, lr0: float,
                  frozen: bool) -> tuple[Path, Stage]:
    """Train the RT-DETR decoder (the decoder and refine stages), on the frozen encoder where ``frozen``."""
    freeze = {"freeze": encoder_layers(params.teacher_model)} if frozen else {}
    # No mosaic here: it shrinks objects four-fold. On the demo, the decoder on the frozen encoder
    # learned faster without it at lr 1e-3 than with it at 2e-4 (mAP50-95 0.36 against 0.28 in 10 epochs).
    return train_stage(make_model, name, data, params, epochs, lr0=lr0, optimizer="AdamW", mosaic=0.0, **freeze)


def train_refine(start: Path, data: Path, params: TeacherParams, frozen: bool) -> tuple[Path, Stage]:
    """The refine stage: the decoder again from ``start`` (the decoder stage's best), at the lower rate."""
    return train_decoder(lambda: detector(start), "refine", data, params, params.teacher_refine_epochs,
                         params.teacher_refine_lr0, frozen)


def refine(params: TeacherParams) -> TeacherReport:
    """Add the refine stage to a teacher made with these params but without it, in place.

    The teacher is the one 00_teacher made at ``teacher`` or, where there is none, ``teacher_cache`` (a shipped
    one). Its first two stages are not trained again: the record keeps them, with the new stage after them.

    Raises:
        ParamsError: ``teacher_refine_epochs`` is 0, there is no such teacher, it was made with other params, or
            it is refined already.
        RunBusyError: Another process is making this teacher.
    """
    with FolderLock(params.teacher_dir).held():
        return add_refine_stage(params)


def add_refine_stage(params: TeacherParams) -> TeacherReport:
    """`refine`'s work, with the teacher's folder held."""
    started = time.time()
    if not params.teacher_refine_epochs:
        raise ParamsError("teacher_refine_epochs is 0: there is no refine stage to add; set it in the params file")
    record = params.teacher_dir / "teacher.json"
    made_here = record.exists() and json.loads(record.read_text()).get("checkpoint") == str(params.teacher_path)
    source = params.teacher_path if made_here else resolve_path(params.teacher_cache) if params.teacher_cache else None
    if source is None or not source.exists():
        raise ParamsError(f"no teacher to refine: neither one made by 00_teacher at {params.teacher_path} nor a "
                          "teacher_cache; run 00_teacher (make teacher) first")
    recorded = json.loads((record if made_here else source.with_suffix(".json")).read_text())
    stages = [Stage(**stage) for stage in recorded.get("stages", [])]
    if [stage.name for stage in stages] != ["encoder", "decoder"]:
        raise ParamsError(f"{source} was made in stages {[stage.name for stage in stages]}; the refine stage follows "
                          "an RT-DETR's encoder and decoder stages only, once")
    unrefined = replace(params, **{key: getattr(TeacherParams(), key) for key in REFINE_KEYS})
    check_same_teacher(recorded.get("params", {}), unrefined, source)
    manifest = params.teacher_dir / "manifest.json"
    made_on = (json.loads(manifest.read_text()) if made_here and manifest.exists()
               else recorded.get("manifest", {})).get("device", "")
    stages = [replace(stage, device=stage.device or made_on) for stage in stages]
    start = params.teacher_dir / "unrefined.pt"  # kept: the refine stage starts from it, and it is what was refined
    atomic.copy_file(source, start)
    data = teacher_data(params)
    best, stage = train_refine(start, data, params, params.teacher_freeze_encoder)
    atomic.copy_file(best, params.teacher_path)
    return finish(params, params.teacher_path, "trained", data, [*stages, stage], started)


def copy_shipped_teacher(params: TeacherParams, data: Path, started: float) -> TeacherReport:
    """Copy in ``teacher_cache`` (a teacher 00_teacher made with the same params) instead of training.

    Raises:
        ParamsError: The shipped teacher is missing, has no record, or was made with other params.
    """
    shipped = resolve_path(params.teacher_cache)
    shipped_record = shipped.with_suffix(".json")
    if not shipped.exists() or not shipped_record.exists():
        raise ParamsError(f"teacher_cache={params.teacher_cache!r}: {shipped} and its record {shipped_record.name} "
                          "are needed; set teacher_cache: '' to train the teacher here instead")
    recorded = json.loads(shipped_record.read_text())
    check_same_teacher(recorded.get("params", {}), params, shipped)
    atomic.copy_file(shipped, params.teacher_path)  # a kill mid-copy leaves no empty teacher.pt to trip on
    stages = [Stage(**stage) for stage in recorded.get("stages", [])]
    return finish(params, params.teacher_path, "shipped", data, stages, started)


def finish(params: TeacherParams, checkpoint: Path, source: str, data: Path, stages: list[Stage],
           started: float) -> TeacherReport:
    """Validate the teacher now in place, and record it (``teacher.json``, ``manifest.json``)."""
    map50, map50_95 = validation_map(checkpoint, data, params, "val")
    report = TeacherReport(str(checkpoint), source, map50, map50_95, str(data), stages, teacher_defining(params))
    atomic.write_json(params.teacher_dir / "teacher.json", report.as_dict())
    write_manifest(params.teacher_dir / "manifest.json", params.as_dict(), started, report=report.as_dict())
    return report


def ship(params: TeacherParams, destination: str | Path) -> Path:
    """Copy the teacher 00_teacher made for these params, with its record, to ``destination`` (``make teacher``).

    The record (``<destination>.json``) holds the params it was made with, its stages, times and mAP; a later
    ``teacher_cache`` copies it in only for the same params. What ships is portable (`distil.portable`).
    """
    record = params.teacher_dir / "teacher.json"
    if not params.teacher_path.exists() or not record.exists():
        raise ParamsError(f"no teacher made by 00_teacher at {params.teacher_path}: run it first (make teacher)")
    target = resolve_path(destination)
    set_aside(target, params.outputs_dir, f"{target} is replaced by the teacher shipped from {params.teacher_path}")
    portable_file(params.teacher_path, target)
    shipped = {**json.loads(record.read_text()), "checkpoint": str(Path(destination)),
               "manifest": json.loads((params.teacher_dir / "manifest.json").read_text())}
    atomic.write_json(target.with_suffix(".json"), portable(shipped, project_root()))
    return target
