"""Run folders: which state a run is in, and what `distil.train` does about it.

A run folder under ``outputs/runs`` is in one of five states, read off what Ultralytics left there:

- ``absent``: no folder, or an empty one;
- ``failed``: the folder exists but holds no checkpoint (the run stopped before its first epoch
  ended: a bad pairing, an interrupt, a dataset error); it is simply started again;
- ``interrupted``: ``weights/last.pt`` still holds its optimizer state; ``resume: true`` continues it;
- ``damaged``: ``weights/last.pt`` cannot be read: the process was killed while Ultralytics wrote it
  (it writes last.pt in place every epoch). ``resume: true`` continues from ``best.pt``, which Ultralytics
  writes with the same optimizer state at the best epoch; the epochs after that one are trained again;
- ``finished``: Ultralytics stripped the optimizer from ``last.pt`` when training ended, however the
  run was started or resumed (``distil.train``, or ``YOLO(last.pt).train(..., resume=True)``).

A finished run of the same params is reused; one made with other params, or an interrupted one, is
never overwritten without ``rebuild: true``. "The same params" includes the teacher's weights: a run's
manifest keeps a fingerprint of the checkpoint that taught it, since ``teacher: auto`` names a file that
``00_teacher`` may replace (a retrained or refined teacher) under the same path.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml
from ultralytics.utils import LOGGER
from ultralytics.utils.patches import torch_load

from distil.engine.losses import LOSSES, loss_arguments
from distil.engine.periodic_validation import keep_results_rows
from distil.engine.settings import SETTINGS, canonicalize
from distil.params import DistillParams, ParamsError

# how and where a run was made, not what it is (run: the folder it is in; run_cache: where a copy came from;
# val_period: how often it was validated, which trains the same student and only picks best.pt among fewer epochs)
VOLATILE = {"rebuild", "resume", "plots", "workers", "device", "samples", "outputs", "run", "run_cache", "val_period"}


def run_state(run_dir: Path) -> str:
    """``absent``, ``failed``, ``interrupted`` or ``finished`` (see the module docstring)."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "absent"
    last = run_dir / "weights" / "last.pt"
    if not last.exists():
        return "failed"
    checkpoint = read_checkpoint(last)
    if checkpoint is None:
        return "damaged"
    return "interrupted" if checkpoint.get("optimizer") else "finished"


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None where it is missing or cut short (a kill while it was written)."""
    try:
        return torch_load(path, map_location="cpu", weights_only=False)
    except (FileNotFoundError, EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile):
        return None


def resume_from_best(run_dir: Path) -> None:
    """Make ``best.pt`` the checkpoint a damaged run resumes from, and say so.

    The damaged ``last.pt`` and the full ``results.csv`` are moved to ``damaged/<when>/`` (nothing is deleted,
    however often it happens);
    ``results.csv`` keeps the rows of the epochs ``best.pt`` has seen, so the resumed run appends after them.

    Raises:
        ParamsError: ``best.pt`` cannot resume either (missing, damaged, or without optimizer state).
    """
    weights = run_dir / "weights"
    best = read_checkpoint(weights / "best.pt")
    if not best or not best.get("optimizer"):
        raise ParamsError(f"{weights / 'last.pt'} is damaged and {weights / 'best.pt'} cannot resume the run either: "
                          "set rebuild: true to train it again")
    kept = int(best["epoch"]) + 1
    aside = run_dir / "damaged" / time.strftime("%Y%m%d-%H%M%S")
    aside.mkdir(parents=True, exist_ok=True)
    shutil.move(weights / "last.pt", aside / "last.pt")
    csv = run_dir / "results.csv"
    if csv.exists():
        shutil.copy2(csv, aside / "results.csv")
        keep_results_rows(csv, kept)
    shutil.copy2(weights / "best.pt", weights / "last.pt")
    LOGGER.warning(f"distil: {weights / 'last.pt'} was damaged (cut short while written); resuming from best.pt "
                   f"after epoch {kept}, the epochs after it are trained again; the damaged files are in {aside}")


def epochs_done(run_dir: Path) -> int:
    """Epochs in ``results.csv`` (0 when there is none)."""
    csv = run_dir / "results.csv"
    return max(0, len(csv.read_text().strip().splitlines()) - 1) if csv.exists() else 0


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    """Params under their current keys with every default filled in, the loss's own argument defaults too,
    so a run recorded before a key was renamed or added compares equal to the same run asked for today."""
    canonical, _ = canonicalize(values)
    if "distill_det_targets" not in canonical and canonical.get("distill_det_mode") == "offline":
        canonical["distill_det_targets"] = "hard"  # offline targets counted fully before they carried scores
    full = {**DistillParams().as_dict(), **{k: v for k, v in canonical.items() if k in DistillParams.known_keys()}}
    if full["distill_loss"] in LOSSES:
        full["distill_loss_args"] = {**loss_arguments(full["distill_loss"]), **full["distill_loss_args"]}
    return full


def recorded_params(run_dir: Path) -> dict[str, Any] | None:
    """The params a finished run was made with: its manifest's, or None when it has none."""
    manifest = run_dir / "manifest.json"
    return json.loads(manifest.read_text()).get("params") if manifest.exists() else None


