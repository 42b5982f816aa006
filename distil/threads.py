"""The threads training and inference take on a CPU: every core, unless ``OMP_NUM_THREADS``, as the user set it,
says otherwise.

Ultralytics decides otherwise in two places. Importing it sets ``OMP_NUM_THREADS=1`` in the environment where it
is unset, so the variable read later cannot tell the user's choice from Ultralytics' default, and every process
started from then on (a notebook's kernel under papermill, the demo's image drawers) inherits the 1 as if the
user had set it. And its device selection, which every trainer, validator and predictor runs, sets torch's
threads to all cores but one: on the demo's 2-core CPU, one, half the speed. So the variable is read here, when
distil is imported and before it imports Ultralytics, and `use_training_threads` takes Ultralytics' value out of
the environment again and makes its device selection set `training_threads`. (Where Ultralytics was imported
before distil, its 1 stays and is taken for the user's.)
"""

from __future__ import annotations

import os
import sys

USER_SET = "ultralytics" in sys.modules or "OMP_NUM_THREADS" in os.environ


def training_threads() -> int:
    """``OMP_NUM_THREADS`` where the user set it (runs side by side each take their share instead of all
    contending), else every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def use_training_threads() -> None:
    """Undo Ultralytics' thread choices (see the module docstring); called once Ultralytics is imported."""
    from ultralytics.utils import torch_utils

    if not USER_SET:
        os.environ.pop("OMP_NUM_THREADS", None)
    torch_utils.NUM_THREADS = training_threads()  # what its select_device gives torch.set_num_threads
