"""Python entry points: from validated params to data and trained runs.

``distil.train(params)`` is what ``03_distill`` calls: it resolves the dataset (generating the
demo data when asked), then trains through Ultralytics with `DistillationTrainer` (or `StudentTrainer`,
the student alone, for the baseline under the identical schedule), and
returns the Ultralytics run directory, to which it adds a ``manifest.json``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from ultralytics import YOLO
from ultralytics.utils import LOGGER

from distil.data import DemoSettings, make_demo_dataset
from distil.data.label_check import LabelReport, check_labels
from distil.engine import DistillationTrainer, StudentTrainer
from distil.engine.settings import SETTINGS
from distil.eval.comparison import validate_one
from distil.manifest import write_manifest
from distil.params import DistillParams, Params, ParamsError
from distil.paths import resolve_model_file, resolve_path
from distil.runs import RunFolder, teacher_fingerprint


def prepare_data(params: Params, n_train: int | None = None) -> Path:
    """The ``data.yaml`` to train on: the generated demo dataset (built once, then reused) or the user's.

    ``n_train`` overrides ``demo_train`` (the teacher sees more images, and no unlabeled split); every
    demo dataset of one ``demo_seed`` shares the same validation and test images.
    """
    if params.data != "demo":
        return resolve_path(params.data)
    unlabeled = params.demo_unlabeled if n_train is None else 0
    settings = DemoSettings(n_train=params.demo_train if n_train is None else n_train, n_val=params.demo_val,
                            imgsz=params.demo_imgsz, seed=params.demo_seed, n_test=params.demo_test,
                            n_unlabeled=unlabeled)
    return make_demo_dataset(params.demo_data_dir(n_train), settings)


def ultralytics_overrides(params: DistillParams, data_yaml: Path) -> dict[str, Any]:
    """The Ultralytics ``train()`` arguments for these params: every Ultralytics key they hold (the ones 03 reads and
    any other a params file gave, ``cos_lr`` say), distil's own config keys, and where the run goes; the
    distillation keys only when distilling."""
    own = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.metadata.get("ultralytics")}
    overrides = {**own, **params.training, "data": str(data_yaml), "device": params.ultralytics_device,
                 "time": params.time or None, "enhance": params.enhance, "val_period": params.val_period,
                 "project": str(params.runs_dir), "name": params.run_name, "exist_ok": True}
    if params.distilling:  # the settings under their own keys: the trainer checks them as it would any call's
        overrides["distill_model"] = str(resolve_model_file(params.teacher_path, "teacher"))
        overrides.update({name: getattr(params, name) for name in SETTINGS if getattr(params, name) != ""})
        if params.distill_unlabeled:
            overrides["distill_unlabeled"] = params.unlabeled_source
        if params.distill_det_labels:
            overrides["distill_det_labels"] = str(resolve_path(params.distill_det_labels))
    return overrides


def train(params: DistillParams | dict | str | Path, **overrides: Any) -> Path:
    """Train one run (distilled, or the baseline when ``distill_weight`` is 0) and return its directory.

    The run's folder is held for the whole call (`distil.runs.RunFolder`): a second process training the same run is
    refused, and nothing in it is replaced without being moved to ``outputs/trash`` first.

    Args:
        params: `DistillParams`, a dict of flat keys, or a params YAML file.
        **overrides: Flat keys that replace those in ``params``.

    Returns:
        The Ultralytics run directory (``weights/best.pt``, ``results.csv``, ``args.yaml``, and for
        distillation ``distill.json`` and the adapters), with ``manifest.json`` added.

    Raises:
        ParamsError: A parameter is invalid; raised before any data is generated or read.
        RunBusyError: Another process is training this run.
    """
    params = DistillParams.load(params, **overrides)  # every setting checked, before anything is built
    started = time.time()
    folder = RunFolder(params.runs_dir / params.run_name, params.outputs_dir)
    trainer = DistillationTrainer if params.distilling else StudentTrainer
    with folder.lock.held():
        data_yaml = prepare_data(params)
        labels = checked_labels(params, data_yaml)
        arguments = ultralytics_overrides(params, data_yaml)
        if params.run_cache and not (params.rebuild or params.resume) and folder.state == "absent":
            # imported here, not at the top, so that `python -m distil.shipped_runs` runs that module once
            from distil.shipped_runs import copy_shipped_run

            copy_shipped_run(params, folder.path)  # then reused like a run trained here
        action = folder.decide(params, arguments)
        if action == "train" and params.distilling:
            warn_if_teacher_is_below_the_baseline(params)
        if action == "reuse":
            LOGGER.info(f"distil: {folder.path} already holds this run, finished; reusing it (rebuild: true trains "
                        "it again)")
            if not (folder.path / "manifest.json").exists():  # finished through Ultralytics' own resume: record it
                _, metrics = validate_one(folder.weights / "best.pt", data_yaml, params.imgsz, params.batch,
                                          params.ultralytics_device, params.enhance)
                final = {k: round(float(v), 5) for k, v in (metrics.results_dict if metrics else {}).items()}
                write_manifest(folder.path / "manifest.json", params.as_dict(), started, trainer=trainer.__name__,
                               final_metrics=final, note="finished outside distil.train; metrics of best.pt "
                                                         "validated now")
            return folder.path
        if action == "resume":
            model = YOLO(str(folder.weights / "last.pt"))
            model.train(trainer=trainer, resume=True)
        else:
            folder.record_start(params)
            model = YOLO(str(resolve_model_file(params.student, "student")))
            model.train(trainer=trainer, **arguments)
        run_dir = Path(model.trainer.save_dir)
        final = {k: round(float(v), 5) for k, v in (model.trainer.metrics or {}).items()}
        write_manifest(run_dir / "manifest.json", params.as_dict(), started, device=model.trainer.device,
                       trainer=trainer.__name__, final_metrics=final, teacher_sha1=teacher_fingerprint(params),
                       labels=[report.as_dict() for report in labels])
    for report in labels:  # said again at the end, where it is seen
        if report.dropped:
            LOGGER.warning(f"distil: this run trained without some images: {report.message()}")
    return run_dir


def warn_if_teacher_is_below_the_baseline(params: DistillParams) -> None:
    """Say it when both are known and the teacher's validation mAP50-95 is below the baseline student's: a worse
    teacher can only pull the student down."""
    import json

    record = params.outputs_dir / "teacher" / params.name / "teacher.json"
    baseline = params.run_dir("auto", baseline=True) / "manifest.json"
    if params.teacher != "auto" or not record.exists() or not baseline.exists():
        return
    teacher = json.loads(record.read_text()).get("map50_95")
    student = json.loads(baseline.read_text()).get("final_metrics", {}).get("metrics/mAP50-95(B)")
    if teacher is not None and student is not None and teacher < student:
        LOGGER.warning(f"distil: the teacher's validation mAP50-95 ({teacher:.3f}, {record}) is below the baseline "
                       f"student's ({student:.3f}): a teacher worse than the student alone can only pull it down. "
                       "Train the teacher longer or on more images (00_teacher), or give a stronger one (teacher: ...)")


def checked_labels(params, data_yaml: Path) -> list[LabelReport]:
    """The labels of the splits a run uses, checked as Ultralytics will read them (`distil.data.label_check`);
    what it will drop is said now, and with ``strict_labels`` refuses the run.

    Raises:
        ParamsError: ``strict_labels`` and some image would be dropped.
    """
    reports = check_labels(data_yaml, ("train", "val"))
    for report in reports:
        if report.dropped and params.strict_labels:
            raise ParamsError(f"{report.message()}\nstrict_labels: true refuses to train without them: fix the label "
                              "files named (class ids from 0 to the number of names - 1, coordinates within 0-1), "
                              "or set strict_labels: false to train without those images")
        if report.dropped:
            LOGGER.warning(f"distil: {report.message()}\n(strict_labels: true refuses to train without them)")
    return reports
