"""What a new user hits in the first hour: no dead ends after a failed run, clear errors, readable progress."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ultralytics import YOLO

import distil
from distil import ParamsError
from distil.data.yolo import NoLabelsError
from distil.eval.figures import read_results
from distil.runs import differing_params, read_checkpoint, recorded_params, run_state
from distil.shipped_runs import ship_run

ROOT = Path(__file__).resolve().parents[1]


def baseline(tiny_data, outputs, **extra) -> dict:
    """A tiny baseline run's params: no teacher, 64 px, CPU."""
    return {"name": "first", "data": str(tiny_data), "teacher": "none", "student": "yolov8n.yaml", "epochs": 2,
            "imgsz": 64, "batch": 8, "device": "cpu", "outputs": str(outputs), "plots": False, **extra}


class Interrupt(Exception):
    """Stands for Ctrl-C or a killed process."""


# --- 1. no dead ends --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_that_failed_before_its_first_checkpoint_is_simply_started_again(tiny_data, tmp_path):
    run = tmp_path / "runs" / "first-baseline"
    (run / "weights").mkdir(parents=True)
    (run / "args.yaml").write_text("epochs: 2\n")  # what a run that failed in its first epoch leaves
    assert distil.train(baseline(tiny_data, tmp_path)) == run
    assert (run / "weights" / "best.pt").exists() and (run / "manifest.json").exists()
    (kept,) = (tmp_path / "trash").glob("*/runs/first-baseline/args.yaml")  # moved aside, not deleted
    assert kept.read_text() == "epochs: 2\n"


def interrupted_run(params: dict, data: Path, epochs: int = 1) -> Path:
    """The run of these params, stopped after ``epochs`` epochs as by Ctrl-C (trained as distil.train would)."""
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_fit_epoch_end", lambda trainer: (_ for _ in ()).throw(Interrupt())
                       if trainer.epoch == epochs - 1 else None)
    overrides = distil.experiment.ultralytics_overrides(distil.DistillParams.load(params), data)
    with pytest.raises(Interrupt):
        model.train(trainer=distil.engine.StudentTrainer, **overrides)
    return Path(model.trainer.save_dir)


@pytest.mark.slow
def test_interrupted_finished_and_resumed_runs_each_say_what_to_do(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to the cwd would show up here
    params = baseline(tiny_data, tmp_path / "outputs")
    run = interrupted_run(params, tiny_data)
    with pytest.raises(ParamsError, match="holds an interrupted run \\(after 1 epochs\\): set resume: true"):
        distil.train(params)
    assert distil.train({**params, "resume": True}) == run
    assert json.loads((run / "manifest.json").read_text())["final_metrics"]
    with pytest.raises(ParamsError, match="is finished \\(2 epochs\\).*student: .*best.pt, run: first-baseline-more"):
        distil.train({**params, "resume": True})
    assert distil.train(params) == run  # finished, same params: reused
    moved = run.rename(run.with_name("renamed"))
    assert distil.train({**params, "run": "renamed"}) == moved  # the folder's name is not how it was trained
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]  # nothing written outside outputs


