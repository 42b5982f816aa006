"""Run one notebook of the series with papermill, as ``make demo`` does, with live progress.

    python -m distil.run_notebook 03_distill -f params/demo.yaml -p distill_weight 0
    python -m distil.run_notebook 03_distill outputs/notebooks/demo/03_baseline.ipynb -f params/demo.yaml

The same as ``papermill notebooks/<name>.ipynb <out> -f <params> -p <key> <value> --log-output``, with
two differences: a params file serves the whole series, so its keys that belong to other notebooks are
passed over quietly (papermill would print "Passed unknown parameter" for each, which looks like an
error but is not); and the output notebook defaults to ``outputs/notebooks/<name>/<notebook>.ipynb``.
A key that no notebook knows still reaches the notebook, which stops in its first cells and names it.
Training progress (epochs, losses, time left) streams to the terminal as it happens, and the executed
notebook keeps it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import nbformat
import papermill
import yaml

from distil.params import ALIASES, TAU_ALIASES, Params
from distil.params_files import read_params_file
from distil.paths import project_root, resolve_path

NOTEBOOKS = project_root() / "notebooks"
LOADS = re.compile(r"distil\.(\w+Params)\.from_notebook\(")


def parse_value(text: str):
    """A ``-p`` value as papermill reads it: YAML scalars (numbers, true/false, lists), else the text."""
    if not text.strip():
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def params_class_of(notebook: nbformat.NotebookNode) -> type[Params]:
    """The params class a notebook loads its parameters into (``distil.<X>Params.from_notebook``)."""
    import distil

    for cell in notebook.cells:
        match = LOADS.search(cell.source) if cell.cell_type == "code" else None
        if match:
            return getattr(distil, match.group(1))
    raise ValueError("the notebook loads no distil params class (distil.<X>Params.from_notebook(globals()))")


def run(name: str, output: str | None, params_file: str | None, overrides: dict) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with the keys it takes; returns the executed notebook's path."""
    notebook = NOTEBOOKS / f"{name.removesuffix('.ipynb')}.ipynb"
    if not notebook.exists():
        choices = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
        raise SystemExit(f"no notebook {notebook.name} in {NOTEBOOKS}; the series: {choices}")
    values = read_params_file(resolve_path(params_file)) if params_file else {}
    values.update(overrides)
    params_class = params_class_of(nbformat.read(notebook, as_version=4))
    own = {f.name for f in dataclasses.fields(params_class)} | set(ALIASES) | set(TAU_ALIASES)
    elsewhere = set(Params.known_keys())
    passed = {k: v for k, v in values.items() if k in own or k not in elsewhere}  # typos go through, to be named
    run_name = values.get("name", "demo")
    out = resolve_path(output) if output else \
        resolve_path(values.get("outputs", "outputs")) / "notebooks" / str(run_name) / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped = sorted(set(values) - set(passed))
    if skipped:
        print(f"{notebook.name}: keys for other notebooks, not used here: {', '.join(skipped)}")
    papermill.execute_notebook(str(notebook), str(out), parameters=passed, cwd=str(NOTEBOOKS), progress_bar=False,
                               stdout_file=sys.stdout, stderr_file=sys.stderr)  # the cells' output, live
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="e.g. 03_distill")
    parser.add_argument("output", nargs="?", help="executed notebook (default: outputs/notebooks/<name>/...)")
    parser.add_argument("-f", "--parameters_file", help="params YAML")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = parser.parse_args(argv)
    overrides = {key: parse_value(value) for key, value in args.parameters}
    print(f"executed: {run(args.notebook, args.output, args.parameters_file, overrides)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
