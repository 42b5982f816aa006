"""The threads CPU training takes: every core, unless ``OMP_NUM_THREADS``, as the user set it, says otherwise.

Importing Ultralytics sets ``OMP_NUM_THREADS=1`` in the environment where it is unset. Read after that, the
variable cannot tell the user's choice from Ultralytics' default: training that meant to take every core took
one (on the demo's 2-core CPU, half the speed), and every process started from then on (a notebook's kernel
under papermill, the demo's image drawers) inherited the 1 as if the user had set it. So the variable is read
here, when distil is imported and before it imports Ultralytics, and `forget_ultralytics_threads` takes
Ultralytics' value out of the environment again. (Where Ultralytics was imported before distil, its 1 stays
and is taken for the user's.)
"""

from __future__ import annotations

import os
import sys

USER_SET = "ultralytics" in sys.modules or "OMP_NUM_THREADS" in os.environ


def forget_ultralytics_threads() -> None:
    """Remove the ``OMP_NUM_THREADS=1`` importing Ultralytics put in the environment, where the user set none."""
    if not USER_SET:
        os.environ.pop("OMP_NUM_THREADS", None)


def training_threads() -> int:
    """Threads for training on the CPU: ``OMP_NUM_THREADS`` where set (runs side by side each take their
    share instead of all contending), else every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