def differing_params(recorded: dict[str, Any], params: DistillParams) -> list[str]:
    """The keys whose value ``recorded`` (a run's manifest params) has otherwise than ``params``."""
    current, before = comparable(params.as_dict()), comparable(recorded)
    ignored = set(VOLATILE)
    if current["teacher"] == before.get("teacher") == "none":  # a student alone: no distillation setting trains it
        ignored |= set(SETTINGS)
    return sorted(k for k, v in current.items() if k not in ignored and before.get(k) != v)


def differing_args(run_dir: Path, overrides: dict[str, Any]) -> list[str]:
    """The Ultralytics arguments of ``overrides`` that ``args.yaml`` records otherwise (a run without manifest)."""
    args = yaml.safe_load((run_dir / "args.yaml").read_text()) if (run_dir / "args.yaml").exists() else {}
    # where the run was written and on what, and what Ultralytics itself rewrites ('optimizer: auto' picks both)
    ignored = {"project", "name", "exist_ok", "device", "workers", "plots", "data", "optimizer", "lr0", "val_period"}
    return sorted(k for k, v in overrides.items() if k not in ignored and k in args and args[k] != v)


def prepare_run_dir(run_dir: Path, params: DistillParams, overrides: dict[str, Any]) -> str:
    """Decide what training does with ``run_dir``: ``train``, ``resume`` or ``reuse``; clear it when it starts again.

    Args:
        run_dir: The run's folder.
        params: The run's params.
        overrides: The Ultralytics arguments the run would be trained with (to compare with a run that has
            no manifest because it was resumed through Ultralytics).

    Raises:
        ParamsError: Resuming what cannot be resumed, or a run that training would overwrite.
    """
    state = run_state(run_dir)
    if params.rebuild or state == "failed":
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh start: no results.csv rows of an earlier run remain
        return "train"
    if state == "absent":
        if params.resume:
            raise ParamsError(f"resume: true, but {run_dir} holds no run: set resume: false to start it")
        return "train"
    if state == "damaged":
        if params.resume:
            resume_from_best(run_dir)
            return "resume"
        raise ParamsError(f"{run_dir} holds an interrupted run whose weights/last.pt is damaged (the process was "
                          "killed while writing it): set resume: true to continue from its best.pt (the epochs "
                          "after that one are trained again), or rebuild: true to start it again")
    if state == "interrupted":
        if params.resume:
            return "resume"
        raise ParamsError(f"{run_dir} holds an interrupted run (after {epochs_done(run_dir)} epochs): set resume: true "
                          "to continue it, rebuild: true to start it again, or run: <new name> to keep it")
    if params.resume:
        raise ParamsError(
            f"{run_dir} is finished ({epochs_done(run_dir)} epochs); resume continues interrupted runs only. To train "
            f"longer, start a new run from its weights (student: {run_dir / 'weights' / 'best.pt'}, run: "
            f"{run_dir.name}-more), or set rebuild: true with more epochs to train it again from the start")
    recorded = recorded_params(run_dir)
    differing = differing_params(recorded, params) if recorded is not None else differing_args(run_dir, overrides)
    if differing:
        raise ParamsError(f"{run_dir} holds a run made with other params ({', '.join(differing)}): set "
                          "run: <new name> to keep both, or rebuild: true to replace it")
    taught_by = recorded_teacher(run_dir)
    if taught_by and taught_by != teacher_fingerprint(params):
        raise ParamsError(f"{run_dir} holds a run taught by another teacher: {params.teacher_path} has been replaced "
                          "since (its weights differ from the ones the run's manifest records): set run: <new name> "
                          "to keep both, or rebuild: true to train it again with this teacher")
    return "reuse"


def teacher_fingerprint(params: DistillParams) -> str | None:
    """A hash of the teacher checkpoint's bytes, where a teacher teaches (None for the student alone)."""
    if not params.distilling or not params.teacher_path.is_file():
        return None
    return hashlib.sha1(params.teacher_path.read_bytes()).hexdigest()


def recorded_teacher(run_dir: Path) -> str | None:
    """The fingerprint of the teacher that taught a finished run (None where its manifest predates it)."""
    manifest = run_dir / "manifest.json"
    return json.loads(manifest.read_text()).get("teacher_sha1") if manifest.exists() else None
