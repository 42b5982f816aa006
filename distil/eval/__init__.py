"""Evaluation: detectors compared by the Ultralytics validator (`comparison`), deployment parity
(`deploy`), feature maps (`features`), figures (`figures`), the distillation diagram (`diagram`), and
comparable timing (`timing`)."""

from distil.eval import comparison, deploy, diagram, features, figures, timing
from distil.eval.comparison import evaluate, gap_closed, save_evaluation

__all__ = ["comparison", "deploy", "diagram", "evaluate", "features", "figures", "gap_closed", "save_evaluation",
           "timing"]
