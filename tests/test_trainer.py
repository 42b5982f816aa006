"""The trainer end to end: a short RT-DETR -> YOLO run through `YOLO(...).train(trainer=DistillationTrainer)`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from distil.data import CLASS_NAMES
from distil.engine import FeatureDistillationModel
from distil.engine.teacher import cpu_computes_bf16


def test_teacher_is_frozen_bit_identical_and_in_eval_mode(distilled_run):
    wrapper = distilled_run.model
    assert isinstance(wrapper, FeatureDistillationModel)
    teacher = wrapper.teacher_model
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    after = teacher.state_dict()
    assert set(after) == set(distilled_run.teacher_before)
    changed = [k for k, v in distilled_run.teacher_before.items() if not torch.equal(v, after[k])]
    assert changed == []  # parameters and BatchNorm running statistics alike
    assert any("running_mean" in k for k in after)


def test_student_and_adapters_were_trained(distilled_run):
    wrapper = distilled_run.model
    student = wrapper.student_model.state_dict()
    moved = [k for k, v in distilled_run.initial_student.items()
             if v.is_floating_point() and not torch.equal(v, student[k])]
    assert len(moved) > len(student) // 2
    adapters = wrapper.projector.state_dict()
    assert all(not torch.equal(v, adapters[k]) for k, v in distilled_run.adapters_before.items())
    assert (distilled_run.wdir / "adapters_best.pt").exists()  # taught adapters are kept for 04's feature maps


def test_optimizer_holds_exactly_student_and_adapters(distilled_run):
    wrapper = distilled_run.model
    in_optimizer = {id(p) for group in distilled_run.optimizer.param_groups for p in group["params"]}
    student = {id(p) for p in wrapper.student_model.parameters()}  # Ultralytics keeps its frozen DFL conv too
    adapters = {id(p) for p in wrapper.projector.parameters()}
    teacher = {id(p) for p in wrapper.teacher_model.parameters()}
    assert adapters <= in_optimizer
    assert in_optimizer == student | adapters
    assert not in_optimizer & teacher


def test_results_csv_has_distill_columns(distilled_run):
    results = pd.read_csv(distilled_run.csv)
    results.columns = results.columns.str.strip()
    levels = [f"train/dis_{level}" for level in ("p3", "p4", "p5")]
    for column in ["train/dis_loss", *levels]:
        assert column in results.columns
        assert (results[column] > 0).all()
    # the total is the sum of the levels (already weighted)
    assert ((results[levels].sum(axis=1) - results["train/dis_loss"]).abs() < 1e-3).all()
    assert (results["val/dis_loss"] == 0).all()  # distillation is off during validation
    assert len(results) == 2


def test_distill_record_and_adapters_beside_weights(distilled_run):
    record = json.loads((distilled_run.save_dir / "distill.json").read_text())
    assert record["teacher_type"] == "RTDETRDetectionModel" and record["settings"]["distill_loss"] == "mse"
    assert record["teacher_precision"] == ("bf16" if cpu_computes_bf16() else "fp32")  # amp is on by default
    assert [lv["teacher"]["index"] for lv in record["levels"]] == [21, 24, 27]
    assert [lv["student"]["index"] for lv in record["levels"]] == [15, 18, 21]
    assert [lv["adapter"]["in_channels"] for lv in record["levels"]] == [64, 128, 256]
    assert [lv["adapter"]["out_channels"] for lv in record["levels"]] == [64, 64, 64]
    assert record["steps"] == 4 and record["nonfinite"] == []
    adapters = torch.load(distilled_run.wdir / "adapters_best.pt", weights_only=True)
    assert adapters["state_dict"]["0.weight"].shape == (64, 64, 1, 1)
    assert adapters["state_dict"]["2.weight"].shape == (64, 256, 1, 1)


@pytest.mark.slow
def test_best_and_last_are_plain_yolo_loadable_without_distil(distilled_run, tiny_data):
    expected = sum(p.numel() for p in DetectionModel("yolov8n.yaml", nc=len(CLASS_NAMES), verbose=False).parameters())
    image = next((tiny_data.parent / "images" / "val").glob("*.jpg"))
    script = textwrap.dedent(f"""
        import sys
        from ultralytics import YOLO
        for name in ("best.pt", "last.pt"):
            model = YOLO(r"{distilled_run.wdir}" + "/" + name)
            assert type(model.model).__name__ == "DetectionModel", type(model.model)
            count = sum(p.numel() for p in model.model.parameters())
            results = model.predict(r"{image}", imgsz=64, device="cpu", verbose=False)
            print(name, count, len(results))
        assert not any(m == "distil" or m.startswith("distil.") for m in sys.modules), "distil was imported"
    """)
    env = {"YOLO_OFFLINE": "1", "PATH": "/usr/bin:/bin", "YOLO_CONFIG_DIR": str(distilled_run.save_dir / "cfg")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line.split() for line in out.stdout.splitlines() if line.endswith(" 1")]
    assert [(name, int(count)) for name, count, _ in lines] == [("best.pt", expected), ("last.pt", expected)]


@pytest.mark.slow
def test_ultralytics_takes_every_core_unless_omp_num_threads_says_otherwise():
    """Importing Ultralytics set OMP_NUM_THREADS=1 and its device selection (every trainer, validator, predictor)
    left a core free: the demo's student and its teacher's labeling ran on one core of two, and notebook kernels
    inherited the 1. A fresh process, as a notebook kernel or make demo starts one."""
    script = textwrap.dedent("""
        import os, torch
        import distil
        from ultralytics.utils.torch_utils import select_device
        select_device("cpu", verbose=False)
        print(os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads())
    """)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    unset = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert unset.stdout.split() == ["None", str(os.cpu_count())]
    one = subprocess.run([sys.executable, "-c", script], env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                         text=True, check=True)
    assert one.stdout.split() == ["1", "1"]
