"""Checkpoints read safely: a ``.pt`` file is a pickle, and a pickle can run any code while it loads.

distil loads every checkpoint (teacher, student, the runs it resumes, the dashboard's models) with Ultralytics'
restricted loading (``ULTRALYTICS_SAFE_LOAD``: ``torch.load(weights_only=True)`` against an allow-list of the
Ultralytics and torch model classes, and model YAMLs parsed without ``eval``), set on by `distil.offline` before
Ultralytics is imported. distil's own classes, which its training checkpoints hold, join the allow-list here.
A checkpoint that references anything else is refused with the way out: ``DISTIL_TRUST_CHECKPOINTS=1`` in the
environment loads files as plain pickles again, for a file one trusts (one made with custom modules, say).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from distil.offline import TRUST_ENV, trusted_checkpoints


class UnsafeCheckpointError(TypeError):
    """A checkpoint holds something outside the known model classes; the message names the file and the way out."""


def distil_classes() -> list[type]:
    """The classes distil's own checkpoints hold (an interrupted distillation's ``last.pt``)."""
    from distil.engine import adapter, hooks, losses, model, pairing, settings, teacher_signals

    classes = [model.FeatureDistillationModel, adapter.FeatureAdapter, settings.DistillSettings, pairing.LevelPair,
               hooks.LayerInfo, hooks.FeatureTap, hooks.FeatureHook, teacher_signals.TeacherReader,
               *losses.LOSSES.values()]
    return [c for c in classes if isinstance(c, type)]


def renamed_classes() -> dict[str, type]:
    """Classes older checkpoints name otherwise: distil's own capture hook, before Ultralytics shipped the same."""
    from distil.engine.hooks import FeatureHook

    return {"distil.engine.hooks.CaptureHook": FeatureHook}


def allow_distil_classes(aliases: dict[str, str] | None = None) -> None:
    """Add distil's checkpoint classes to torch's list of what ``weights_only`` loading may build, also under the
    module paths of older versions (``aliases``: old module -> its module now), which older checkpoints name."""
    classes = distil_classes()
    entries: list = list(classes)
    for old, new in (aliases or {}).items():
        entries += [(c, f"{old}.{c.__name__}") for c in classes if c.__module__ == new]
    for name, cls in renamed_classes().items():  # and under the names older versions gave them
        module = name.rsplit(".", 1)[0]
        entries += [(cls, name)] + [(cls, f"{old}.{name.rsplit('.', 1)[1]}") for old, new in (aliases or {}).items()
                                    if new == module]
    torch.serialization.add_safe_globals(entries)


def load_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """A checkpoint's dict, loaded as Ultralytics loads it (restricted unless trusted).

    Raises:
        UnsafeCheckpointError: The file holds more than model classes (it could run code as it loads).
        TypeError: The file is empty, cut short or not a checkpoint (Ultralytics' own message).
    """
    from ultralytics.nn.tasks import torch_safe_load

    try:
        return torch_safe_load(str(path), safe_only=not trusted_checkpoints())[0]
    except TypeError as error:
        if "references types outside" in str(error):
            raise UnsafeCheckpointError(
                f"{path} holds objects other than model weights and known model classes, which could run code as it "
                "loads, so distil does not load it. If you trust the file (you made it, with modules of your own), "
                f"set {TRUST_ENV}=1 in the environment and run again") from None
        raise


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None where it is missing or cut short (a kill while it was written)."""
    if not Path(path).is_file():
        return None
    try:
        return load_checkpoint_dict(path)
    except UnsafeCheckpointError:
        raise
    except Exception:  # cut short or garbage: the unpickler fails in many ways (EOFError, KeyError, BadZipFile, ...)
        return None


def load_model(path: str | Path):
    """``(model, checkpoint)`` as Ultralytics' ``load_checkpoint`` gives them, with the refusal of unsafe files said
    plainly (`load_checkpoint_dict`)."""
    from ultralytics.nn.tasks import load_checkpoint

    load_checkpoint_dict(path)  # refuses an unsafe file with the way out, before Ultralytics' own message
    return load_checkpoint(str(path))
