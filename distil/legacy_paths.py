"""The module paths of before the move into subpackages, kept importable.

A ``last.pt`` pickles the classes of the distillation model by module path (``distil.model``,
``distil.adapter``, ``distil.losses``, ...), and a DDP worker file pickles the trainer class
(``distil.trainer``). Checkpoints written before the move must still load and resume, and code
that imported the old paths must still run, so each old path names its new module in
``sys.modules``. Nothing here is used by the package itself.
"""

from __future__ import annotations

import importlib
import sys

MOVED = {
    "distil.adapter": "distil.engine.adapter",
    "distil.hooks": "distil.engine.hooks",
    "distil.losses": "distil.engine.losses",
    "distil.masks": "distil.engine.masks",
    "distil.model": "distil.engine.model",
    "distil.pairing": "distil.engine.pairing",
    "distil.settings": "distil.engine.settings",
    "distil.teacher": "distil.engine.teacher",
    "distil.trainer": "distil.engine.trainer",
    "distil.preprocess": "distil.enhancement.pipeline",
    "distil.image_quality": "distil.enhancement.quality",
    "distil.enhanced_data": "distil.enhancement.dataset",
    "distil.enhance_controls": "distil.enhancement.controls",
    "distil.config": "distil.params",
    "distil.evaluate": "distil.eval.comparison",
    "distil.deploy": "distil.eval.deploy",
    "distil.features": "distil.eval.features",
    "distil.viz": "distil.eval.figures",
    "distil.diagram": "distil.eval.diagram",
}


WIDGETS = {"ipywidgets", "IPython", "traitlets", "comm"}  # the notebooks' extras; training runs without them


def install() -> None:
    """Make every old module path resolve to its new module (the widget controls' only where ipywidgets is
    installed: training, e.g. on a bare GPU machine, needs none of it), and let restricted checkpoint loading build
    distil's classes under their old names too."""
    from distil.engine.checkpoints import allow_distil_classes

    allow_distil_classes(MOVED)
    for old, new in MOVED.items():
        try:
            sys.modules.setdefault(old, importlib.import_module(new))
        except ModuleNotFoundError as error:
            if error.name not in WIDGETS:
                raise
