"""Finished runs shipped in the repository (``make baseline``), copied in instead of trained (``run_cache``).

The demo's converged baseline takes longer to train than the rest of ``make demo`` (docs/demo.md). Like the
teacher, it is trained once (``make baseline``), shipped with its records (``assets/demo-baseline``: ``best.pt``,
``results.csv``, ``args.yaml``, and ``manifest.json`` with the params it was made with) and copied into
``outputs/runs`` by a run of the same params instead of being trained again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import yaml
from ultralytics.utils import LOGGER

import distil.atomic as atomic
from distil.engine.checkpoints import load_checkpoint_dict
from distil.params import DistillParams, ParamsError
from distil.paths import project_root, resolve_path
from distil.portable import portable
from distil.runs import RunFolder, differing_params, set_aside

SHIPPED_FILES = ("weights/best.pt", "results.csv", "args.yaml", "manifest.json", "distill.json")


def ship_run(run_dir: Path, destination: Path) -> Path:
    """Copy a finished run's best weights and records to ``destination``, replacing what was shipped there.

    Only ``best.pt`` of the weights ships: evaluation uses it, and ``last.pt`` would double the size. What ships is
    portable (`distil.portable`: no credentials, paths relative to the repository). An earlier shipped run there is
    moved to ``outputs/trash``. The manifest records where and when the run was shipped from.

    Raises:
        ParamsError: ``run_dir`` holds no finished run with a manifest.
    """
    folder = RunFolder(run_dir, run_dir.parent.parent)
    if folder.state != "finished" or folder.recorded_params is None:
        raise ParamsError(f"{run_dir} holds no finished run with a manifest.json (state: {folder.state}): "
                          "train it to the end with 03_distill (or distil.train) first")
    set_aside(destination, folder.outputs, f"{destination} is replaced by the run shipped from {run_dir}")
    copy_files(run_dir, destination, make_portable=True)
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest["shipped"] = {"from": os.path.relpath(run_dir, project_root()), "epochs": folder.epochs_done,
                           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic.write_json(destination / "manifest.json", portable(manifest, project_root()))
    return destination


def copy_shipped_run(params: DistillParams, run_dir: Path) -> None:
    """Copy the run ``params.run_cache`` ships into the absent ``run_dir``, if it was made with these params.

    Its ``best.pt`` also stands in for ``last.pt`` (which did not ship), so the run reads as finished.

    Raises:
        ParamsError: The shipped run was made with other params; nothing is copied.
    """
    shipped = resolve_path(params.run_cache)
    differing = differing_params(RunFolder(shipped, shipped.parent).recorded_params or {}, params)
    if differing:
        raise ParamsError(f"run_cache={params.run_cache!r} holds a run made with other params "
                          f"({', '.join(differing)}): set run_cache: '' to train this run here")
    copy_files(shipped, run_dir)
    atomic.copy_file(run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt")
    LOGGER.info(f"distil: {run_dir} copied from {shipped} (this run, finished; run_cache: '' trains it here)")


def copy_files(source: Path, destination: Path, make_portable: bool = False) -> None:
    """The files of a shipped run that ``source`` has, to the same places under ``destination``, each whole; with
    ``make_portable``, without credentials or machine paths (`portable_file`)."""
    for name in SHIPPED_FILES:
        if (source / name).exists():
            if make_portable:
                portable_file(source / name, destination / name)
            else:
                atomic.copy_file(source / name, destination / name)


def portable_file(source: Path, destination: Path) -> None:
    """A record or checkpoint copied without credentials or absolute paths (the run's own files are left as they
    are): JSON and YAML records value by value, a checkpoint's ``train_args``, ``git`` and model ``args``."""
    root = project_root()
    if source.suffix == ".json":
        atomic.write_json(destination, portable(json.loads(source.read_text()), root))
    elif source.suffix == ".yaml":
        atomic.write_text(destination, yaml.safe_dump(portable(yaml.safe_load(source.read_text()), root),
                                                      sort_keys=False))
    elif source.suffix == ".pt":
        checkpoint = load_checkpoint_dict(source)
        for key in ("train_args", "git"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint[key] = portable(checkpoint[key], root)
        for key in ("model", "ema"):
            model = checkpoint.get(key)
            if model is not None and isinstance(getattr(model, "args", None), dict):
                model.args = portable(model.args, root)
        with atomic.replacing(destination) as tmp:
            torch.save(checkpoint, tmp)
    else:
        atomic.copy_file(source, destination)
