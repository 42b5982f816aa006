"""Shared fixtures: a tiny generated dataset, saved teachers, and one short distillation run.

Everything is built from Ultralytics model YAMLs and data this project generates, at tiny sizes
(64-px images, a few epochs), so the suite runs on a 2-core CPU in minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import RTDETRDetectionModel, yaml_model_load

import distil  # noqa: F401  (keeps Ultralytics offline before anything else imports it)
from distil.data import CLASS_NAMES, make_demo_dataset
from distil.engine import build_from_yaml
from distil.paths import resolve_model_file

# warmup off and nbs = batch: every batch is an optimizer step with a non-zero learning rate
TINY = {"imgsz": 64, "batch": 8, "nbs": 8, "warmup_epochs": 0, "device": "cpu", "workers": 0, "plots": False,
        "seed": 0}


def save_teacher_checkpoint(model, path: Path) -> Path:
    """A model saved as a minimal Ultralytics checkpoint, as a trained teacher would be (weights fixed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {}, "date": None, "version": None}, path)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """data.yaml of a 16 + 8 image dataset at 64 px, with 16 unlabeled images."""
    return make_demo_dataset(tmp_path_factory.mktemp("data") / "tiny", n_train=16, n_val=8, imgsz=64, seed=3,
                             n_unlabeled=16)


@pytest.fixture(scope="session")
def rtdetr_teacher(tmp_path_factory) -> Path:
    """The demo RT-DETR built from its YAML once and saved as a .pt (random weights, fixed), knowing the demo's
    class names as a trained one would."""
    torch.manual_seed(0)
    model = RTDETRDetectionModel(yaml_model_load(resolve_model_file("rtdetr-demo.yaml", "teacher")),
                                 nc=len(CLASS_NAMES), verbose=False)
    model.names = dict(enumerate(CLASS_NAMES))
    return save_teacher_checkpoint(model, tmp_path_factory.mktemp("t") / "rtdetr.pt")


@pytest.fixture(scope="session")
def yolo_teacher(tmp_path_factory) -> Path:
    """A YOLOv8s teacher saved as a .pt."""
    return save_teacher_checkpoint(build_from_yaml("yolov8s.yaml"), tmp_path_factory.mktemp("t") / "yolov8s.pt")


def distill_overrides(data: Path, teacher: Path, project: Path, name: str, **extra) -> dict:
    """Ultralytics train() arguments of a tiny distillation run."""
    return {**TINY, "data": str(data), "distill_model": str(teacher), "distill_weight": 1.0, "project": str(project),
            "name": name, "exist_ok": True, **extra}


@pytest.fixture(scope="session")
def distilled_run(tiny_data, rtdetr_teacher, tmp_path_factory):
    """A 2-epoch rtdetr-demo -> yolov8n distillation through the public Ultralytics API.

    Returns the trainer (its live model, optimizer and initial states are inspected by tests).
    """
    from ultralytics import YOLO

    from distil import DistillationTrainer

    model = YOLO("yolov8n.yaml")
    snapshots = {}

    def remember_initial_state(trainer):  # after setup, before the first step
        wrapper = trainer.model
        snapshots["student"] = {k: v.clone() for k, v in wrapper.student_model.state_dict().items()}
        snapshots["adapters"] = {k: v.clone() for k, v in wrapper.projector.state_dict().items()}
        snapshots["teacher"] = {k: v.clone() for k, v in wrapper.teacher_model.state_dict().items()}  # as fused

    model.add_callback("on_pretrain_routine_end", remember_initial_state)
    project = tmp_path_factory.mktemp("runs")
    model.train(trainer=DistillationTrainer, epochs=2, distill_loss="mse",
                **{k: v for k, v in distill_overrides(tiny_data, rtdetr_teacher, project, "run").items()})
    trainer = model.trainer
    trainer.initial_student = snapshots["student"]
    trainer.teacher_before = snapshots["teacher"]
    trainer.adapters_before = snapshots["adapters"]
    return trainer
