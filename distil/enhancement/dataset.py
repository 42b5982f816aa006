"""Run the enhancement pipeline on the images Ultralytics trainers and validators load.

Images that a model sees at test time through `distil.enhance` must be processed alike at
training time, or the model learns on one distribution and runs on another. The ``enhance``
config key (``'none'``, ``'default'``, or a pipeline YAML) makes the dataset's image loader pass
every image through the pipeline, right after it is read and resized and before augmentation,
for training, validation during training, and stand-alone validation alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ultralytics.cfg import get_cfg
from ultralytics.models.rtdetr.val import RTDETRValidator
from ultralytics.models.yolo.detect import DetectionTrainer, DetectionValidator
from ultralytics.utils import DEFAULT_CFG

from distil.data.yolo import require_boxes
from distil.enhancement.pipeline import Pipeline

# The config key this module adds to Ultralytics' (registered by ``distil/__init__``): the pipeline applied
# to every image a model loads, ``'none'``, ``'default'`` or a pipeline YAML.
ENHANCE_KEY = {"enhance": "none"}


class EnhancedImageLoader:
    """A dataset's ``load_image`` followed by the pipeline (picklable for dataloader workers)."""

    def __init__(self, load_image: Callable, pipeline: Pipeline) -> None:
        self.load_image = load_image
        self.pipeline = pipeline

    def __call__(self, i: int, *args, **kwargs) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        image, original_hw, resized_hw = self.load_image(i, *args, **kwargs)
        return self.pipeline(image), original_hw, resized_hw


def enhance_dataset(dataset, spec) -> None:
    """Make ``dataset`` enhance every image it loads (no change for ``'none'``)."""
    pipeline = Pipeline.from_spec(spec)
    if pipeline and not isinstance(dataset.load_image, EnhancedImageLoader):
        dataset.load_image = EnhancedImageLoader(dataset.load_image, pipeline)


class EnhancedDatasets:
    """Mixin for Ultralytics trainers and validators: datasets they build apply ``args.enhance``."""

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        dataset = super().build_dataset(img_path, mode, batch)
        enhance_dataset(dataset, getattr(self.args, "enhance", "none"))
        return dataset


class EnhancedDetectionTrainer(EnhancedDatasets, DetectionTrainer):
    """The Ultralytics detection trainer, with ``enhance`` applied to training and validation images."""

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None):
        """Check the ``enhance`` pipeline first, so a bad one fails before any data is read."""
        Pipeline.from_spec(get_cfg(cfg, overrides).enhance)
        super().__init__(cfg, overrides, _callbacks)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        """Build as Ultralytics does; a training set without a single box stops here, before training."""
        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train":
            require_boxes(dataset)
        return dataset


class EnhancedDetectionValidator(EnhancedDatasets, DetectionValidator):
    """The detection validator, with ``enhance`` applied to the images (for stand-alone ``val``)."""


class EnhancedRTDETRValidator(EnhancedDatasets, RTDETRValidator):
    """The RT-DETR validator, with ``enhance`` applied to the images."""
