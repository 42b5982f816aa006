"""The notebook series, start to finish (``distil demo``, ``make demo``): teacher, preprocessing, teacher features,
the baseline and the distilled student, evaluation, and the comparison table.

One baseline, whichever way a user goes: the baseline of ``params/<x>.yaml`` is ``params/<x>-baseline.yaml`` (the
same task with ``teacher: none``, trained until it stops improving: twice the epochs, Ultralytics' early
stopping), a params file that builds on it (``base: <x>.yaml``). The README's papermill route and this one train
the same run from it. Where it is missing it is written, and said so. The overrides given (``-p key value``) apply
to every notebook, the baseline's included.

Where the baseline must be trained (not reused, not copied in from ``run_cache``), the two students train side by
side on half the cores each: on a 2-core CPU two one-thread runs take less time together than one after the
other. A side-by-side run that fails prints its own last lines, not only where its log is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from distil.params import DistillParams, ParamsError, SeriesKeys
from distil.params_files import read_params_file
from distil.paths import project_root
from distil.runs import RunFolder
from distil.threads import training_threads

BEFORE = ("00_teacher", "01_preprocessing", "02_teacher_features")
TAIL_LINES = 25


def default_baseline(params_file: Path) -> Path:
    """``params/<x>-baseline.yaml`` beside ``params/<x>.yaml``: where the baseline of a params file is."""
    return params_file.with_name(f"{params_file.stem}-baseline.yaml")


def baseline_file(params_file: Path) -> Path:
    """`default_baseline`, written when missing (its contents said)."""
    path = default_baseline(params_file)
    if not path.exists():
        epochs = int(read_params_file(params_file).get("epochs") or 100)
        try:  # from the project root, as papermill -f reads a base too
            base = params_file.resolve().relative_to(project_root())
        except ValueError:
            base = params_file.resolve()
        path.write_text(f"# The baseline of {params_file.name}: the student alone (teacher: none) on its labels, on "
                        "twice the\n# epochs, until it stops improving (patience). Written by distil demo; edit it "
                        f"freely.\nbase: {base}\nteacher: none\nepochs: {2 * epochs}\npatience: 100\n")
        print(f"distil: wrote {path}, the baseline of {params_file.name} (teacher: none, {2 * epochs} epochs, "
              "patience 100)")
    return path


def baseline_params(params_file: Path, given: Path | None = None) -> Path:
    """The baseline's params file: ``given``, or `baseline_file` (written when missing) where none is given or the
    one given is that default (``make demo`` always names it).

    Raises:
        ParamsError: Another file was given and does not exist.
    """
    if given is None or Path(given).resolve() == default_baseline(params_file).resolve():
        return baseline_file(params_file)
    if not Path(given).exists():
        raise ParamsError(f"the baseline's params {given} do not exist: give --baseline <file>, or leave it out "
                          f"to have {default_baseline(params_file).name} written beside {params_file.name}")
    return Path(given)


def needs_training(params_file: Path, overrides: dict) -> bool:
    """Whether the run of these params has to be trained (it is not there finished, nor shipped to copy in)."""
    params = DistillParams.load(params_file, **overrides)
    folder = RunFolder(params.runs_dir / params.run_name, params.outputs_dir)
    if params.rebuild:
        return True
    return folder.state != "finished" and not (params.run_cache and folder.state == "absent")


def notebook_command(name: str, output: Path, params_file: Path, overrides: dict) -> list[str]:
    command = [sys.executable, "-m", "distil.run_notebook", name, str(output), "-f", str(params_file)]
    for key, value in overrides.items():
        command += ["-p", key, "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)]
    return command


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n").splitlines() if path.exists() else []
    return "\n".join(line for line in text[-lines:])


def run_series(params_file: Path, overrides: dict, baseline: Path | None = None, verbose: bool = False) -> int:
    """Run the series for ``params_file``; 0 when every step succeeded.

    Raises:
        ParamsError: The params (or the baseline's) are invalid: said before anything runs.
    """
    from distil.report import main as report
    from distil.run_notebook import NotebookFailed, run

    series = SeriesKeys.load(params_file, **{k: v for k, v in overrides.items() if SeriesKeys.takes(k)})
    baseline = baseline_params(params_file, baseline)
    folder = series.outputs_dir / "notebooks" / series.name
    try:
        for name in BEFORE:
            run(name, str(folder / f"{name}.ipynb"), str(params_file), overrides)
        if needs_training(baseline, overrides):
            code = side_by_side(params_file, baseline, overrides, folder)
            if code:
                return code
        else:  # reused, or copied in: seconds
            run("03_distill", str(folder / "03_distill_baseline.ipynb"), str(baseline), overrides)
            run("03_distill", str(folder / "03_distill.ipynb"), str(params_file), overrides)
        run("04_evaluate", str(folder / "04_evaluate.ipynb"), str(params_file), overrides)
    except NotebookFailed as failure:
        print(f"\n{failure.report(verbose)}", file=sys.stderr)
        return 1
    return report(params_file)


def side_by_side(params_file: Path, baseline: Path, overrides: dict, folder: Path) -> int:
    """Train the baseline and the distilled student at once, on half the threads each; 0 when both succeed."""
    threads = max(1, training_threads() // 2)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "03_distill_baseline.log"
    print(f"distil: the baseline and the distilled student train side by side, {threads} thread(s) each; the "
          f"baseline's progress goes to {log}", flush=True)
    with open(log, "w") as written:
        other = subprocess.Popen(notebook_command("03_distill", folder / "03_distill_baseline.ipynb", baseline,
                                                  overrides), stdout=written, stderr=subprocess.STDOUT, env=env)
        try:
            distilled = subprocess.call(notebook_command("03_distill", folder / "03_distill.ipynb", params_file,
                                                         overrides), env=env)
        finally:
            code = other.wait()
    if code:
        print(f"\nthe baseline ({baseline}) failed; the end of {log}:\n{tail(log)}", file=sys.stderr)
        return code
    return distilled
