"""A YOLO teacher works too, and `distil.train` drives both the distilled run and its baseline."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import distil

pytestmark = pytest.mark.slow  # trains models or runs notebooks



def test_yolo_teacher_distills_into_a_smaller_yolo(tiny_data, yolo_teacher, tmp_path):
    run = distil.train({"name": "yolo", "data": str(tiny_data), "teacher": str(yolo_teacher),
                        "student": "yolov8n.yaml", "loss": "pkd", "epochs": 1, "imgsz": 64, "batch": 8,
                        "device": "cpu", "outputs": str(tmp_path), "plots": False})
    record = json.loads((run / "distill.json").read_text())
    assert record["teacher_type"] == "DetectionModel"
    assert [(lv["adapter"]["in_channels"], lv["adapter"]["out_channels"]) for lv in record["levels"]] == [
        (64, 128), (128, 256), (256, 512)]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["params"]["distill_loss"] == "pkd" and manifest["trainer"] == "DistillationTrainer"
    assert manifest["packages"]["ultralytics"].startswith("8.4") and manifest["wall_time_s"] > 0


def test_weight_zero_trains_the_plain_baseline_under_the_same_schedule(tiny_data, tmp_path):
    run = distil.train({"name": "tiny", "data": str(tiny_data), "teacher": "never/loaded.pt", "distill_weight": 0,
                        "student": "yolov8n.yaml", "epochs": 1, "imgsz": 64, "batch": 8, "device": "cpu",
                        "outputs": str(tmp_path), "plots": False})
    assert run.name == "tiny-baseline"
    assert not (run / "distill.json").exists()
    results = pd.read_csv(run / "results.csv")
    assert not any("dis_" in c for c in results.columns)
    assert json.loads((run / "manifest.json").read_text())["trainer"] == "StudentTrainer"


def test_the_demo_teacher_yaml_builds_without_a_scale_warning(tmp_path):
    import logging

    from ultralytics.utils import LOGGER

    from distil.engine import build_from_yaml
    from distil.paths import resolve_model_file

    class Collect(logging.Handler):  # Ultralytics' logger does not propagate to pytest's capture
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    collect = Collect()
    LOGGER.addHandler(collect)
    try:
        model = build_from_yaml("rtdetr-demo.yaml")
        assert not [m for m in collect.messages if "no model scale passed" in m]
        scaled = tmp_path / "with-scales.yaml"  # the same model written with a scales table warns
        scaled.write_text(resolve_model_file("rtdetr-demo.yaml", "teacher").read_text() +
                          "scales:\n  s: [1.0, 1.0, 100000]\n")
        build_from_yaml(scaled)
        assert [m for m in collect.messages if "no model scale passed" in m]
    finally:
        LOGGER.removeHandler(collect)
    assert sum(p.numel() for p in model.parameters()) > 9_000_000  # the scaled-down RT-DETR, scales applied
