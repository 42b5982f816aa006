"""Rewrite each notebook's ``parameters`` cell from its params class: python tools/sync_notebook_parameters.py

The notebooks (``notebooks/*.ipynb``) are the source of their code; only their parameters cell is
derived, from the params dataclass the notebook loads (``distil.<X>Params.from_notebook``): one line
per field, its default and its meaning (the field's ``help`` metadata). Run it after changing a
params class; ``tests/test_notebooks.py`` fails while a notebook is out of step.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MAX_LINE = 120  # the linter's line length (pyproject.toml)


def parameters_source(params_class: type) -> str:
    """The parameters cell's code: ``name = default  # help`` per field."""
    lines = []
    for field in dataclasses.fields(params_class):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if isinstance(default, tuple):
            default = list(default)
        assignment, help_text = f"{field.name} = {default!r}", field.metadata.get("help", "")
        if help_text and len(assignment) + len(help_text) + 4 > MAX_LINE:
            lines += [*textwrap.wrap(help_text, MAX_LINE - 2, initial_indent="# ", subsequent_indent="# "),
                      assignment]  # too long for one line: the meaning goes above
        else:
            lines.append(assignment + (f"  # {help_text}" if help_text else ""))
    return "\n".join(lines)


def parameters_cell(params_class: type) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(parameters_source(params_class))
    cell.metadata["tags"] = ["parameters"]
    return cell


def params_class_of(notebook: nbformat.NotebookNode) -> type:
    """The params class a notebook loads (see `distil.run_notebook.params_class_of`)."""
    from distil.run_notebook import params_class_of as find

    return find(notebook)


def sync(path: Path) -> bool:
    """Rewrite one notebook's parameters cell; True if it changed."""
    notebook = nbformat.read(path, as_version=4)
    wanted = parameters_source(params_class_of(notebook))
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    if cell.source == wanted:
        return False
    cell.source = wanted
    nbformat.write(notebook, path)
    return True


def main() -> None:
    sys.path.insert(0, str(ROOT))
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        print(("updated " if sync(path) else "in step ") + path.name)


if __name__ == "__main__":
    main()
