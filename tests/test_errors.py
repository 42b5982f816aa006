"""Bad input stops before any long work, with a message that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import get_cfg

import distil
from distil import DistillationTrainer, ParamsError
from distil.engine import FeatureDistillationModel
from distil.engine.pairing import PairingError
from distil.engine.settings import DistillSettings
from distil.engine.teacher import build_from_yaml
from distil.params import DistillParams

from .conftest import distill_overrides


@pytest.mark.parametrize("extra, error, message", [
    ({"distill_loss": "kld"}, ValueError, "distill_loss='kld' is not one of \\[.*'mse'"),
    ({"distill_mask": "boxes"}, ValueError, "distill_mask='boxes' is not one of"),
    ({"distill_teacher_layers": "a,b"}, ValueError, "not 'auto' or a list of layer indices"),
    ({"distill_student_layers": [-1]}, ValueError, "not 'auto' or a non-empty list"),
    ({"dis": -1.0}, ValueError, "dis=-1.0 must be >= 0"),
    ({"distill_weight": 2.0, "dis": 1.0}, ValueError, "name the same setting \\(distill_weight\\) with different"),
    ({"distill_loss": "cwd", "distill_tau": 0}, ValueError, "distill_tau: tau=0 must be a number > 0"),
    ({"distill_loss_args": {"tau": 2.0}}, ValueError, "loss 'mse' has no argument 'tau' \\(it takes no arguments"),
    ({"distill_model": "missing/rtdetr-x.pt"}, FileNotFoundError, "distil never downloads weights"),
    ({"distill_model": "rtdetr-xx.yaml"}, FileNotFoundError, "not an Ultralytics model YAML"),
    ({"distill_model": "teacher.onnx"}, ValueError, "must be a .pt checkpoint or a model .yaml"),
    ({"val_period": 0}, ValueError, "val_period=0 must be a whole number >= 1"),
    ({"val_period": 2.5}, ValueError, "val_period=2.5 must be a whole number >= 1"),
])
def test_bad_distillation_settings_fail_before_the_dataset_is_read(tmp_path, rtdetr_teacher, extra, error, message):
    missing_data = tmp_path / "no-such-data.yaml"  # would fail later, in the dataset check
    overrides = distill_overrides(missing_data, rtdetr_teacher, tmp_path, "bad", model="yolov8n.yaml", **extra)
    if "dis" in extra and "distill_weight" not in extra:
        overrides.pop("distill_weight")  # the user wrote Ultralytics' own name only
    with pytest.raises(error, match=message):
        DistillationTrainer(overrides=overrides)
    assert not (tmp_path / "bad").exists()  # no run directory was made


def test_trainer_without_teacher_says_what_to_give(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="distill_model is not set"):
        YOLO("yolov8n.yaml").train(trainer=DistillationTrainer, data=str(tiny_data), epochs=1, imgsz=64,
                                   device="cpu", project=str(tmp_path))


def test_unpairable_layers_stop_before_the_first_step(tiny_data, rtdetr_teacher, tmp_path):
    steps = []
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_batch_start", lambda trainer: steps.append(1))
    with pytest.raises(PairingError, match="teacher layer 21 has stride 8 but student layer 18 has stride 16"):
        model.train(trainer=DistillationTrainer, epochs=1, distill_teacher_layers=[21, 24],
                    distill_student_layers=[18, 21],
                    **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "unpairable"))
    assert steps == []


def test_rtdetr_student_is_refused():
    teacher = build_from_yaml("rtdetr-demo.yaml")
    student = build_from_yaml("rtdetr-demo.yaml")
    settings = DistillSettings(distill_model="t.pt")
    with pytest.raises(TypeError, match="student must be a YOLO detector with a Detect head"):
        FeatureDistillationModel(teacher, student, settings, imgsz=64)


@pytest.mark.parametrize("overrides, message", [
    ({"epoch": 3}, "unknown parameter 'epoch' \\(did you mean epochs"),
    ({"epochs": "3"}, "epochs='3' has type str; expected int"),
    ({"distill_weight": True}, "distill_weight=True has type bool; expected float"),
    ({"epochs": 0}, "epochs=0 must be >= 1"),
    ({"hours": -1.0}, "time=-1.0 must be > 0 hours"),
    ({"val_period": 0}, "val_period=0 must be >= 1"),
    ({"teacher": "nowhere/teacher.pt"}, "teacher \\(parameter teacher\\) checkpoint 'nowhere/teacher.pt' not found"),
    ({"student": "yolov99z.yaml"}, "not an Ultralytics model YAML"),
    ({"data": "nowhere/data.yaml"}, "expected 'demo' or an existing YOLO data.yaml"),
    ({"loss": "l1"}, "parameter loss='l1' is not one of"),
    ({"distill_loss": "l1"}, "parameter distill_loss='l1' is not one of"),
    ({"loss": "cwd", "distill_loss_args": {"tau": -1}}, "parameter distill_loss_args: tau=-1 must be a number > 0"),
    ({"distill_mask": "box"}, "distill_mask='box' is not one of"),
    ({"teacher_layers": [21, "x"]}, "parameter teacher_layers=\\[21, 'x'\\] has type list; expected str or list"),
])
def test_bad_params_fail_before_data_is_generated(tmp_path, rtdetr_teacher, overrides, message):
    params = {"name": "bad", "teacher": str(rtdetr_teacher), "student": "yolov8n.yaml", "outputs": str(tmp_path),
              "demo_train": 4, "demo_val": 2, "demo_imgsz": 64, **overrides}
    with pytest.raises(ParamsError, match=message):
        distil.train(params)
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_baseline_needs_no_teacher(tmp_path):
    params = DistillParams.load({"teacher": "nowhere.pt", "distill_weight": 0.0, "student": "yolov8n.yaml"})
    assert not params.distilling and params.run_name == "demo-baseline"


def test_nonfinite_feature_loss_is_skipped_and_reported():
    teacher = build_from_yaml("rtdetr-demo.yaml")
    with torch.no_grad():  # poison the teacher's stride-32 output layer only
        for parameter in teacher.model[27].parameters():
            parameter.fill_(float("nan"))
    student = build_from_yaml("yolov8n.yaml")
    student.args = get_cfg()  # the loss reads its gains from the (default) training args
    model = FeatureDistillationModel(teacher, student, DistillSettings(distill_model="t.pt"), imgsz=64).train()
    batch = {"img": torch.rand(2, 3, 64, 64), "cls": torch.tensor([[0.0], [1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.3, 0.2, 0.2]]),
             "batch_idx": torch.tensor([0.0, 1.0])}
    loss, items = model.loss(batch)
    assert torch.isfinite(loss).all()
    assert float(items["dis_p5"]) == 0.0 and float(items["dis_p3"]) > 0
    assert model.nonfinite == [{"step": 1, "term": "p5", "level": "p5", "teacher_layer": 27, "student_layer": 21,
                                "value": model.nonfinite[0]["value"]}]
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
