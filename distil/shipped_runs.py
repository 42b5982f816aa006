"""Finished runs shipped in the repository (``make baseline``), copied in instead of trained (``run_cache``).

The demo's converged baseline takes about 80 minutes on 2 CPU cores, as long as the rest of ``make demo``.
Like the teacher, it is trained once (``make baseline``), shipped with its records (``assets/demo-baseline``:
``best.pt``, ``results.csv``, ``args.yaml``, and ``manifest.json`` with the params it was made with) and
copied into ``outputs/runs`` by a run of the same params instead of being trained again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ultralytics.utils import LOGGER

from distil.params import DistillParams, ParamsError
from distil.paths import project_root, resolve_path
from distil.runs import differing_params, epochs_done, recorded_params, run_state

SHIPPED_FILES = ("weights/best.pt", "results.csv", "args.yaml", "manifest.json", "distill.json")


def ship_run(run_dir: Path, destination: Path) -> Path:
    """Copy a finished run's best weights and records to ``destination``, replacing what was shipped there.

    Only ``best.pt`` of the weights ships: evaluation uses it, and ``last.pt`` would double the size.
    The manifest records where and when the run was shipped from.

    Raises:
        ParamsError: ``run_dir`` holds no finished run with a manifest.
    """
    if run_state(run_dir) != "finished" or recorded_params(run_dir) is None:
        raise ParamsError(f"{run_dir} holds no finished run with a manifest.json (state: {run_state(run_dir)}): "
                          "train it to the end with 03_distill (or distil.train) first")
    shutil.rmtree(destination, ignore_errors=True)  # replaced whole, never mixed with an older shipped run
    copy_files(run_dir, destination)
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest["shipped"] = {"from": os.path.relpath(run_dir, project_root()), "epochs": epochs_done(run_dir),
                           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (destination / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return destination


def copy_shipped_run(params: DistillParams, run_dir: Path) -> None:
    """Copy the run ``params.run_cache`` ships into the absent ``run_dir``, if it was made with these params.

    Its ``best.pt`` also stands in for ``last.pt`` (which did not ship), so the run reads as finished.

    Raises:
        ParamsError: The shipped run was made with other params; nothing is copied.
    """
    shipped = resolve_path(params.run_cache)
    differing = differing_params(recorded_params(shipped) or {}, params)
    if differing:
        raise ParamsError(f"run_cache={params.run_cache!r} holds a run made with other params "
                          f"({', '.join(differing)}): set run_cache: '' to train this run here")
    copy_files(shipped, run_dir)
    shutil.copyfile(run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt")
    LOGGER.info(f"distil: {run_dir} copied from {shipped} (this run, finished; run_cache: '' trains it here)")


def copy_files(source: Path, destination: Path) -> None:
    """The files of a shipped run that ``source`` has, to the same places under ``destination``."""
    for name in SHIPPED_FILES:
        if (source / name).exists():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, destination / name)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["ship"] and len(sys.argv) == 4:
        print(f"shipped {ship_run(resolve_path(sys.argv[2]), resolve_path(sys.argv[3]))}")
    else:
        raise SystemExit("usage: python -m distil.shipped_runs ship <run folder> <destination folder>")
