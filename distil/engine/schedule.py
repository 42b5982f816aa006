"""When distillation speaks: a linear warm-up of its weights, and a last stretch without it.

Early on, a student's features and detections are noise, and a strong teacher signal can swamp the
detection loss; at the end, training on the ground truth alone lets the student settle on the task it
will be judged on (MMYOLO stops distillation for the last epochs for this reason). Every distillation
term (feature, response) is multiplied by the same factor.
"""

from __future__ import annotations


def distill_factor(progress: float, epochs: int, warmup: float = 0.0, stop: int = 0) -> float:
    """The multiplier of every distillation weight at a point of training.

    Args:
        progress: Epochs done so far, fractional (epoch 0 starts at 0.0; half-way through it is 0.5).
        epochs: Epochs of the whole run.
        warmup: Epochs over which the factor ramps linearly from 0 to 1 (0: full from the start).
        stop: Last epochs in which the factor is 0.

    Returns:
        A number in [0, 1].
    """
    if stop and progress >= epochs - stop:
        return 0.0
    if warmup > 0 and progress < warmup:
        return progress / warmup
    return 1.0
