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
import os
import re
import sys
from pathlib import Path

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from distil.params import ALIASES, TAU_ALIASES, Params
from distil.params_files import ParamsFileError, load_yaml_text, read_params_file
from distil.paths import project_root, resolve_path
from distil.runs import set_aside

NOTEBOOKS = project_root() / "notebooks"
LOADS = re.compile(r"distil\.(\w+Params)\.from_notebook\(")


def parse_value(text: str):
    """A ``-p`` value as papermill reads it: YAML scalars (numbers, true/false, lists), else the text; read strictly
    (`distil.params_files`: no aliases, no repeated keys)."""
    if not text.strip():
        return text
    try:
        return load_yaml_text(text, "a -p value")
    except ParamsFileError as error:
        if "not valid YAML" in str(error):
            return text
        raise SystemExit(str(error)) from None


def params_class_of(notebook: nbformat.NotebookNode) -> type[Params]:
    """The params class a notebook loads its parameters into (``distil.<X>Params.from_notebook``)."""
    import distil

    for cell in notebook.cells:
        match = LOADS.search(cell.source) if cell.cell_type == "code" else None
        if match:
            return getattr(distil, match.group(1))
    raise ValueError("the notebook loads no distil params class (distil.<X>Params.from_notebook(globals()))")


# errors distil raises for bad input: said in one line, without a traceback (``--verbose`` shows it)
INPUT_ERRORS = {"ParamsError", "SettingError", "ParamsFileError", "LabelStoreError", "ClassMappingError",
                "UnlabeledImagesError", "PairingError", "RunBusyError", "UnsafeCheckpointError", "NoLabelsError",
                "FileNotFoundError", "FileExistsError", "LabelingError"}


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error: which cell, the error in one line, where the executed notebook is."""

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, executed: Path, traceback: str):
        self.notebook, self.cell, self.ename, self.evalue, self.executed = notebook, cell, ename, evalue, executed
        self.traceback = traceback
        super().__init__(f"{notebook} failed in cell {cell}: {ename}: {evalue}")

    def report(self, verbose: bool = False) -> str:
        """What the terminal shows: the context (a few lines), then the reason, last and once."""
        lines = [f"{self.notebook} stopped in cell {self.cell}; the executed notebook, with everything it printed: "
                 f"{self.executed}"]
        if verbose or self.ename not in INPUT_ERRORS:  # a failure of the code itself: its last frames help
            lines += ["", *self.traceback.strip().splitlines()[-12:], ""]
        lines.append(f"{self.ename}: {self.evalue}")
        return "\n".join(lines)


def notebook_values(params_class: type[Params], values: dict) -> dict:
    """The keys of ``values`` the notebook of ``params_class`` reads (its own, their older names, and the Ultralytics
    training keys it passes on to training), and the keys no notebook knows (typos: the notebook names them)."""
    known = Params.known_keys()
    return {k: v for k, v in values.items() if params_class.takes(k) or k in ALIASES or k in TAU_ALIASES
            or k not in known}


def run(name: str, output: str | None, params_file: str | None, overrides: dict) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with the keys it takes; returns the executed notebook's path.

    The executed notebook is written beside its place and moved there when it succeeds; one that was there moves to
    ``outputs/trash`` (nothing is overwritten), and a failed run is kept as ``<name>.failed.ipynb``.

    Raises:
        NotebookFailed: A cell raised; the good executed notebook of an earlier run stays where it was.
    """
    notebook = NOTEBOOKS / f"{name.removesuffix('.ipynb')}.ipynb"
    if not notebook.exists():
        choices = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
        raise SystemExit(f"no notebook {notebook.name} in {NOTEBOOKS}; the series: {choices}")
    values = read_params_file(resolve_path(params_file)) if params_file else {}
    values.update(overrides)
    params_class = params_class_of(nbformat.read(notebook, as_version=4))
    passed = notebook_values(params_class, values)
    outputs = resolve_path(values.get("outputs", "outputs"))
    out = resolve_path(output) if output else outputs / "notebooks" / str(values.get("name", "demo")) / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped = sorted(set(values) - set(passed))
    if skipped:
        print(f"{notebook.name}: keys for other notebooks, not used here: {', '.join(skipped)}")
    running = out.with_name(f".{out.stem}.running.ipynb")
    try:
        papermill.execute_notebook(str(notebook), str(running), parameters=passed, cwd=str(NOTEBOOKS),
                                   progress_bar=False, stdout_file=sys.stdout, stderr_file=sys.stderr,
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no kernel start-up noise
    except PapermillExecutionError as error:
        failed = out.with_name(f"{out.stem}.failed.ipynb")
        os.replace(running, failed)
        raise NotebookFailed(notebook.stem, error.exec_count, error.ename, error.evalue, failed,
                             "\n".join(error.traceback)) from None
    set_aside(out, outputs, f"the new run of {notebook.name} takes its place")
    os.replace(running, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="e.g. 03_distill")
    parser.add_argument("output", nargs="?", help="executed notebook (default: outputs/notebooks/<name>/...)")
    parser.add_argument("-f", "--parameters_file", help="params YAML")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    parser.add_argument("--verbose", action="store_true", help="on a failure, show the whole traceback")
    args = parser.parse_args(argv)
    overrides = {key: parse_value(value) for key, value in args.parameters}
    try:
        executed = run(args.notebook, args.output, args.parameters_file, overrides)
    except NotebookFailed as failure:
        print(f"\n{failure.report(args.verbose)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{args.notebook} stopped (Ctrl-C). A training it was running keeps what it finished: run the same "
              "command with -p resume true to go on from its last epoch.", file=sys.stderr)
        return 130
    print(f"executed: {executed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
