"""Every key is written once: distil's in distil/cfg/default.yaml, Ultralytics' in its own file; everything else
(the params classes, the engine's settings, the notebooks' cells, docs/settings.md) takes them from there."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

import distil
from distil.defaults import distil_keys, key, settings_page, ultralytics_keys
from distil.engine.settings import SETTINGS
from distil.params import NOTEBOOK_PARAMS, ParamsError
from distil.params_files import read_params_file
from distil.run_notebook import notebook_values

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_PARAMS))
def test_every_params_field_takes_its_default_and_meaning_from_the_defaults_files(notebook):
    for field in dataclasses.fields(NOTEBOOK_PARAMS[notebook]):
        spec = key(field.name)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert default == spec.default, field.name
        assert field.metadata["help"].startswith(spec.help), field.name
        assert field.metadata["ultralytics"] == (field.name not in distil_keys()), field.name


def test_no_default_or_meaning_of_a_distil_key_is_written_in_the_code():
    """A key's default written beside its name (``Setting("distill_x", 1.0, "meaning")``, ``param(1.0, ...)``)
    would be a second place: only names (and checks) may appear in the code."""
    found = []
    for path in sorted((ROOT / "distil").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
                    "Setting", "param"}:
                literals = [a for a in node.args[1:] if isinstance(a, ast.Constant)]
                if literals or node.keywords and any(k.arg in {"default", "help"} for k in node.keywords):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
    assert set(SETTINGS) == {k for k, spec in distil_keys().items() if spec.section == "distillation"}
    assert set(distil_keys()) & set(ultralytics_keys()) == {"name", "data"}  # distil's extend Ultralytics' meaning


def test_every_key_of_every_params_file_is_known():
    for path in sorted((ROOT / "params").rglob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        unknown = set(values) - distil.Params.known_keys() - {"base"}
        assert not unknown, f"{path}: {unknown}"


@pytest.mark.slow
def test_an_ultralytics_key_in_a_params_file_reaches_training_with_no_code_change(tiny_data, tmp_path):
    params = {"name": "keys", "data": str(tiny_data), "teacher": "none", "student": "yolov8n.yaml", "epochs": 1,
              "imgsz": 64, "batch": 8, "device": "cpu", "outputs": str(tmp_path), "plots": False,
              "cos_lr": True, "lrf": 0.05, "close_mosaic": 0}
    loaded = distil.DistillParams.load(params)
    assert loaded.training == {"cos_lr": True, "lrf": 0.05, "close_mosaic": 0}
    assert loaded.as_dict()["cos_lr"] is True  # and the manifest records it
    run = distil.train(params)
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert args["cos_lr"] is True and args["lrf"] == 0.05 and args["close_mosaic"] == 0
    with pytest.raises(ParamsError, match="did you mean cos_lr"):
        distil.DistillParams.load({**params, "cos_lrr": True})
    with pytest.raises(ParamsError, match="lrf"):  # Ultralytics' own check, before any data is read
        distil.DistillParams.load({**params, "lrf": "fast"})


def test_distil_run_hands_each_notebook_its_keys_and_03_distill_the_ultralytics_training_keys():
    """distil run / distil demo pass a notebook only what it reads: an Ultralytics key (nbs, close_mosaic) the params
    file holds must reach 03_distill, which passes it to training, or the run trains on Ultralytics' default."""
    values = {**read_params_file(ROOT / "params" / "demo.yaml"), "hours": 0.5, "cos_lrr": True}
    distill = notebook_values(distil.DistillParams, values)
    assert distill["nbs"] == 8 and distill["close_mosaic"] == 10 and distill["hours"] == 0.5
    assert distill["distill_teacher_every"] == 4 and "teacher_stages" not in distill
    assert distill["cos_lrr"] is True  # a typo goes through, for the notebook to name it
    teacher = notebook_values(distil.TeacherParams, values)
    assert "nbs" not in teacher and "distill_loss" not in teacher and teacher["teacher_stages"][1]["epochs"] == 20


def test_hours_is_read_as_ultralytics_time_with_one_line():
    assert distil.DistillParams.load({"hours": 0.5, "teacher": "none"}).time == 0.5
    assert distil.DistillParams.load({"hours": 0.0, "teacher": "none"}).time is None
    with pytest.raises(ParamsError, match="hours=1 and time=2 name the same key"):
        distil.DistillParams.load({"hours": 1, "time": 2, "teacher": "none"})


def test_the_settings_page_is_generated_from_the_defaults_file():
    assert (ROOT / "docs" / "settings.md").read_text() == settings_page() + "\n", \
        "docs/settings.md is stale: run python tools/write_docs.py"
    assert all(f"| `{name}` |" in settings_page() for name in distil_keys())


def test_papermill_applies_a_params_files_base_where_the_file_itself_is_silent(tmp_path):
    """papermill -f injects a file's own keys; the notebook reads its base for the rest (from IPython's history)."""
    namespace = {**{f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                    for f in dataclasses.fields(distil.DistillParams)},
                 "base": "params/demo.yaml", "teacher": "none", "epochs": 7, "distill_loss": "mse",
                 "In": ["", "# Parameters\nbase = 'params/demo.yaml'\nteacher = 'none'\nepochs = 7\n"
                            "distill_loss = 'mse'\n"]}
    namespace["distill_loss"] = "mse"  # the cell's default, written again by the file: the file wins, not the base
    params = distil.DistillParams.from_notebook(namespace)
    assert params.epochs == 7 and params.teacher == "none" and params.distill_loss == "mse"  # the file's
    assert params.demo_train == 50 and params.imgsz == 160  # the base's
    assert params.training.get("nbs") == 8  # the base's, Ultralytics' key included
    with pytest.raises(ParamsError, match="only a params file can do"):
        distil.DistillParams.from_notebook({"base": "params/demo.yaml"})
