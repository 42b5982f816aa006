"""The distilled best.pt exports to ONNX and detects in onnxruntime what it detects in PyTorch."""

from __future__ import annotations

import shutil

import cv2
import pytest
from ultralytics import YOLO

from distil.eval.deploy import compare_detections, export_onnx

pytestmark = pytest.mark.slow  # trains models or runs notebooks



def test_onnx_export_matches_pytorch_detections(distilled_run, tiny_data, tmp_path):
    checkpoint = tmp_path / "best.pt"
    shutil.copyfile(distilled_run.wdir / "best.pt", checkpoint)  # export beside a copy, not in the shared run
    onnx_path = export_onnx(checkpoint, imgsz=64)
    assert onnx_path.suffix == ".onnx" and onnx_path.stat().st_size > 1_000_000
    images = [cv2.imread(str(p)) for p in sorted((tiny_data.parent / "images").glob("*/*.jpg"))]  # train and val
    parity = compare_detections(YOLO(str(checkpoint)), YOLO(str(onnx_path)), images, imgsz=64, conf=0.001)
    assert parity.matched >= 10  # a low threshold keeps many boxes of this barely trained model to compare
    assert parity.within(box_px=0.5, score=1e-3), parity
