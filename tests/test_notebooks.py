"""Every notebook runs under papermill with params/smoke.yaml, and records what it should."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
import yaml

import distil
from distil import params as config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from sync_notebook_parameters import parameters_source, params_class_of  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
SMOKE = ROOT / "params" / "smoke.yaml"
SERIES = [("00_teacher", {}), ("01_preprocessing", {}), ("02_teacher_features", {}),
          # the baseline as make demo trains it: the params file's teaching settings, with teacher: none
          ("03_distill", {"teacher": "none", "distill_det": 1.0}), ("03_distill", {}), ("04_evaluate", {})]
PARAMS_CLASS = {"00_teacher": config.TeacherParams, "01_preprocessing": config.PreprocessParams,
                "02_teacher_features": config.FeatureParams, "03_distill": config.DistillParams,
                "04_evaluate": config.EvalParams}

pytestmark = pytest.mark.slow  # trains models or runs notebooks



def run_notebook(name: str, out: Path, outputs: Path, **parameters) -> nbformat.NotebookNode:
    """Execute a notebook as `papermill <nb> <out> -f params/smoke.yaml -p outputs <tmp> ...` would."""
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out),
                               parameters={**load_smoke(), "outputs": str(outputs), **parameters},
                               cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    return nbformat.read(out, as_version=4)


def load_smoke() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def outputs_of(notebook: nbformat.NotebookNode) -> tuple[str, int]:
    """All text shown by a notebook, and how many images it shows."""
    texts, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts.append(data.get("text/plain", ""))
            texts.append(data.get("text/html", ""))
            images += "image/png" in data
    return "\n".join(map(str, texts)), images


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The whole series, in the order `make demo` runs it, on the smoke settings."""
    outputs = tmp_path_factory.mktemp("outputs")
    executed = {}
    for name, parameters in SERIES:
        label = name + ("_baseline" if parameters.get("teacher") == "none" else "")
        executed[label] = run_notebook(name, outputs / "notebooks" / f"{label}.ipynb", outputs, **parameters)
    return outputs, executed


def test_teacher_notebook_trains_and_reports_the_teacher(series):
    outputs, executed = series
    record = json.loads((outputs / "teacher" / "smoke" / "teacher.json").read_text())
    assert record["source"] == "trained" and [s["name"] for s in record["stages"]] == ["encoder", "decoder"]
    assert Path(record["checkpoint"]) == outputs / "teacher" / "smoke" / "teacher.pt"
    assert 0 <= record["map50"] <= 1 and 0 <= record["map50_95"] <= record["map50"] + 1e-9
    text, _ = outputs_of(executed["00_teacher"])
    assert "mAP50-95" in text and "trained" in text


def test_preprocessing_notebook_shows_and_measures_each_fault(series):
    outputs, executed = series
    text, images = outputs_of(executed["01_preprocessing"])
    assert images >= 3  # before/after, step effects, histograms
    faults = distil.data.image_faults(outputs / "data" / "demo-16-8-8-64-s0")
    present = {fault for path, fault in faults.items() if "/val/" in path} - {"none"}
    assert present and all(fault in text for fault in present)
    assert "improved" in text and "change %" in text


def test_distill_notebook_records_runs_with_distill_columns(series):
    outputs, executed = series
    distilled, baseline = outputs / "runs" / "smoke-mse", outputs / "runs" / "smoke-baseline"
    results = pd.read_csv(distilled / "results.csv")
    results.columns = results.columns.str.strip()
    assert {"train/dis_loss", "train/dis_p3", "train/dis_p4", "train/dis_p5"} <= set(results.columns)
    assert not any("dis_" in c for c in pd.read_csv(baseline / "results.csv").columns)
    manifest = json.loads((distilled / "manifest.json").read_text())
    assert 0 <= manifest["final_metrics"]["metrics/mAP50(B)"] <= 1
    assert manifest["params"]["distill_loss"] == "mse" and manifest["seed"] == 0
    assert manifest["device"].startswith("cpu")
    assert manifest["git_commit"] is None or len(manifest["git_commit"]) >= 40
    assert json.loads((distilled / "distill.json").read_text())["teacher_type"] == "RTDETRDetectionModel"
    text, images = outputs_of(executed["03_distill"])
    assert images >= 2  # loss curves and the diagram
    assert "Freezing layer 'teacher_model." not in text  # one line per teacher tensor used to bury the epochs
    assert "the teacher is frozen (" in text and "Epoch" in text


def test_features_notebook_shows_pairing_and_maps_before_any_training(series):
    _, executed = series
    text, images = outputs_of(executed["02_teacher_features"])
    assert "1x1 conv 64 -> 64" in text  # the pairing table
    assert images >= load_smoke()["samples"]  # one panel per sample image


