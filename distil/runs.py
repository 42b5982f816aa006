"""Run folders: one object owns each (`RunFolder`): its lock, its state, the one decision what to do with it, and
every change distil makes to it. This is where "nothing lost" is made true.

What is guaranteed:

- **One trainer per folder.** A process training in a run folder holds its lock (``runs/.locks/<name>.lock``,
  a `filelock` lock the system releases if the process dies); a second process is refused, told who holds it.
- **Whole files.** Every file distil writes, and the checkpoints and ``results.csv`` rows Ultralytics writes
  through distil's trainers, is written to a temporary file and renamed into place (`distil.atomic`,
  `distil.engine.whole_files`): a reader sees the old file or the new one, never half of one.
- **Nothing deleted.** What distil would replace (``rebuild: true``, a folder a run left without any usable
  checkpoint) is moved to ``outputs/trash/<time>/`` with its path under ``outputs/`` kept, and the move is logged
  with its size. Deleting ``outputs/trash`` is the user's call.

A run folder is in one of five states, read off what is in it:

- ``absent``: no folder, or an empty one;
- ``failed``: a folder without a checkpoint anyone can use (a run that stopped in its first epoch); the next run
  of it moves it to the trash and starts again;
- ``interrupted``: ``weights/last.pt`` still holds its optimizer state; ``resume: true`` continues it (a run killed
  after its last epoch, before its optimizer was stripped, has nothing left to train: it is finished here, as
  Ultralytics would have finished it, without asking);
- ``damaged``: ``last.pt`` is missing or cannot be read, while ``best.pt`` still holds optimizer state (a kill while
  an older version wrote ``last.pt`` in place, or inside `resume_from_best`); ``resume: true`` continues from
  ``best.pt``, training the epochs after it again;
- ``finished``: the optimizer was stripped at the end of training (from ``last.pt``, or from ``best.pt`` where the
  user removed ``last.pt``): a finished run is finished whatever happened to ``last.pt``.

A finished run of the same params is reused; one made with other params, or an interrupted one, is never
replaced without ``rebuild: true``. "The same params" includes the teacher's weights: the run records, when it
starts, a fingerprint of the checkpoint that teaches it (``teacher: auto`` names a file that ``00_teacher`` may
replace), and neither reuse nor resume goes on with another teacher.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout
from ultralytics.utils import LOGGER

import distil.atomic as atomic
from distil.defaults import ultralytics_keys
from distil.engine.checkpoints import read_checkpoint
from distil.engine.losses import LOSSES, loss_arguments
from distil.engine.periodic_validation import keep_results_rows
from distil.engine.settings import SETTINGS, canonicalize
from distil.engine.whole_files import strip_whole
from distil.params import SET_BY_DISTIL, DistillParams, ParamsError, renamed
from distil.paths import resolve_path

# how and where a run was made, not what it is (run: the folder it is in; run_cache: where a copy came from;
# val_period: how often it was validated, which trains the same student and only picks best.pt among fewer epochs)
VOLATILE = {"rebuild", "resume", "plots", "workers", "device", "samples", "outputs", "run", "run_cache", "val_period",
            "verbose", "save_period"}
STARTED = "started.json"  # written when training starts: the params and the teacher it started with
# keys whose values are files: compared as the files they name (a shipped record's paths are relative to the project)
PATH_KEYS = ("data", "teacher", "student", "enhance", "distill_unlabeled", "distill_det_labels")
NOT_PATHS = {"", "auto", "none", "demo", "default"}


class RunBusyError(ParamsError):
    """Another process holds the folder's lock; the message names it and the way out."""


