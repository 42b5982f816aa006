"""Prepare the teacher for ``00_teacher``: use a given checkpoint, fine-tune it, or train one.

Feature distillation reads only the teacher's encoder outputs (the inputs of its decoder), so
what must be strong is its backbone and hybrid encoder. A DETR-style decoder, with one-to-one
matching, learns slowly; a dense YOLO head learns fast. Training is a list of stages in the params
(``teacher_stages``, `distil.teacher_stages`), each from the one before; an RT-DETR from scratch goes:

1. **encoder** (``head: dense``): the teacher's backbone + encoder with a YOLO ``Detect`` head in place of
   the RT-DETR decoder (same layer indices), trained with the default YOLO recipe;
2. **decoder** (``freeze: encoder``): the RT-DETR model warm-started from stage 1 (weights matched by layer
   name), training the decoder on top of the frozen encoder, so the features the student will learn
   from are exactly the ones stage 1 made;
3. **refine** (optional, the demo's): the decoder again, from stage 2's best, at a lower learning rate.
   On the demo the decoder's validation mAP still moved by 0.01-0.02 from epoch to epoch at the end of
   stage 2; a lower rate settles it higher. ``distil teacher refine -f params.yaml`` trains the stages a
   teacher's params add after the ones it was made with, without training those again.

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
from functools import partial
from pathlib import Path

import yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils import LOGGER

import distil.atomic as atomic
from distil import teacher_stages as stage_list
from distil.engine.teacher import detector
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


# and "batch" (the one the teacher trains with) and "teacher_stages" (resolved): see teacher_defining
TEACHER_KEYS = ("data", "imgsz", "seed", "demo_val", "demo_test", "demo_seed", "demo_imgsz", "enhance",
                "teacher_weights", "teacher_model", "teacher_train", "time")


def training_batch(params: TeacherParams) -> int:
    """The teacher's batch: ``teacher_batch``, else the student's ``batch``."""
    return params.teacher_batch or params.batch


def teacher_defining(params: TeacherParams) -> dict:
    """The params a trained teacher depends on (a teacher made with others is another teacher); ``batch`` is
    the one it trains with, so a student's batch can change without making the teacher another; its stages are
    the ones ``auto`` stands for, so writing them out does not make the teacher another either."""
    return {"batch": training_batch(params), **{key: getattr(params, key) for key in TEACHER_KEYS},
            "teacher_stages": params.stages}


def recorded_stages(recorded: dict) -> list[dict]:
    """The stages a teacher's record says it was made with; a record from before the list holds the per-stage keys
    (`distil.teacher_stages.LEGACY_KEYS`), read as the list they meant."""
    if "teacher_stages" in recorded:
        return recorded["teacher_stages"]
    kind = stage_list.teacher_kind(recorded.get("teacher_weights", ""), recorded.get("teacher_model", ""))
    return stage_list.stages_from_legacy_keys(recorded, kind)


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
    recorded = {**{key: recorded.get(key, defaults[key]) for key in defining},
                "teacher_stages": recorded_stages(recorded)}
    differing = sorted(k for k, v in defining.items() if recorded[k] != v)
    if differing:
        changes = ", ".join(stage_list.changes(recorded[k], defining[k]) if k == "teacher_stages"
                            else f"{k}: {recorded[k]!r} -> {defining[k]!r}" for k in differing)
        extendable = differing == ["teacher_stages"] and stage_list.is_prefix(recorded["teacher_stages"],
                                                                          defining["teacher_stages"])
        raise ParamsError(f"{where} holds a teacher trained with other params ({changes}): set rebuild: true to train "
                          "it again with these, or name: <new name> to keep both"
                          + ("; or train only the stages these params add: distil teacher refine -f <params.yaml>"
                             if extendable else ""))


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
        for stage in {"encoder", "decoder", "refine", "finetune", "direct", *(s["name"] for s in params.stages)}:
            set_aside(params.teacher_dir / stage, params.outputs_dir, "rebuild: true trains the teacher again")
    elif started_before.exists():  # an interrupted training: resume it only if it is this teacher
        check_same_teacher(json.loads(started_before.read_text()), params, params.teacher_dir)
    atomic.write_json(params.teacher_dir / "params.json", teacher_defining(params))

    best, stages = train_stages(params, params.stages, data)
    atomic.copy_file(best, checkpoint)
    return finish(params, checkpoint, "fine-tuned" if params.teacher_weights else "trained", data, stages, started)


def train_stages(params: TeacherParams, stages: list[dict], data: Path, start: Path | None = None,
                 start_is_dense: bool = False) -> tuple[Path, list[Stage]]:
    """Train ``stages`` in order, each from the best of the one before (the first from ``start``, else from
    ``teacher_weights`` or ``teacher_model``); the last one's best checkpoint and what each did."""
    done = []
    for spec in stages:
        extra = {k: v for k, v in spec.items() if k not in stage_list.DISTIL_STAGE_KEYS}
        if spec.get("freeze") is not None:
            extra["freeze"] = (encoder_layers(params.teacher_model) if spec["freeze"] == stage_list.ENCODER
                               else spec["freeze"])
        dense = spec.get("head") == stage_list.DENSE
        start, stage = train_stage(partial(stage_model, params, spec, start, start_is_dense), spec["name"], data,
                                   params, spec["epochs"], **extra)
        start_is_dense = dense
        done.append(stage)
    return start, done


