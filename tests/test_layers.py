"""The package's layers import downwards only, and its public surface is what ``__all__`` says."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import distil

PACKAGE = Path(distil.__file__).parent
# Lowest first; a module may import its own layer and those below (distil/__init__.py lists the same).
LAYERS = [
    ("foundation", ["distil.paths", "distil.offline", "distil.threads", "distil.atomic", "distil.portable",
                    "distil.defaults"]),
    ("data and enhancement", ["distil.data", "distil.enhancement"]),
    ("engine", ["distil.engine"]),
    ("eval", ["distil.eval"]),
    ("experiment", ["distil.params", "distil.params_files", "distil.experiment", "distil.teacher_training",
                    "distil.teacher_stages", "distil.manifest", "distil.runs",
                    "distil.shipped_runs",
                    "distil.report", "distil.dashboard", "distil.dashboard_server",
                    "distil.dashboard_kernels", "distil.legacy_paths", "distil"]),
]


def layer_of(module: str) -> int:
    """Index in LAYERS of the most specific prefix naming ``module``."""
    best = max(((prefix, i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), key=lambda item: len(item[0]))
    return best[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def distil_imports(path: Path) -> set[str]:
    """Every ``distil`` module a file imports, at any depth of its code (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "distil"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "distil":
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")).exists()}
    return found


def test_every_module_imports_only_its_own_layer_and_those_below():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for imported in distil_imports(path):
            if layer_of(imported) > layer_of(importer):
                violations.append(f"{importer} ({LAYERS[layer_of(importer)][0]}) imports {imported} "
                                  f"({LAYERS[layer_of(imported)][0]})")
    assert violations == []


def test_the_layer_check_would_see_an_upward_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from distil.params import DistillParams\n")
    assert distil_imports(sample) == {"distil.params"}
    assert layer_of("distil.params") > layer_of("distil.engine.trainer")


def test_the_public_surface_is_importable_and_complete():
    for name in distil.__all__:
        assert hasattr(distil, name), name
    for package in (distil.engine, distil.enhancement, distil.eval, distil.data):
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"


def test_notebooks_use_only_the_public_surface():
    """Names after ``distil.`` in the notebooks are in ``__all__`` (or a subpackage's ``__all__``)."""
    import json
    import re

    public = set(distil.__all__) | {"dashboard"}
    for notebook in (PACKAGE.parent / "notebooks").glob("*.ipynb"):
        code = "\n".join("".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
                         if cell["cell_type"] == "code")
        used = set(re.findall(r"\bdistil\.(\w+)", code)) | set(re.findall(r"from distil import (\w+)", code))
        used |= {m.split(".")[0] for m in re.findall(r"from distil\.([\w.]+) import", code)}
        assert used <= public, f"{notebook.name}: {sorted(used - public)}"


def test_every_distillation_setting_is_one_params_field_with_its_default():
    """Defined once (distil/cfg/default.yaml; checked in engine/settings.py): the params class that trains holds
    every setting, under the same key and default, and so does the engine's resolved settings."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(distil.DistillParams)}
    for key, setting in distil.SETTINGS.items():
        assert key in fields, key
        field = fields[key]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert default == setting.default, key
    settings_fields = [f.name for f in dataclasses.fields(distil.engine.DistillSettings)]
    assert settings_fields == ["distill_model", *distil.SETTINGS]


@pytest.mark.slow
def test_training_needs_none_of_the_notebook_extras():
    """A bare GPU machine has PyTorch and Ultralytics, not Jupyter: training, the teacher and the study import
    without ipywidgets, IPython, papermill or voila."""
    blocked = ("ipywidgets", "IPython", "traitlets", "comm", "papermill", "voila", "nbformat")
    code = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); "
            "import distil, distil.teacher_training, runpy; "
            "runpy.run_path('benchmarks/kd_study.py', run_name='kd_study')")
    run = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