@pytest.mark.slow
def test_a_run_killed_while_writing_its_checkpoint_resumes_from_best_pt(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path, epochs=3)
    run = interrupted_run(params, tiny_data, epochs=2)
    last, best = run / "weights" / "last.pt", run / "weights" / "best.pt"
    first = read_checkpoint(best)
    torch.save({**first, "epoch": 0}, best)  # best.pt from the first epoch, so the second is trained again
    written = last.read_bytes()
    last.write_bytes(written[: len(written) // 2])  # the kill came half-way through Ultralytics' write
    assert run_state(run) == "damaged"
    with pytest.raises(ParamsError, match="last.pt is missing or damaged .*set resume: true to continue from its "
                                          "best.pt"):
        distil.train(params)
    assert distil.train({**params, "resume": True}) == run
    assert list(read_results(run)["epoch"]) == [1, 2, 3]  # the epochs after best.pt's trained again, not twice
    aside = next((run / "damaged").iterdir())
    assert len(read_results(aside)) == 2 and (aside / "last.pt").read_bytes() == written[: len(written) // 2]
    assert run_state(run) == "finished"
    empty = tmp_path / "empty.pt"
    empty.touch()  # a kill before the first byte
    assert read_checkpoint(empty) is None


@pytest.mark.slow
def test_a_shipped_run_is_copied_in_for_the_same_params_and_refused_for_others(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path / "made", epochs=1)
    run = distil.train(params)
    with pytest.raises(ParamsError, match="holds no finished run"):
        ship_run(interrupted_run(baseline(tiny_data, tmp_path / "cut", epochs=2), tiny_data), tmp_path / "nothing")
    shipped = ship_run(run, tmp_path / "shipped")
    assert sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*.*")) == [
        "args.yaml", "manifest.json", "results.csv", "weights/best.pt"]  # last.pt does not ship

    copied = distil.train({**params, "outputs": str(tmp_path / "here"), "run_cache": str(shipped)})
    assert (copied / "weights" / "best.pt").read_bytes() == (shipped / "weights" / "best.pt").read_bytes()
    assert (copied / "results.csv").read_text() == (run / "results.csv").read_text()  # not trained again
    assert run_state(copied) == "finished" and "shipped" in json.loads((copied / "manifest.json").read_text())

    other = {**params, "outputs": str(tmp_path / "other"), "run_cache": str(shipped), "epochs": 2}
    with pytest.raises(ParamsError, match="run_cache=.* holds a run made with other params \\(epochs\\): set "
                                          "run_cache: '' to train this run here"):
        distil.train(other)
    assert not (tmp_path / "other" / "runs" / "first-baseline").exists()  # nothing copied
    # a student alone is the same run whatever distillation the params file would otherwise do (make demo's
    # baseline is params/demo.yaml with teacher: none, so the demo's recipe can change without shipping it again)
    recipe = {"distill_loss": "cwd", "distill_mask": "teacher", "distill_det": 1.0, "distill_weight": 0.5}
    assert differing_params(recorded_params(shipped), distil.DistillParams.load({**params, **recipe})) == []
    (tmp_path / "teacher.pt").touch()  # where a teacher is, the distillation settings make the run
    assert {*recipe, "teacher"} <= set(differing_params(recorded_params(shipped), distil.DistillParams.load(
        {**params, **recipe, "teacher": str(tmp_path / "teacher.pt")})))
    with pytest.raises(ParamsError, match="must hold weights/best.pt and manifest.json"):
        distil.DistillParams.load({**params, "run_cache": str(tmp_path / "nothing")})


@pytest.mark.slow
def test_a_finished_run_is_not_reused_once_its_teacher_checkpoint_has_been_replaced(tiny_data, rtdetr_teacher,
                                                                                    tmp_path):
    """teacher: auto names a file 00_teacher replaces (a retrained or refined teacher): same params, other teacher."""
    teacher = tmp_path / "teacher.pt"
    shutil.copyfile(rtdetr_teacher, teacher)
    params = baseline(tiny_data, tmp_path, epochs=1, teacher=str(teacher), run="taught")
    run = distil.train(params)
    best = (run / "weights" / "best.pt").read_bytes()
    assert distil.train(params) == run and (run / "weights" / "best.pt").read_bytes() == best  # reused

    checkpoint = torch.load(teacher, weights_only=False)
    next(checkpoint["model"].parameters()).data += 1.0  # another teacher under the same path
    torch.save(checkpoint, teacher)
    with pytest.raises(ParamsError, match="was taught by another teacher: .*manifest.json records sha1 .*teacher.pt "
                                          "now holds sha1 .*Set run: <new name> to train with this teacher and keep "
                                          "both, or rebuild: true"):
        distil.train(params)
    assert (run / "weights" / "best.pt").read_bytes() == best  # nothing overwritten


@pytest.mark.slow
def test_a_run_finished_through_ultralytics_own_resume_is_recognised(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path)
    run = interrupted_run(params, tiny_data)
    YOLO(str(run / "weights" / "last.pt")).train(trainer=distil.enhancement.dataset.EnhancedDetectionTrainer,
                                                 resume=True)  # the README's Ultralytics way
    assert not (run / "manifest.json").exists()
    assert distil.train(params) == run  # recognised as finished, not retrained
    manifest = json.loads((run / "manifest.json").read_text())
    assert "finished outside distil.train" in manifest["note"] and manifest["final_metrics"]


# --- 3 and 4: the teacher ---------------------------------------------------------------------------------
def test_no_way_to_get_a_teacher_says_the_three_ways(tmp_path):
    with pytest.raises(ParamsError, match="teacher: <checkpoint.pt>.*teacher_weights: .*teacher_model: "):
        distil.TeacherParams.load({"outputs": str(tmp_path)})


def test_a_cached_teacher_made_with_other_params_is_refused(tmp_path, rtdetr_teacher):
    params = distil.TeacherParams.load({"name": "t", "outputs": str(tmp_path), "teacher_model": "rtdetr-demo.yaml",
                                        "demo_train": 4, "demo_val": 2, "demo_test": 0,
                                        "demo_imgsz": 64, "teacher_train": 6, "imgsz": 64})
    params.teacher_dir.mkdir(parents=True)
    shutil.copyfile(rtdetr_teacher, params.teacher_path)
    record = {"checkpoint": str(params.teacher_path), "params": distil.teacher_training.teacher_defining(params)}
    (params.teacher_dir / "teacher.json").write_text(json.dumps(record))
    stages = [{**stage, "epochs": 30, "lr0": 0.01} if stage["name"] == "decoder" else stage for stage in params.stages]
    changed = distil.TeacherParams.load({**params.as_dict(), "teacher_stages": stages})
    with pytest.raises(ParamsError, match="trained with other params \\(teacher_stages decoder epochs: 15 -> 30, "
                                          "teacher_stages decoder lr0: 0.001 -> 0.01\\): set rebuild: true"):
        distil.prepare_teacher(changed)


# --- 5. errors that used to come from deep inside Ultralytics ---------------------------------------------
def test_an_rtdetr_student_is_refused_before_anything_is_built(tmp_path):
    with pytest.raises(ParamsError, match="student='rtdetr-l.yaml': the student must be a YOLO detector"):
        distil.train({"student": "rtdetr-l.yaml", "teacher": "none", "outputs": str(tmp_path)})
    assert not (tmp_path / "data").exists()


def test_evaluate_names_every_missing_checkpoint_before_validating_any(tiny_data, tmp_path, rtdetr_teacher):
    with pytest.raises(FileNotFoundError, match="not found: baseline: .*a.pt; distilled: .*b.pt"):
        distil.evaluate({"teacher": rtdetr_teacher, "baseline": tmp_path / "a.pt", "distilled": tmp_path / "b.pt"},
                        tiny_data, imgsz=64)


def test_a_word_where_a_number_belongs_in_the_enhancement_is_named():
    with pytest.raises(ValueError, match="gamma must be a number > 0 .* or 'auto', got 'bright'"):
        distil.enhance(np.zeros((8, 8, 3), np.uint8), gamma="bright")


def test_a_training_set_without_a_single_box_stops_before_training(tiny_data, tmp_path):
    data = tmp_path / "empty"
    shutil.copytree(tiny_data.parent, data)
    for label in (data / "labels" / "train").glob("*.txt"):
        label.write_text("")
    for cache in data.rglob("*.cache"):
        cache.unlink()
    spec = yaml.safe_load((data / "data.yaml").read_text())
    spec.update({"path": str(data), "train": str(data / "images" / "train"), "val": str(data / "images" / "val")})
    (data / "data.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(NoLabelsError, match=f"label files in {data / 'labels' / 'train'} are all empty"):
        distil.train(baseline(data / "data.yaml", tmp_path / "outputs"))
    assert not list((tmp_path / "outputs" / "runs" / "first-baseline").rglob("*.pt"))


@pytest.mark.slow
def test_a_yolo_teacher_model_is_trained_in_one_stage(tmp_path):
    params = distil.TeacherParams.load({"name": "yolo-teacher", "outputs": str(tmp_path), "teacher_model":
                                        "yolov8n.yaml", "teacher_stages": [{"name": "direct", "epochs": 1}],
                                        "demo_train": 4, "demo_val": 2,
                                        "demo_test": 0, "demo_imgsz": 64, "teacher_train": 6, "imgsz": 64,
                                        "batch": 4, "device": "cpu"})
    report = distil.prepare_teacher(params)
    assert report.source == "trained" and [stage.name for stage in report.stages] == ["direct"]
    assert params.teacher_path.exists()


@pytest.mark.slow
def test_hours_cap_every_training_run_teacher_stages_and_students_alike(tiny_data, tmp_path):
    """``hours`` (per training run) is how a GPU lent for minutes is used: 200 epochs asked, a few seconds given."""
    run = distil.train(baseline(tiny_data, tmp_path, epochs=200, hours=0.0005))
    assert 1 <= len(read_results(run)) < 200 and (run / "weights" / "best.pt").exists()
    teacher = distil.TeacherParams.load({"name": "timed", "outputs": str(tmp_path), "teacher_model": "yolov8n.yaml",
                                         "teacher_stages": [{"name": "direct", "epochs": 200}], "hours": 0.0005,
                                         "demo_train": 4, "demo_val": 2,
                                         "demo_test": 0, "demo_imgsz": 64, "teacher_train": 6, "imgsz": 64,
                                         "batch": 4, "device": "cpu"})
    stage = distil.prepare_teacher(teacher).stages[0]
    assert 1 <= stage.epochs == len(read_results(Path(stage.run_dir))) < 200 and teacher.teacher_path.exists()


# --- 8 and 9: notebooks under make demo -------------------------------------------------------------------
@pytest.mark.slow
def test_run_notebook_streams_progress_and_passes_each_notebook_only_its_own_keys(tiny_data, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**baseline(tiny_data, tmp_path, epochs=1), "teacher": "auto",
                                      "teacher_model": "rtdetr-demo.yaml", "speed_reps": 3, "explore_image": 0}))
    out = subprocess.run([sys.executable, "-m", "distil.run_notebook", "03_distill", str(tmp_path / "03.ipynb"),
                          "-f", str(params), "-p", "teacher", "none"], capture_output=True, text=True, timeout=900,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Passed unknown parameter" not in log
    assert "keys for other notebooks, not used here: explore_image, speed_reps, teacher_model" in log
    assert "Epoch" in log and "1/1" in log  # the training's own progress, live
    assert (tmp_path / "03.ipynb").exists()


@pytest.mark.parametrize("command", [["distil", "--help"], ["distil", "teacher", "--help"],
                                     ["distil", "label", "--help"]])
@pytest.mark.slow
def test_the_distil_command_and_its_subcommands_say_how_they_are_used(command):
    """Every make target goes through `distil <command>`; `python -m distil` is the same command, without the
    runpy warning an eagerly imported submodule would print in front of every user."""
    out = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and "usage: distil" in out.stdout, out.stderr[-2000:]
    assert "RuntimeWarning" not in out.stderr, out.stderr[-2000:]
    if command == ["distil", "--help"]:
        for subcommand in ("run", "train", "demo", "teacher", "ship-run", "report", "study", "dashboard", "label"):
            assert subcommand in out.stdout
