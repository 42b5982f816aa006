"""Everything a run needs survives args.yaml, last.pt, resume, and the DDP worker rebuild."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.utils.dist import generate_ddp_file
from ultralytics.utils.patches import torch_load

from distil import DistillationTrainer
from distil.engine import DistillSettings, FeatureDistillationModel

from .conftest import distill_overrides

SETTINGS = {"distill_loss": "cwd", "distill_mask": "gt", "distill_loss_args": {"tau": 2.0}, "distill_weight": 0.5,
            "distill_teacher_layers": [24, 27], "distill_student_layers": [18, 21]}

pytestmark = pytest.mark.slow  # trains models or runs notebooks



class Crash(Exception):
    """Stands for a killed process."""


def test_crash_then_resume_continues_with_the_same_distillation(tiny_data, rtdetr_teacher, tmp_path):
    def crash_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise Crash

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_fit_epoch_end", crash_after_first_epoch)
    with pytest.raises(Crash):
        model.train(trainer=DistillationTrainer, epochs=3,
                    **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "resume", **SETTINGS))
    run = tmp_path / "resume"
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert {k: args[k] for k in SETTINGS} == SETTINGS
    last = run / "weights" / "last.pt"
    checkpoint = torch_load(last, map_location="cpu", weights_only=False)
    assert isinstance(checkpoint["ema"], FeatureDistillationModel) and checkpoint["ema"].teacher_model is None
    assert checkpoint["epoch"] == 0

    seen = {}

    def inspect_resumed_state(trainer):
        wrapper = trainer.model
        seen["start_epoch"] = trainer.start_epoch
        seen["settings"] = wrapper.settings
        seen["adapters"] = {k: v.clone() for k, v in trainer.ema.ema.projector.state_dict().items()}
        seen["optimizer"] = copy.deepcopy(trainer.optimizer.state_dict())  # training goes on in place
        seen["teacher"] = str(trainer.args.distill_model)

    resumed = YOLO(str(last))
    resumed.add_callback("on_pretrain_routine_end", inspect_resumed_state)
    resumed.train(trainer=DistillationTrainer, resume=True)

    assert seen["start_epoch"] == 1
    assert seen["teacher"] == str(rtdetr_teacher)
    settings = seen["settings"]
    assert settings.as_dict() == {**DistillSettings(distill_model="t").as_dict(), **SETTINGS,
                                  "distill_model": str(rtdetr_teacher)}
    saved_adapters = checkpoint["ema"].projector.state_dict()
    for key, value in seen["adapters"].items():
        assert torch.allclose(value, saved_adapters[key].float(), atol=1e-3)
    saved_state = checkpoint["optimizer"]["state"]
    resumed_state = seen["optimizer"]["state"]
    assert saved_state and set(saved_state) == set(resumed_state)
    some = next(iter(saved_state))
    assert torch.allclose(resumed_state[some]["exp_avg"].float(), saved_state[some]["exp_avg"].float())

    results = pd.read_csv(run / "results.csv")
    results.columns = results.columns.str.strip()
    assert list(results["epoch"]) == [1, 2, 3]
    assert {"train/dis_p4", "train/dis_p5"} <= set(results.columns) and "train/dis_p3" not in results.columns
    record = json.loads((run / "distill.json").read_text())
    assert record["settings"]["distill_loss"] == "cwd" and [lv["level"] for lv in record["levels"]] == ["p4", "p5"]
    assert record["steps"] == 6  # 2 steps per epoch over 3 epochs, counted across the resume


def test_older_names_given_to_ultralytics_land_in_args_under_their_keys(tiny_data, rtdetr_teacher, tmp_path):
    """``dis`` and ``distill_tau`` still work; args.yaml holds ``distill_weight`` and ``distill_loss_args``."""
    overrides = distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "aliases", model="yolov8n.yaml")
    overrides.pop("distill_weight")
    default = DistillationTrainer(overrides=overrides)
    assert default.distill_settings.distill_weight == 1.0 and default.args.dis == 1.0  # not Ultralytics' 6.0
    trainer = DistillationTrainer(overrides={**overrides, "dis": 0.3, "distill_loss": "cwd", "distill_tau": 3.0})
    assert trainer.distill_settings.distill_weight == 0.3
    assert trainer.args.distill_weight == 0.3 and trainer.args.distill_loss_args == {"tau": 3.0}
    assert trainer.args.distill_tau is None


def test_resume_refuses_a_yaml_teacher(tiny_data, tmp_path):
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_fit_epoch_end", lambda trainer: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        model.train(trainer=DistillationTrainer, epochs=2,
                    **distill_overrides(tiny_data, "rtdetr-demo.yaml", tmp_path, "yaml-teacher"))
    with pytest.raises(ValueError, match="cannot resume.*model YAML"):
        YOLO(str(tmp_path / "yaml-teacher" / "weights" / "last.pt")).train(trainer=DistillationTrainer, resume=True)


def test_resume_with_unlabeled_images_and_response_continues_with_the_same_settings(tiny_data, rtdetr_teacher,
                                                                                    tmp_path):
    teaching = {**SETTINGS, "distill_mask": "teacher", "distill_det": 0.5, "distill_det_conf": 0.05,
                "distill_unlabeled": str(tiny_data.parent / "images" / "unlabeled"), "distill_unlabeled_ratio": 0.5,
                "distill_warmup": 0.5}
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_fit_epoch_end", lambda trainer: (_ for _ in ()).throw(Crash()) if trainer.epoch == 0
                       else None)
    with pytest.raises(Crash):
        model.train(trainer=DistillationTrainer, epochs=2,
                    **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "teach", **teaching))
    seen = {}

    def inspect(trainer):
        seen.update(settings=trainer.distill_settings.as_dict(), per_batch=trainer.unlabeled.batch,
                    images=len(trainer.unlabeled))

    resumed = YOLO(str(tmp_path / "teach" / "weights" / "last.pt"))
    resumed.add_callback("on_train_start", inspect)
    resumed.train(trainer=DistillationTrainer, resume=True)
    assert {k: seen["settings"][k] for k in teaching} == teaching
    assert seen["per_batch"] == 4 and seen["images"] == 16  # half of each batch of 8, from 16 images
    record = json.loads((tmp_path / "teach" / "distill.json").read_text())
    assert record["unlabeled"]["images"] == 16 and record["unlabeled"]["per_batch"] == 4
    assert record["steps"] == 4 and record["gradient_balance"]
    assert set(record["gradient_balance"][0]["grad_norm"]) == {"detection", "dis_p4", "dis_p5", "det_loss"}
    results = pd.read_csv(tmp_path / "teach" / "results.csv")
    results.columns = results.columns.str.strip()
    assert list(results["epoch"]) == [1, 2] and (results["train/det_loss"] > 0).all()


def test_ddp_worker_script_rebuilds_the_same_trainer(tiny_data, rtdetr_teacher, tmp_path):
    """Run Ultralytics' generated DDP worker script single-process on CPU: same trainer, same settings."""
    teaching = {**SETTINGS, "distill_det": 0.5, "distill_unlabeled": str(tiny_data.parent / "images" / "unlabeled")}
    overrides = distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "ddp", epochs=1, model="yolov8n.yaml",
                                  **teaching)
    trainer = DistillationTrainer(overrides=overrides)
    trainer.model = trainer.get_model(cfg="yolov8n.yaml", verbose=False)  # what Model.train() does before train()
    script = generate_ddp_file(trainer)
    state = torch_load(script.replace(".py", ".pt"), map_location="cpu", weights_only=False)
    assert state["trainer"] is DistillationTrainer
    assert {k: state["args"][k] for k in teaching} == teaching

    # the worker runs in a fresh interpreter that imports distil only by unpickling the trainer class
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "ddp"
    record = json.loads((run / "distill.json").read_text())
    assert {k: record["settings"][k] for k in teaching} == teaching
    assert record["unlabeled"]["images"] == 16
    assert [(lv["teacher"]["index"], lv["student"]["index"]) for lv in record["levels"]] == [(24, 18), (27, 21)]
    results = pd.read_csv(run / "results.csv")
    assert any("dis_p4" in c for c in results.columns) and any("det_loss" in c for c in results.columns)
    assert YOLO(str(run / "weights" / "best.pt")).model.__class__.__name__ == "DetectionModel"


