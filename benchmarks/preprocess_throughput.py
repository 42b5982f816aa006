"""Throughput of each enhancement step and of the default pipeline, on one thread.

For each size it prints images per second, and the time as a multiple of a plain memory copy of
the same image (the floor: no step can read and write an image faster). It also times the
student's own inference (YOLOv8s from its YAML, fused, one thread, at 640) on the same image, so
the pipeline's cost can be read against the model it feeds.

    python benchmarks/preprocess_throughput.py
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

import distil  # noqa: F401  (offline Ultralytics)
from distil.data import DemoSettings, generate_image
from distil.enhancement.pipeline import STEP_ORDER, Pipeline, enhance
from distil.eval.timing import interleaved_medians
from distil.manifest import write_json


def median_seconds(fn, reps: int) -> float:
    return interleaved_medians({"fn": fn}, reps, warmup=1)["fn"]


def test_image(width: int, height: int) -> np.ndarray:
    """A demo scene with a capture fault, resized to the benchmark size."""
    image, _, _ = generate_image(DemoSettings(imgsz=640, seed=5, fault_fraction=1.0), "train", 3)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def student_inference_seconds(image: np.ndarray, reps: int) -> float:
    """Median time of one fused YOLOv8s forward pass at 640 (letterboxed tensor), one thread."""
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8s.yaml", nc=3, verbose=False).fuse(verbose=False).eval()
    tensor = torch.from_numpy(cv2.resize(image, (640, 640))).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        return median_seconds(lambda: model(tensor), reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--out", default="outputs/bench/preprocess_throughput.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    for width, height in ((640, 640), (1920, 1080)):
        image = test_image(width, height)
        floor = median_seconds(lambda image=image: image.copy(), args.reps * 4)
        timings = {name: median_seconds(lambda image=image, name=name: enhance(image, **{name: True}), args.reps)
                   for name in STEP_ORDER}
        timings["default pipeline"] = median_seconds(lambda image=image: Pipeline.default()(image), args.reps)
        student = student_inference_seconds(image, max(3, args.reps // 3))
        print(f"\n{width}x{height}, 1 thread: memory copy {floor * 1e3:.3f} ms; "
              f"YOLOv8s inference at 640: {student * 1e3:.1f} ms")
        print(f"{'step':<18}{'ms':>9}{'images/s':>11}{'x copy':>10}{'x student':>11}")
        for name, seconds in timings.items():
            print(f"{name:<18}{seconds * 1e3:>9.2f}{1 / seconds:>11.1f}{seconds / floor:>10.0f}"
                  f"{seconds / student:>11.3f}")
            rows.append({"size": f"{width}x{height}", "step": name, "ms": round(seconds * 1e3, 3),
                         "images_per_s": round(1 / seconds, 1), "x_copy": round(seconds / floor, 1),
                         "x_student_inference": round(seconds / student, 4),
                         "copy_ms": round(floor * 1e3, 4), "student_ms": round(student * 1e3, 2)})
    print(f"\nwritten {write_json(args.out, rows)}")


if __name__ == "__main__":
    main()
