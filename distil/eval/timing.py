"""Timing that can be compared: warm-up first, then the median of repeated runs, interleaved.

Interleaving (a, b, c, a, b, c, ...) lets drift on a shared machine (another job, clock changes) hit
every function alike, so their ratios hold even when the absolute times move.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch


def interleaved_medians(functions: Mapping[str, Callable[[], object]], reps: int, warmup: int = 3,
                        device: torch.device | str | None = None) -> dict[str, float]:
    """Median seconds per call of each function after ``warmup`` untimed calls each.

    Args:
        functions: Label -> function of no arguments.
        reps: Timed calls per function.
        warmup: Untimed calls per function first (allocations, lazy initialisation).
        device: A CUDA device is synchronised around each call, so the time covers its kernels.
    """
    on_cuda = device is not None and torch.device(device).type == "cuda"

    def timed(fn: Callable[[], object]) -> float:
        if on_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if on_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for fn in functions.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {label: [] for label in functions}
    for _ in range(reps):
        for label, fn in functions.items():
            times[label].append(timed(fn))
    return {label: statistics.median(values) for label, values in times.items()}
