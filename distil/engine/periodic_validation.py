"""Validating every N-th epoch instead of every one (``val_period``), and the student's trainer that does it.

On a small task on a CPU, validation is a large share of an epoch (the demo: 100 validation images against
7 steps of 16 images, 1.3 of 4.4 seconds), while the best checkpoint moves little from one epoch to the
next. With ``val_period: N`` the trainer validates the first epoch, every N-th, and each of the last N
(where the best epoch of a decaying schedule usually is), plus whenever Ultralytics' early stopping might
stop. Checkpoints are written only after a validation, so ``best.pt`` is always an epoch that was
validated, and an interrupted run resumes from the last validated epoch (up to N-1 epochs are trained
again, and their rows in ``results.csv`` are replaced, not repeated). The epochs in between have empty
(NaN) validation columns in ``results.csv``. ``val_period: 1`` (the default) is Ultralytics' own behaviour.
"""

from __future__ import annotations

import math
from pathlib import Path

from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG

import distil.atomic as atomic
from distil.engine.whole_files import WholeFileCheckpoints
from distil.enhancement.dataset import EnhancedDetectionTrainer

VAL_PERIOD_KEY = {"val_period": 1}


def check_val_period(value) -> int:
    """``value`` as a whole number >= 1, or a ValueError that says what it means."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        raise ValueError(f"val_period={value!r} must be a whole number >= 1: validate every N-th epoch "
                         "(1: every epoch)")
    return int(value)


def validated_epoch(epoch: int, epochs: int, period: int) -> bool:
    """Whether the 0-based ``epoch`` of ``epochs`` is validated: the first, every ``period``-th, the last ``period``."""
    number = epoch + 1
    return period <= 1 or number == 1 or number % period == 0 or number > epochs - period


def keep_results_rows(csv: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows of a ``results.csv`` (a run resumes after them)."""
    header, *rows = csv.read_text().splitlines()
    atomic.write_text(csv, "\n".join([header, *rows[:epochs]]) + "\n")


class StudentTrainer(WholeFileCheckpoints, EnhancedDetectionTrainer):
    """The student's trainer without a teacher (the baseline): enhancement, validation (with checkpoints) only on the
    epochs `validated_epoch` names, and every checkpoint and record written whole (`whole_files`)."""

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None):
        """Check ``val_period`` first, so a bad value fails before any data is read (a resumed run's comes from
        its checkpoint, so it is checked again once that is read)."""
        check_val_period(get_cfg(cfg, overrides).val_period)
        super().__init__(cfg, overrides, _callbacks)
        self.val_period = check_val_period(self.args.val_period)

    def validate(self):
        """Ultralytics' validation on a validated epoch; otherwise NaN metrics and no fitness (nothing is best)."""
        if validated_epoch(self.epoch, self.epochs, self.val_period) or self.stopper.possible_stop or self.stop:
            return super().validate()
        return {key: math.nan for key in self.metrics}, None

    def save_model(self):
        """Write checkpoints after a validation only: a skipped epoch has no fitness to rank it by."""
        if self.fitness is None:
            return False
        return super().save_model()

    def resume_training(self, ckpt):
        """Resume as Ultralytics does, logging from the checkpoint's epoch on: the epochs after it were logged
        but not saved, and are trained again."""
        super().resume_training(ckpt)
        if self.resume and ckpt is not None and self.csv.exists():
            keep_results_rows(self.csv, self.start_epoch)
