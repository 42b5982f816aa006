"""The trainer's checkpoints and records written whole, so a kill at any moment leaves a run resumable or finished.

Ultralytics writes ``last.pt`` and ``best.pt`` in place every epoch (``Path.write_bytes``), appends to
``results.csv`` in place, and strips the optimizer from both checkpoints in place at the end: a kill in that
fraction of a second left a 0-byte ``best.pt``, or a run that was neither resumable nor finished. Here each of
those writes goes through `distil.atomic` (a temporary file beside it, flushed, renamed over it): a reader sees
the old file or the new one.

- `WholeFilePath`: the paths Ultralytics' ``save_model`` writes to (``trainer.last``, ``trainer.best``).
- `strip_whole`: Ultralytics' ``strip_optimizer``, into a temporary file renamed over the checkpoint.
- `append_row`: one ``results.csv`` row, the file rewritten whole.
- `WholeFileCheckpoints`: a trainer mixin that makes every one of these writes whole (the student's trainers and
  the teacher's stages use it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from unittest import mock

import ultralytics.engine.trainer as ultralytics_trainer
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import strip_optimizer

import distil.atomic as atomic
from distil.engine.quiet import FREEZING, SETTINGS_LINE, dropped


class WholeFilePath(type(Path())):
    """A path whose ``write_bytes`` / ``write_text`` replace the file whole (`distil.atomic`)."""

    def write_bytes(self, data) -> int:
        atomic.write_bytes(self, bytes(data))
        return len(data)

    def write_text(self, data: str, encoding: str | None = None, errors: str | None = None,
                   newline: str | None = None) -> int:
        atomic.write_bytes(self, data.encode(encoding or "utf-8", errors or "strict"))
        return len(data)


def strip_whole(path: Path, updates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Strip the optimizer from a checkpoint (Ultralytics' ``strip_optimizer``) without ever leaving half of one."""
    with atomic.replacing(path) as tmp:
        return strip_optimizer(path, s=str(tmp), updates=updates)


def append_row(csv: Path, header: str, row: str) -> None:
    """Append one line to a CSV (with its header if the file is new), rewriting it whole."""
    before = csv.read_text(encoding="utf-8") if csv.exists() else header
    atomic.write_text(csv, before + row)


class WholeFileCheckpoints:
    """Mixin for an Ultralytics trainer: its checkpoints, ``results.csv`` rows and final strip written whole."""

    def __init__(self, *args, **kwargs) -> None:
        with dropped(SETTINGS_LINE, anywhere=True) as settings_line:  # args.yaml holds every setting
            super().__init__(*args, **kwargs)
        if settings_line.count:
            LOGGER.info(f"distil: every setting of this run is in {self.save_dir / 'args.yaml'}")
        self.wdir = WholeFilePath(self.wdir)
        self.last, self.best = WholeFilePath(self.last), WholeFilePath(self.best)

    def _setup_train(self, *args, **kwargs):
        """Set training up as Ultralytics does, with one line for what it freezes instead of one per tensor."""
        with dropped(FREEZING) as frozen:
            result = super()._setup_train(*args, **kwargs)
        if frozen.count:
            LOGGER.info(f"distil: {frozen.count} parameter tensors frozen (freeze: {self.args.freeze}, and the "
                        "distribution layer Ultralytics never trains)")
        return result

    def save_metrics(self, metrics: dict) -> None:
        """Ultralytics' row of ``results.csv`` (same columns and format), the file rewritten whole."""
        keys, values = list(metrics), list(metrics.values())
        n = len(metrics) + 2
        header = ("%s," * n % ("epoch", "time", *keys)).rstrip(",") + "\n"
        row = ("%.6g," * n % (self.epoch + 1, time.time() - self.train_time_start, *values)).rstrip(",") + "\n"
        append_row(self.csv, header, row)

    def final_eval(self) -> None:
        """Ultralytics' final evaluation, its two in-place ``strip_optimizer`` calls made whole (`strip_whole`)."""
        with mock.patch.object(ultralytics_trainer, "strip_optimizer", strip_whole):
            super().final_eval()


def whole_file_trainer(model) -> type:
    """The trainer an Ultralytics model trains with by default (``RTDETRTrainer``, ``DetectionTrainer``, ...), with its
    checkpoints and records written whole (the teacher's stages train with it)."""
    trainer = model.task_map[model.task]["trainer"]
    return type(f"WholeFile{trainer.__name__}", (WholeFileCheckpoints, trainer), {"__module__": __name__})