def stage_model(params: TeacherParams, spec: dict, start: Path | None, start_is_dense: bool) -> YOLO:
    """The model a stage starts from: the dense-head variant, the previous stage's best (an RT-DETR warm-started
    from a dense stage by layer name), or what the params give."""
    if spec.get("head") == stage_list.DENSE:
        architecture = resolve_model_file(params.teacher_model, "teacher architecture")
        return YOLO(str(dense_variant(architecture, params.teacher_dir / f"{spec['name']}.yaml")))
    if start is None:
        return detector(resolve_model_file(params.teacher_weights or params.teacher_model,
                                           "teacher_weights" if params.teacher_weights else "teacher architecture"))
    if start_is_dense:
        model = detector(resolve_model_file(params.teacher_model, "teacher architecture"))
        model.load(str(start))
        return model
    return detector(start)


def refine(params: TeacherParams) -> TeacherReport:
    """Train the stages the params add after the ones a teacher was made with, in place.

    The teacher is the one 00_teacher made at ``teacher`` or, where there is none, ``teacher_cache`` (a shipped
    one). Its stages are not trained again: the record keeps them, with the new ones after them. This is how the
    demo's shipped teacher got its refine stage.

    Raises:
        ParamsError: There is no such teacher, it was made with other params, or the params add no stage to it.
        RunBusyError: Another process is making this teacher.
    """
    with FolderLock(params.teacher_dir).held():
        return add_stages(params)


def add_stages(params: TeacherParams) -> TeacherReport:
    """`refine`'s work, with the teacher's folder held."""
    started = time.time()
    record = params.teacher_dir / "teacher.json"
    made_here = record.exists() and json.loads(record.read_text()).get("checkpoint") == str(params.teacher_path)
    source = params.teacher_path if made_here else resolve_path(params.teacher_cache) if params.teacher_cache else None
    if source is None or not source.exists():
        raise ParamsError(f"no teacher to refine: neither one made by 00_teacher at {params.teacher_path} nor a "
                          "teacher_cache; run 00_teacher (make teacher) first")
    recorded = json.loads((record if made_here else source.with_suffix(".json")).read_text())
    made_with, wanted = recorded_stages(recorded.get("params", {})), params.stages
    if not stage_list.is_prefix(made_with, wanted):
        raise ParamsError(f"{source} was made in the stages {stage_list.summary(made_with)}; teacher_stages "
                          f"({stage_list.summary(wanted)}) add no stage after them: there is nothing to refine "
                          "(add the stages to teacher_stages, or set rebuild: true to train the teacher again)")
    check_same_teacher(recorded.get("params", {}), replace(params, teacher_stages=made_with), source)
    manifest = params.teacher_dir / "manifest.json"
    made_on = (json.loads(manifest.read_text()) if made_here and manifest.exists()
               else recorded.get("manifest", {})).get("device", "")
    stages = [replace(Stage(**stage), device=stage.get("device") or made_on) for stage in recorded.get("stages", [])]
    start = params.teacher_dir / "unrefined.pt"  # kept: the new stages start from it, and it is what was refined
    atomic.copy_file(source, start)
    data = teacher_data(params)
    best, added = train_stages(params, wanted[len(made_with):], data, start,
                               start_is_dense=made_with[-1].get("head") == stage_list.DENSE)
    atomic.copy_file(best, params.teacher_path)
    return finish(params, params.teacher_path, "trained", data, [*stages, *added], started)


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
