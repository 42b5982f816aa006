"""The teacher labels images once: a resumable, sharded job on this machine or a Ray cluster (`job.label`), the
label folder it writes (`store`), and the scored boxes with class vectors that offline distillation learns from.
"""

from distil.engine.labeling.job import image_list, label
from distil.engine.labeling.store import ImageLabels, LabelSettings, LabelStore, LabelStoreError, ShardLabels
from distil.engine.labeling.workers import LabelingError

__all__ = ["ImageLabels", "LabelSettings", "LabelStore", "LabelStoreError", "LabelingError", "ShardLabels",
           "image_list", "label"]