def test_a_checkpoint_from_before_the_package_moved_still_resumes(tmp_path):
    """``tests/fixtures/old_layout/run/weights/last.pt`` pickles the classes at their old module paths
    (``distil.model``, ``distil.adapter``, ``distil.losses``, ...; see make_checkpoint.py there)."""
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "old_layout"
    work = tmp_path / "old_layout"
    shutil.copytree(fixture, work)
    data = work / "data" / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(work / "data"), "train": "images/train", "val": "images/val",
                                    "names": {0: "disc", 1: "square", 2: "triangle"}}))
    last = work / "run" / "weights" / "last.pt"
    pickled = torch_load(last, map_location="cpu", weights_only=False)["ema"]
    assert type(pickled).__name__ == "FeatureDistillationModel"

    seen = {}
    resumed = YOLO(str(last))
    resumed.add_callback("on_pretrain_routine_end", lambda trainer: seen.update(
        start=trainer.start_epoch, loss=trainer.model.feature_loss, weight=trainer.model.settings.distill_weight))
    resumed.train(trainer=DistillationTrainer, resume=True, data=str(data), distill_model=str(work / "teacher.pt"),
                  save_dir=str(work / "run"), device="cpu")
    assert seen["start"] == 1 and seen["weight"] == 0.5
    assert type(seen["loss"]).__name__ == "ChannelWiseFeatureLoss" and seen["loss"].tau == 2.0
    results = pd.read_csv(work / "run" / "results.csv")
    results.columns = results.columns.str.strip()
    assert list(results["epoch"]) == [1, 2, 3]
    assert YOLO(str(work / "run" / "weights" / "best.pt")).model.__class__.__name__ == "DetectionModel"


def test_training_time_adds_up_the_segments_of_a_resumed_run():
    """Ultralytics' ``time`` column restarts from zero on resume; the run's time is every segment's end."""
    from distil.eval.figures import training_seconds

    uninterrupted = pd.DataFrame({"time": [10.0, 20.0, 30.0]})
    resumed_twice = pd.DataFrame({"time": [10.0, 20.0, 9.0, 18.0, 11.0]})
    assert training_seconds(uninterrupted) == 30.0
    assert training_seconds(resumed_twice) == 20.0 + 18.0 + 11.0
