"""Image enhancement: the pipeline (`pipeline`), image-quality measures (`quality`), enhanced datasets
for Ultralytics trainers and validators (`dataset`), and ipywidgets controls (`controls`)."""

from distil.enhancement.pipeline import STEP_ORDER, Pipeline, enhance

__all__ = ["STEP_ORDER", "Pipeline", "enhance"]
