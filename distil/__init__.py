"""distil: distill a large detector (RT-DETR) into a small YOLO by feature-based distillation.

Importing the package first keeps Ultralytics offline (`distil.offline`) and registers the
distillation config keys (`distil.settings`), so both hold in every process that imports it,
DDP workers included.
"""

from distil.offline import ensure_offline

ensure_offline()

from distil.settings import register_cfg_keys  # noqa: E402

register_cfg_keys()

from distil import data, diagram, features, image_quality, manifest, pairing, viz  # noqa: E402
from distil.config import DistillParams, ParamsError  # noqa: E402
from distil.data import make_demo_dataset  # noqa: E402
from distil.evaluate import evaluate, save_evaluation  # noqa: E402
from distil.experiment import prepare_data, train  # noqa: E402
from distil.hooks import FeatureTap, layer_table  # noqa: E402
from distil.losses import LOSSES  # noqa: E402
from distil.pairing import pair_layers  # noqa: E402
from distil.preprocess import Pipeline, enhance  # noqa: E402
from distil.teacher_training import prepare_teacher  # noqa: E402
from distil.trainer import DistillationTrainer  # noqa: E402

__all__ = ["DistillParams", "DistillationTrainer", "FeatureTap", "LOSSES", "ParamsError", "Pipeline", "data",
           "diagram", "enhance", "evaluate", "features", "image_quality", "layer_table", "make_demo_dataset",
           "manifest", "pair_layers", "pairing", "prepare_data", "prepare_teacher", "save_evaluation", "train",
           "viz"]
__version__ = "0.1.0"