def size_text(path: Path) -> str:
    """The size of a file or folder, in words."""
    total = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    for unit in ("bytes", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "bytes" else f"{total:.1f} {unit}"
        total /= 1024
    return ""


def set_aside(path: Path, outputs: Path, why: str) -> Path | None:
    """Move ``path`` (a file or folder) to ``outputs/trash/<time>/``, keeping its place under ``outputs``; log it.

    Returns where it went (None when there was nothing there).
    """
    if not path.exists():
        return None
    try:
        place = path.resolve().relative_to(outputs.resolve())
    except ValueError:
        place = Path(path.name)
    destination = outputs / "trash" / time.strftime("%Y%m%d-%H%M%S") / place
    while destination.exists():  # twice in one second
        destination = destination.with_name(destination.name + "+")
    destination.parent.mkdir(parents=True, exist_ok=True)
    size = size_text(path)
    shutil.move(str(path), str(destination))
    LOGGER.warning(f"distil: moved {path} ({size}) to {destination}: {why}. Nothing is deleted: remove "
                   f"{outputs / 'trash'} yourself when you no longer need what it holds")
    return destination


class FolderLock:
    """The lock of a folder distil trains in: held while one process works there, refused to any other."""

    def __init__(self, folder: Path) -> None:
        locks = folder.parent / ".locks"
        self.lock = FileLock(locks / f"{folder.name}.lock")
        self.holder = locks / f"{folder.name}.holder.json"
        self.folder = folder

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block.

        Raises:
            RunBusyError: Another process holds it (the message says which, since when, doing what).
        """
        self.holder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise RunBusyError(self.busy_message()) from None
        try:
            atomic.write_json(self.holder, {"pid": os.getpid(), "host": socket.gethostname(),
                                            "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)})
            yield
        finally:
            self.holder.unlink(missing_ok=True)
            self.lock.release()

    def busy_message(self) -> str:
        try:
            holder = json.loads(self.holder.read_text())
            who = (f"process {holder['pid']} on {holder['host']}, since {holder['since']} ({holder['command'][:200]})")
        except (OSError, ValueError, KeyError):
            who = "another process"
        return (f"{self.folder} is in use by {who}: two trainings in one folder would overwrite each other. Wait "
                "for it to end, or give this one another name (run: <new name>, or name: <new name>)")


class RunFolder:
    """A run folder under ``outputs/runs`` and everything distil does to it.

    Args:
        path: The run's folder.
        outputs: The outputs root (where ``trash/`` is).
    """

    def __init__(self, path: Path, outputs: Path) -> None:
        self.path, self.outputs = Path(path), Path(outputs)
        self.weights = self.path / "weights"
        self.lock = FolderLock(self.path)

    # state -----------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``absent``, ``failed``, ``interrupted``, ``damaged`` or ``finished`` (see the module docstring)."""
        if not self.path.exists() or not any(self.path.iterdir()):
            return "absent"
        last = read_checkpoint(self.weights / "last.pt")
        if last is not None:
            return "interrupted" if last.get("optimizer") else "finished"
        best = read_checkpoint(self.weights / "best.pt")
        if best is None:
            return "failed"
        return "damaged" if best.get("optimizer") else "finished"

    @property
    def epochs_done(self) -> int:
        """Epochs in ``results.csv`` (0 when there is none)."""
        csv = self.path / "results.csv"
        return max(0, len(csv.read_text().strip().splitlines()) - 1) if csv.exists() else 0

    def recorded(self, name: str) -> dict[str, Any]:
        """A JSON record of the run (``manifest.json``, ``started.json``), or {} where there is none."""
        path = self.path / name
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def recorded_params(self) -> dict[str, Any] | None:
        """The params a finished run was made with: its manifest's, or None when it has none."""
        return self.recorded("manifest.json").get("params")

    # the decision ----------------------------------------------------------------------------
    def decide(self, params: DistillParams, overrides: dict[str, Any]) -> str:
        """What training does with this folder: ``train``, ``resume`` or ``reuse`` (call it holding the lock).

        Args:
            params: The run's params.
            overrides: The Ultralytics arguments the run would be trained with (to compare with a run that has no
                manifest because it was finished through Ultralytics' own resume).

        Raises:
            ParamsError: Resuming what cannot be resumed, a run that training would replace, or another teacher.
        """
        state = self.state
        if params.rebuild and state != "absent":
            set_aside(self.path, self.outputs, "rebuild: true trains this run again from the start")
            return "train"
        if state == "failed":
            set_aside(self.path, self.outputs, "it holds no checkpoint to resume or reuse, so the run starts again")
            return "train"
        if state == "absent":
            if params.resume:
                raise ParamsError(f"resume: true, but {self.path} holds no run: set resume: false to start it")
            return "train"
        if state == "interrupted" and self.trained_to_its_end():
            self.finish_stripping()
            state = "finished"
        if state in ("damaged", "interrupted"):
            if not params.resume:
                raise ParamsError(self.refusal(state))
            self.check_teacher(params, "resume")
            if state == "damaged":
                self.resume_from_best()
            return "resume"
        if params.resume:
            raise ParamsError(
                f"{self.path} is finished ({self.epochs_done} epochs); resume continues interrupted runs only. To "
                f"train longer, start a new run from its weights (student: {self.weights / 'best.pt'}, run: "
                f"{self.path.name}-more), or set rebuild: true with more epochs to train it again from the start")
        recorded = self.recorded_params
        differing = differing_params(recorded, params) if recorded is not None else self.differing_args(overrides)
        if differing:
            raise ParamsError(f"{self.path} holds a run made with other params ({', '.join(differing)}): set "
                              "run: <new name> to keep both, or rebuild: true to replace it (the old one goes to "
                              f"{self.outputs / 'trash'})")
        self.check_teacher(params, "reuse")
        return "reuse"

    def trained_to_its_end(self) -> bool:
        """Whether ``last.pt`` holds the last epoch of the run's schedule (killed before Ultralytics stripped it)."""
        last = read_checkpoint(self.weights / "last.pt") or {}
        epochs = (last.get("train_args") or {}).get("epochs")
        return bool(epochs) and int(last.get("epoch", -1)) + 1 >= int(epochs)

    def finish_stripping(self) -> None:
        """Do what Ultralytics' end of training did not get to: make ``best.pt`` the last epoch where that one was the
        best, then strip the optimizer from both checkpoints (each written whole)."""
        last = read_checkpoint(self.weights / "last.pt")
        fitness = (last.get("train_metrics") or {}).get("fitness")
        if fitness is not None and last.get("best_fitness") == fitness:  # the last epoch was the best one
            atomic.copy_file(self.weights / "last.pt", self.weights / "best.pt")
        stripped = strip_whole(self.weights / "last.pt")
        if (self.weights / "best.pt").exists():
            strip_whole(self.weights / "best.pt", updates={"train_results": stripped.get("train_results")})
        LOGGER.warning(f"distil: {self.path} had trained its last epoch when it was stopped, before its checkpoints "
                       "were finished; finished them now")

    def refusal(self, state: str) -> str:
        if state == "damaged":
            return (f"{self.path} holds an interrupted run whose weights/last.pt is missing or damaged (the process "
                    "was killed while it was written): set resume: true to continue from its best.pt (the epochs "
                    "after that one are trained again), or rebuild: true to start it again")
        return (f"{self.path} holds an interrupted run (after {self.epochs_done} epochs): set resume: true to continue "
                "it, rebuild: true to start it again, or run: <new name> to keep it")

    def check_teacher(self, params: DistillParams, doing: str) -> None:
        """Refuse to reuse or resume a run whose teacher checkpoint has been replaced since it started.

        Raises:
            ParamsError: The recorded fingerprint differs from the teacher's file now (both are named).
        """
        recorded = self.recorded("manifest.json" if doing == "reuse" else STARTED).get("teacher_sha1")
        now = teacher_fingerprint(params)
        if recorded and now and recorded != now:
            record = self.path / ("manifest.json" if doing == "reuse" else STARTED)
            raise ParamsError(f"{self.path} was taught by another teacher: {record} records sha1 {recorded[:12]}, and "
                              f"{params.teacher_path} now holds sha1 {now[:12]} (replaced since). Set run: <new name> "
                              f"to train with this teacher and keep both, or rebuild: true to {doing} no more and "
                              "train it again")

    def differing_args(self, overrides: dict[str, Any]) -> list[str]:
        """The Ultralytics arguments of ``overrides`` that ``args.yaml`` records otherwise (a run without manifest)."""
        path = self.path / "args.yaml"
        args = yaml.safe_load(path.read_text()) if path.exists() else {}
        # where the run was written and on what, and what Ultralytics itself rewrites ('optimizer: auto' picks both)
        ignored = VOLATILE | {"project", "name", "exist_ok", "data", "optimizer", "lr0"}
        return sorted(k for k, v in overrides.items() if k not in ignored and k in args and args[k] != v)

    def resume_from_best(self) -> None:
        """Make ``best.pt`` the checkpoint a damaged run resumes from, and say so.

        What it replaces is moved, not deleted: the damaged ``last.pt`` and the full ``results.csv`` go to
        ``damaged/<when>/``; ``results.csv`` keeps the rows of the epochs ``best.pt`` has seen, so the resumed run
        appends after them. A kill at any point of this leaves the run damaged, and so resumable, again.

        Raises:
            ParamsError: ``best.pt`` cannot resume either (missing, damaged, or without optimizer state).
        """
        best = read_checkpoint(self.weights / "best.pt")
        if not best or not best.get("optimizer"):
            raise ParamsError(f"{self.weights / 'last.pt'} is damaged and {self.weights / 'best.pt'} cannot resume the "
                              "run either: set rebuild: true to train it again")
        kept = int(best["epoch"]) + 1
        aside = self.path / "damaged" / time.strftime("%Y%m%d-%H%M%S")
        aside.mkdir(parents=True, exist_ok=True)
        if (self.weights / "last.pt").exists():
            shutil.move(self.weights / "last.pt", aside / "last.pt")
        csv = self.path / "results.csv"
        if csv.exists():
            atomic.copy_file(csv, aside / "results.csv")
            keep_results_rows(csv, kept)
        atomic.copy_file(self.weights / "best.pt", self.weights / "last.pt")
        LOGGER.warning(f"distil: {self.weights / 'last.pt'} was damaged (cut short while written); resuming from "
                       f"best.pt after epoch {kept}, the epochs after it are trained again; the damaged files are in "
                       f"{aside}")

    # records ---------------------------------------------------------------------------------
    def record_start(self, params: DistillParams) -> None:
        """What the run starts with (its params and its teacher's fingerprint), for a later resume to check."""
        atomic.write_json(self.path / STARTED, {"params": params.as_dict(), "teacher": str(params.teacher_path),
                                                "teacher_sha1": teacher_fingerprint(params),
                                                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def run_state(run_dir: Path) -> str:
    """The state of a run folder (see `RunFolder.state`)."""
    return RunFolder(run_dir, run_dir.parent).state


def recorded_params(run_dir: Path) -> dict[str, Any] | None:
    """The params a finished run was made with (see `RunFolder.recorded_params`)."""
    return RunFolder(run_dir, run_dir.parent).recorded_params


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    """Params under their current keys with every default filled in (Ultralytics' for its keys), the loss's own
    argument defaults too, so a run recorded before a key was renamed or added compares equal to the same run asked
    for today."""
    canonical, _ = canonicalize(renamed(values))
    if "distill_det_targets" not in canonical and canonical.get("distill_det_mode") == "offline":
        canonical["distill_det_targets"] = "hard"  # offline targets counted fully before they carried scores
    trains = {k: spec.default for k, spec in ultralytics_keys().items() if k not in SET_BY_DISTIL}
    full = {**trains, **DistillParams().as_dict(),
            **{k: v for k, v in canonical.items() if k in DistillParams.known_keys()}}
    full["time"] = full.get("time") or None  # 0 hours (distil's old default) is no limit, as None is
    for key in PATH_KEYS:
        if isinstance(full[key], str) and full[key] not in NOT_PATHS:
            full[key] = str(resolve_path(full[key]))
    if full["distill_loss"] in LOSSES:
        full["distill_loss_args"] = {**loss_arguments(full["distill_loss"]), **full["distill_loss_args"]}
    return full


def differing_params(recorded: dict[str, Any], params: DistillParams) -> list[str]:
    """The keys whose value ``recorded`` (a run's manifest params) has otherwise than ``params``."""
    current, before = comparable(params.as_dict()), comparable(recorded)
    ignored = set(VOLATILE)
    if current["teacher"] == before.get("teacher") == "none":  # a student alone: no distillation setting trains it
        ignored |= set(SETTINGS)
    return sorted(k for k in current.keys() | before.keys() if k not in ignored and before.get(k) != current.get(k))


def teacher_fingerprint(params: DistillParams) -> str | None:
    """A hash of the teacher checkpoint's bytes, where a teacher teaches (None for the student alone)."""
    if not params.distilling or not params.teacher_path.is_file():
        return None
    digest = hashlib.sha1()
    with open(params.teacher_path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
