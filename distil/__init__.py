"""distil: distill a large detector (RT-DETR) into a small YOLO, on the Ultralytics trainer.

Layers, each importing only those below it (``tests/test_layers.py`` checks it)::

    experiment layer   params, experiment (train), runs, shipped_runs, teacher_training, teacher_stages,
                       manifest, report, dashboard
    eval/              compare detectors, deployment parity, feature maps, figures, diagram, timing
    engine/            settings, hooks, pairing, adapter, losses, masks, distillation model, trainer, teacher
    enhancement/ data/ image enhancement and enhanced datasets; the demo generator and YOLO readers
    paths, offline,    where files are; keeping Ultralytics off the network; the threads training takes
    threads

Importing the package first keeps Ultralytics offline (`distil.offline`) and its thread setting from
passing for the user's (`distil.threads`), and registers the distillation config keys
(`distil.engine.settings`), so these hold in every process that imports it,
DDP workers included. What is public is `__all__` below, the subpackages' own ``__all__``, and
`distil.dashboard` (the Voila app, imported only where it is served).
"""

from distil.offline import ensure_offline  # imports nothing of Ultralytics until called
from distil.threads import use_training_threads  # reads OMP_NUM_THREADS before Ultralytics sets it

ensure_offline()
use_training_threads()

from distil.engine.periodic_validation import VAL_PERIOD_KEY  # noqa: E402
from distil.engine.settings import register_cfg_keys  # noqa: E402
from distil.enhancement.dataset import ENHANCE_KEY  # noqa: E402

register_cfg_keys({**ENHANCE_KEY, **VAL_PERIOD_KEY})

from distil import data, engine, enhancement, eval, legacy_paths, manifest  # noqa: E402
from distil.data import make_demo_dataset  # noqa: E402
from distil.engine import LOSSES, SETTINGS, DistillationTrainer, FeatureTap, layer_table, pair_layers  # noqa: E402
from distil.engine.labeling import label  # noqa: E402
from distil.enhancement import Pipeline, enhance  # noqa: E402
from distil.eval import evaluate, save_evaluation  # noqa: E402
from distil.experiment import prepare_data, train  # noqa: E402
from distil.params import (  # noqa: E402
    DashboardParams,
    DistillParams,
    EvalParams,
    FeatureParams,
    Params,
    ParamsError,
    PreprocessParams,
    TeacherParams,
)

legacy_paths.install()

def __getattr__(name: str):
    """`teacher_training` and `prepare_teacher` are imported on first use: `python -m distil.teacher_training`
    then runs that module once, where an eager import here would have it imported twice (runpy warns)."""
    if name not in ("teacher_training", "prepare_teacher"):
        raise AttributeError(f"module 'distil' has no attribute {name!r}")
    import importlib

    teacher_training = importlib.import_module("distil.teacher_training")  # `from distil import` would recurse
    return teacher_training if name == "teacher_training" else teacher_training.prepare_teacher


__all__ = ["LOSSES", "SETTINGS", "DashboardParams", "DistillParams", "DistillationTrainer", "EvalParams",
           "FeatureParams", "FeatureTap", "Params", "ParamsError", "Pipeline", "PreprocessParams", "TeacherParams",
           "data", "engine", "enhance", "enhancement", "eval", "evaluate", "label", "layer_table", "make_demo_dataset",
           "manifest", "pair_layers", "prepare_data", "prepare_teacher", "save_evaluation", "teacher_training", "train"]
__version__ = "0.1.0"
