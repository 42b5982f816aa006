"""A user's own project, start to finish: label errors said instead of silently dropping images, a teacher with
nothing to teach said before training, the noise that hid the message gone, and one way through make and papermill."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import distil
from distil import ParamsError

from .test_first_hour import baseline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def broken_data(tiny_data, tmp_path) -> Path:
    """The tiny dataset with three faults Ultralytics drops whole images for: a class id beyond its names, a
    coordinate above 1, and a file named .jpg that is not an image."""
    root = tmp_path / "broken"
    shutil.copytree(tiny_data.parent, root)
    spec = yaml.safe_load((root / "data.yaml").read_text())
    spec.update(path=str(root), **{split: f"images/{split}" for split in ("train", "val", "test") if split in spec})
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    labels = sorted((root / "labels" / "train").glob("*.txt"))
    labels[0].write_text("9 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n")
    labels[1].write_text("2 0.5 1.5 0.2 0.2\n")
    image = sorted((root / "images" / "train").glob("*.jpg"))[2]
    image.write_text("not an image at all")
    for cache in root.rglob("*.cache"):
        cache.unlink()
    return root / "data.yaml"


@pytest.mark.slow
def test_label_errors_are_reported_before_and_after_training_and_recorded(broken_data, tmp_path, caplog):
    from distil.data.label_check import check_labels

    (train, _val) = check_labels(broken_data)
    not_an_image = next(d for d in train.dropped if "not an image" in d.reason)
    assert len(train.dropped) == 3 and train.boxes_lost == 2 + 1 + not_an_image.boxes
    reasons = " ".join(d.reason for d in train.dropped)
    assert "exceeds dataset class count" in reasons and "out of bounds" in reasons and "not an image" in reasons
    with caplog.at_level(logging.WARNING):
        run = distil.train(baseline(broken_data, tmp_path, epochs=1))
    said = [r.getMessage() for r in caplog.records if "will be left out of training" in r.getMessage()]
    assert len(said) == 2  # before training, and again at its end
    labels = json.loads((run / "manifest.json").read_text())["labels"]
    assert labels[0]["split"] == "train" and labels[0]["dropped_images"] == 3
    assert labels[0]["dropped_boxes"] == train.boxes_lost and labels[0]["first"][0]["reason"]


def test_strict_labels_refuses_to_train_naming_the_files(broken_data, tmp_path):
    with pytest.raises(ParamsError, match="(?s)3 of the 16 train images .*exceeds dataset class count.*not an image"
                                          ".*strict_labels: true refuses"):
        distil.train(baseline(broken_data, tmp_path, epochs=1, strict_labels=True))
    assert not (tmp_path / "runs" / "first-baseline" / "weights").exists()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["online", "offline"])
def test_a_teacher_that_detects_nothing_on_the_unlabeled_images_is_said_before_training(tiny_data, rtdetr_teacher,
                                                                                     tmp_path, caplog, mode):
    from ultralytics import YOLO

    from .conftest import distill_overrides

    with caplog.at_level(logging.WARNING):
        YOLO("yolov8n.yaml").train(trainer=distil.DistillationTrainer, epochs=1, distill_det=1.0,
                                   distill_det_mode=mode, distill_det_conf=0.999,
                                   distill_unlabeled=str(tiny_data.parent / "images" / "unlabeled"),
                                   **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, mode, distill_weight=0.0))
    assert any("the teacher detects nothing from score 0.999" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_a_teacher_below_the_baseline_is_said_before_training(tiny_data, rtdetr_teacher, tmp_path, caplog):
    outputs = tmp_path / "out"
    teacher = outputs / "teacher" / "first" / "teacher.pt"
    teacher.parent.mkdir(parents=True)
    shutil.copyfile(rtdetr_teacher, teacher)
    (teacher.parent / "teacher.json").write_text(json.dumps({"map50_95": 0.1, "checkpoint": str(teacher)}))
    (outputs / "runs" / "first-baseline").mkdir(parents=True)
    (outputs / "runs" / "first-baseline" / "manifest.json").write_text(
        json.dumps({"final_metrics": {"metrics/mAP50-95(B)": 0.5}}))
    with caplog.at_level(logging.WARNING):
        distil.train(baseline(tiny_data, outputs, epochs=1, teacher="auto", distill_weight=1.0))
    assert any("is below the baseline student's (0.500)" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_training_starts_without_the_settings_line_or_a_line_per_frozen_tensor(tiny_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        distil.train(baseline(tiny_data, tmp_path, epochs=1))
    messages = [r.getMessage() for r in caplog.records]
    assert not any("agnostic_nms=" in m for m in messages) and not any("Freezing layer '" in m for m in messages)
    assert any("every setting of this run is in" in m for m in messages)


def test_ctrl_c_says_how_to_go_on(monkeypatch, capsys):
    from distil import run_notebook

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_notebook, "run", interrupted)
    assert run_notebook.main(["03_distill", "-f", "params/smoke.yaml"]) == 130
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "-p resume true" in said[0]


def test_an_empty_gap_is_explained_and_an_unreadable_image_is_not_replaced_by_a_sample(tmp_path):
    from distil.eval.comparison import gap_closed, gap_note

    table = pd.DataFrame({"mAP50-95": [0.40, 0.45, 0.46]}, index=["teacher", "baseline", "distilled"])
    assert "the teacher (0.400 mAP50-95) is not better than the baseline (0.450)" in gap_note(table)
    assert gap_closed(table, "teacher", "baseline").isna().all()  # the table's column empty, as the note says
    assert gap_closed(table.assign(**{"mAP50-95": [0.6, 0.45, 0.5]}), "teacher", "baseline")["distilled"] > 0.3
    assert gap_note(table.assign(**{"mAP50-95": [0.6, 0.45, 0.5]})) is None
    (tmp_path / "broken.jpg").write_text("no")
    import cv2

    cv2.imwrite(str(tmp_path / "fine.jpg"), np.full((32, 32, 3), 128, np.uint8))
    shown = distil.data.readable_images([tmp_path / "broken.jpg", tmp_path / "fine.jpg"], 4)
    assert len(shown) == 1 and shown[0].shape == (32, 32, 3)


def test_nothing_is_written_outside_outputs_and_make_has_one_name():
    from distil.offline import default_config_dir

    assert default_config_dir().relative_to(ROOT / "outputs")  # Ultralytics' settings file too
    makefile = (ROOT / "Makefile").read_text()
    assert "NAME" not in makefile  # the series' name is the params file's `name`
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "AGPL-3.0-only"' in pyproject  # setuptools warned about a table, about 57 lines
    commands = subprocess.run(["make", "-n", "demo", "PARAMS=params/custom.yaml", "ARGS=-p rebuild true"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
    assert "--baseline params/custom-baseline.yaml -p rebuild true" in commands


def test_make_demo_on_a_new_params_file_writes_its_baseline_instead_of_stopping(tmp_path, monkeypatch):
    """make demo PARAMS=params/mydata.yaml names params/mydata-baseline.yaml, which a new user does not have yet:
    it is written (the student alone on twice the epochs), not refused; another missing file is refused."""
    from distil.params import ParamsError
    from distil.series import baseline_params

    mine = tmp_path / "mydata.yaml"
    mine.write_text("name: mydata\nepochs: 30\nteacher: none\n")
    monkeypatch.chdir(tmp_path)
    written = baseline_params(Path("mydata.yaml"), Path("mydata-baseline.yaml"))
    assert written.name == "mydata-baseline.yaml"
    assert yaml.safe_load(written.read_text()).items() >= {"teacher": "none", "epochs": 60, "patience": 100}.items()
    with pytest.raises(ParamsError, match="other-baseline.yaml do not exist"):
        baseline_params(mine, tmp_path / "other-baseline.yaml")
