"""Write notebooks/*.ipynb from the cell lists below (clean: no outputs, no execution counts).

The notebooks are the artefact users open; this script only keeps their parameters cells equal
to the params dataclasses (defaults and comments come from distil/config.py). Run it after
changing a notebook's cells here or a params class:  python tools/build_notebooks.py
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distil import config  # noqa: E402


def field_comments() -> dict[str, str]:
    """The trailing comment of each field line in config.py."""
    comments = {}
    for line in (ROOT / "distil" / "config.py").read_text().splitlines():
        match = re.match(r"\s+(\w+): [^=]+= .*?#\s*(.*)$", line)
        if match:
            comments.setdefault(match.group(1), match.group(2))
    return comments


def parameters_cell(params_class) -> nbformat.NotebookNode:
    comments = field_comments()
    lines = []
    for f in dataclasses.fields(params_class):
        value = f.default
        comment = f"  # {comments[f.name]}" if f.name in comments else ""
        lines.append(f"{f.name} = {value!r}{comment}")
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["parameters"]
    return cell


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip())


def write(name: str, params_class, title: str, cells: list, show_params: bool = True) -> None:
    load = code(f"""
%matplotlib inline
import time

import distil
from distil.config import {params_class.__name__}

params = {params_class.__name__}.from_notebook(globals())  # stops here, with a clear message, on a bad parameter
started = time.time()
""" + ("params\n" if show_params else ""))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [md(title), parameters_cell(params_class), load, *cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.write(notebook, ROOT / "notebooks" / f"{name}.ipynb")


def main() -> None:
    from notebook_cells import NOTEBOOKS  # noqa: PLC0415  (the cells live beside this script)

    for name, (params_name, title, cells) in NOTEBOOKS.items():
        write(name, getattr(config, params_name), title, [md(c[3:]) if c.startswith("md:") else code(c) for c in cells],
              show_params=name != "05_dashboard")
        print("wrote", name)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
