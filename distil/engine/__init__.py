"""The distillation engine: settings, hooks, layer pairing, adapters, losses, masks, the distillation
model, the Ultralytics trainers (the student's alone, and with its teacher), and teacher loading.

It imports nothing of the experiment layer (params, notebooks' entry points, dashboard): it is
driven entirely by Ultralytics config keys, so ``YOLO(...).train(trainer=DistillationTrainer, ...)``
needs nothing else.
"""

from distil.engine.adapter import FeatureAdapter
from distil.engine.checkpoints import allow_distil_classes
from distil.engine.hooks import FeatureTap, forward_until, head_inputs, layer_table
from distil.engine.losses import LOSSES, FeatureLoss, build_loss, register
from distil.engine.model import FeatureDistillationModel
from distil.engine.pairing import LevelPair, PairingError, pair_layers
from distil.engine.periodic_validation import StudentTrainer
from distil.engine.settings import SETTINGS, DistillSettings, SettingError
from distil.engine.teacher import build_from_yaml, detector, load_teacher
from distil.engine.trainer import DistillationTrainer

allow_distil_classes()  # its checkpoints load under restricted (weights_only) loading

__all__ = ["LOSSES", "SETTINGS", "DistillSettings", "DistillationTrainer", "FeatureAdapter", "FeatureDistillationModel",
           "FeatureLoss", "FeatureTap", "LevelPair", "PairingError", "SettingError", "StudentTrainer",
           "build_from_yaml", "build_loss", "detector", "forward_until", "head_inputs", "layer_table", "load_teacher",
           "pair_layers", "register"]
