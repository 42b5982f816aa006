"""The README's "Your own dataset", followed on a dataset laid out unlike the demo's.

Non-square PNG images, four classes named by text, grayscale images, an image without objects and a
corrupt file; ``params/custom.yaml`` copied and filled in as the README says (the third teacher route:
trained here from scratch), then 00, 01, 02, 03 (baseline and distilled) and 04 under papermill.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
import yaml

from distil.data.demo import DemoSettings, generate_image

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["red apple", "banana", "Cherry", "date palm"]

pytestmark = pytest.mark.slow  # trains models or runs notebooks



def write_own_dataset(root: Path) -> Path:
    """A small YOLO dataset as a user might have it; returns its data.yaml (relative paths)."""
    settings = DemoSettings(imgsz=96, fault_fraction=0.3)
    for split, count in (("train", 14), ("val", 6)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(count):
            image, objects, _ = generate_image(settings, split, index)
            image = image[16:80]  # 96 x 64: not square
            lines = []
            for obj in objects:
                x1, y1, x2, y2 = obj.box
                y1, y2 = max(y1 - 16, 0), min(y2 - 16, 64)
                if y2 - y1 > 2:
                    lines.append(f"{obj.cls % len(NAMES)} {(x1 + x2) / 192:.5f} {(y1 + y2) / 128:.5f} "
                                 f"{(x2 - x1) / 96:.5f} {(y2 - y1) / 64:.5f}")
            if index % 4 == 1:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # grayscale
            if split == "train" and index == 2:
                lines = []  # an image without objects
            stem = f"photo {index:02d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), image)
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    (root / "images" / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # corrupt
    (root / "labels" / "train" / "broken.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": NAMES}))
    return data


@pytest.fixture(scope="module")
def own_params(tmp_path_factory) -> Path:
    """params/custom.yaml, copied and filled in as the README says."""
    root = tmp_path_factory.mktemp("own")
    data = write_own_dataset(root / "mydata")
    params = yaml.safe_load((ROOT / "params" / "custom.yaml").read_text())
    params.update({"data": str(data), "teacher": "auto", "teacher_model": "rtdetr-demo.yaml",  # route 3
                   "teacher_stages": [{"name": "encoder", "epochs": 1, "head": "dense"},
                                      {"name": "decoder", "epochs": 1, "lr0": 0.001, "freeze": "encoder"}],
                   # small and quick for a test
                   "imgsz": 64, "batch": 8, "epochs": 1, "device": "cpu", "student": "yolov8n.yaml",
                   "outputs": str(root / "outputs"), "speed_reps": 2, "samples": 2, "plots": False})
    path = root / "mydata.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run(name: str, params: Path, out: Path, **parameters) -> nbformat.NotebookNode:
    """`papermill notebooks/<name>.ipynb <out> -f <params> -p ...`, as the README shows."""
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out),
                               parameters={**yaml.safe_load(params.read_text()), **parameters},
                               cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    return nbformat.read(out, as_version=4)


def test_the_whole_series_runs_on_a_dataset_of_ones_own(own_params, tmp_path):
    outputs = Path(yaml.safe_load(own_params.read_text())["outputs"])
    run("00_teacher", own_params, tmp_path / "00.ipynb")
    teacher = yaml.safe_load((outputs / "teacher" / "mydata" / "teacher.json").read_text())
    assert teacher["source"] == "trained" and [s["name"] for s in teacher["stages"]] == ["encoder", "decoder"]

    executed = run("01_preprocessing", own_params, tmp_path / "01.ipynb")
    shown = "\n".join(str(o.get("data", {}).get("text/html", "")) for c in executed.cells for o in c.get("outputs", []))
    assert "local contrast" in shown and "exposure error" in shown  # every measure: the faults are unknown

    run("02_teacher_features", own_params, tmp_path / "02.ipynb")
    run("03_distill", own_params, tmp_path / "03_baseline.ipynb", teacher="none")
    run("03_distill", own_params, tmp_path / "03.ipynb")
    run("04_evaluate", own_params, tmp_path / "04.ipynb")
    table = pd.read_csv(outputs / "eval" / "mydata" / "comparison.csv", index_col="model")
    assert list(table.index) == ["teacher", "baseline", "distilled"]
    assert set(pd.read_csv(outputs / "eval" / "mydata" / "per_class.csv")["class"]) <= set(NAMES)
    for run_dir in ("mydata-baseline", "mydata-mse"):
        assert (outputs / "runs" / run_dir / "weights" / "best.pt").exists()
    assert not (ROOT / "runs").exists()  # nothing written outside outputs (and the dataset's label cache)
    assert np.isfinite(table.loc["distilled", "mAP50"])