def test_evaluate_notebook_shows_what_the_distilled_student_learned(series):
    _, executed = series
    text, images = outputs_of(executed["04_evaluate"])
    assert "compared: teacher, untrained student, trained student + adapter" in text
    assert images >= 4 + load_smoke()["samples"]  # bars, PR curves, losses, detections; one panel per image


def test_evaluate_notebook_writes_the_comparison(series):
    outputs, _ = series
    table = pd.read_csv(outputs / "eval" / "smoke" / "comparison.csv", index_col="model")
    assert list(table.index) == ["teacher", "baseline", "distilled"]
    for column in ("mAP50", "mAP50-95", "precision", "recall", "params", "GFLOPs", "ms_per_image", "gap_closed"):
        assert column in table.columns
    assert table.loc["baseline", "params"] == table.loc["distilled", "params"] < table.loc["teacher", "params"]
    assert ((table["mAP50"] >= 0) & (table["mAP50"] <= 1)).all() and (table["ms_per_image"] > 0).all()
    assert json.loads((outputs / "eval" / "smoke" / "comparison.json").read_text())[2]["model"] == "distilled"
    per_class = pd.read_csv(outputs / "eval" / "smoke" / "per_class.csv")
    assert set(per_class["class"]) <= set(distil.data.CLASS_NAMES) and len(per_class)


def test_every_notebook_leaves_a_manifest(series):
    outputs, _ = series
    names = [n for n in PARAMS_CLASS if n != "03_distill"] + ["03_distill-smoke-baseline", "03_distill-smoke-mse"]
    for name in names:
        manifest = json.loads((outputs / "notebooks" / "smoke" / f"{name}.manifest.json").read_text())
        assert manifest["params"]["name"] == "smoke" and manifest["wall_time_s"] > 0
        assert manifest["packages"]["ultralytics"] and manifest["python"]


def test_same_params_and_seed_give_the_same_metrics(series):
    """Train the distilled smoke run again under another name: identical metrics, epoch by epoch."""
    outputs, _ = series
    again = distil.train({**load_smoke(), "outputs": str(outputs), "run": "smoke-again"})
    first = pd.read_csv(outputs / "runs" / "smoke-mse" / "results.csv").drop(columns=["time"])
    second = pd.read_csv(again / "results.csv").drop(columns=["time"])
    pd.testing.assert_frame_equal(first, second)


def test_a_finished_run_is_reused_and_a_different_one_is_not_overwritten(series):
    outputs, _ = series
    run = outputs / "runs" / "smoke-mse"
    stamp = (run / "weights" / "best.pt").stat().st_mtime_ns
    assert distil.train({**load_smoke(), "outputs": str(outputs)}) == run
    assert (run / "weights" / "best.pt").stat().st_mtime_ns == stamp
    with pytest.raises(config.ParamsError, match="holds a run made with other params \\(epochs\\)"):
        distil.train({**load_smoke(), "outputs": str(outputs), "epochs": 2})


@pytest.mark.parametrize("parameters, message", [
    ({"epoch": 3}, "unknown parameter 'epoch' \\(did you mean epochs"),
    ({"epochs": "three"}, "epochs='three' has type str; expected int"),
    ({"student": "nowhere/student.pt"}, "student \\(parameter student\\) checkpoint 'nowhere/student.pt' not found"),
])
def test_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path, parameters, message):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(NOTEBOOKS / "03_distill.ipynb"), str(tmp_path / "bad.ipynb"),
                                   parameters={"outputs": str(tmp_path), "teacher": "rtdetr-demo.yaml",
                                               **parameters},
                                   cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    assert error.value.ename == "ParamsError"
    assert re.search(message, error.value.evalue)
    executed = nbformat.read(tmp_path / "bad.ipynb", as_version=4)
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    failed = [i for i, cell in enumerate(code_cells)
              if any(output.get("output_type") == "error" for output in cell.get("outputs", []))]
    assert failed == [2]  # parameters, injected parameters, then the cell that loads them
    assert "from_notebook(globals())" in code_cells[2].source
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", sorted(PARAMS_CLASS))
def test_committed_notebooks_are_clean_and_their_parameters_match_the_params_class(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name} is committed with outputs"
            assert "def " not in cell.source and "class " not in cell.source, f"{name} defines code"
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert params_class_of(notebook) is PARAMS_CLASS[name]
    assert parameters[0].source == parameters_source(PARAMS_CLASS[name]), \
        f"{name}'s parameters cell is out of step with its params class: run make notebooks"
    inferred = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))  # what papermill sees: every field
    assert set(inferred) == {f.name for f in dataclasses.fields(PARAMS_CLASS[name])}
    namespace: dict = {}
    exec(parameters[0].source, namespace)  # noqa: S102  (plain assignments only)
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(PARAMS_CLASS[name])}
    assert {k: v for k, v in namespace.items() if not k.startswith("__")} == defaults
