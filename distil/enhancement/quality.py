"""Simple, named measures of image quality, and what a pipeline does to them per capture fault.

Each measure targets one fault the demo generator makes, so the effect of enhancement is a
number, not an impression: colour cast -> channel spread; exposure -> distance of the mean from
mid-gray; low contrast -> mean local standard deviation; blur and noise -> high-frequency energy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from distil.enhancement.pipeline import luminance


def channel_spread(image: np.ndarray) -> float:
    """Largest difference between the B, G, R means (0 for a neutral image)."""
    means = image.reshape(-1, 3).mean(0)
    return float(means.max() - means.min())


def exposure_error(image: np.ndarray) -> float:
    """Distance of the mean lightness from mid-gray (127.5)."""
    return float(abs(luminance(image).mean() - 127.5))


def local_contrast(image: np.ndarray, size: int = 7) -> float:
    """Mean standard deviation of lightness in ``size`` x ``size`` windows."""
    g = luminance(image).astype(np.float32)
    mean = cv2.blur(g, (size, size))
    return float(np.sqrt(np.maximum(cv2.blur(g * g, (size, size)) - mean * mean, 0)).mean())


def high_frequency(image: np.ndarray) -> float:
    """Mean absolute Laplacian of lightness: edges and fine detail (and noise)."""
    return float(np.abs(cv2.Laplacian(luminance(image).astype(np.float32), cv2.CV_32F)).mean())


def clipped_share(image: np.ndarray) -> float:
    """Share of pixel values at 0 or 255."""
    return float(((image == 0) | (image == 255)).mean())


# The measure that shows each fault, and whether enhancement should raise or lower it.
FAULT_MEASURES: dict[str, tuple[str, Callable[[np.ndarray], float], str]] = {
    "colour_cast": ("channel spread", channel_spread, "lower"),
    "underexposed": ("exposure error", exposure_error, "lower"),
    "overexposed": ("exposure error", exposure_error, "lower"),
    "low_contrast": ("local contrast", local_contrast, "higher"),
    "blur": ("high-frequency energy", high_frequency, "higher"),
    "noise": ("high-frequency energy", high_frequency, "lower"),
}


# Where the faults are not known (a dataset of one's own): every measure, with no wanted direction.
GENERAL_MEASURES: dict[str, Callable[[np.ndarray], float]] = {
    "channel spread": channel_spread, "exposure error": exposure_error, "local contrast": local_contrast,
    "high-frequency energy": high_frequency,
}


def measures_for(group: str) -> list[tuple[str, Callable[[np.ndarray], float], str]]:
    """(name, measure, wanted direction) for a group of images: its fault's measure, or all of them."""
    if group in FAULT_MEASURES:
        return [FAULT_MEASURES[group]]
    return [(name, measure, "") for name, measure in GENERAL_MEASURES.items()]


def fault_effects(images_by_fault: Mapping[str, Sequence[np.ndarray]],
                  transform: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    """For each group of images: its measures before and after ``transform`` (means), and the change.

    A group named after a known fault (the demo's) gets that fault's measure and says whether the
    change went the wanted way; any other group (say ``all`` for a dataset whose faults are unknown)
    gets every measure, and ``improved`` is left empty: which way is better depends on the images.
    """
    rows = []
    for fault, images in images_by_fault.items():
        if not images:
            continue
        outputs = [transform(im) for im in images]
        clipped = round(100 * float(np.mean([clipped_share(o) for o in outputs])), 2)
        for name, measure, wanted in measures_for(fault):
            before = float(np.mean([measure(im) for im in images]))
            after = float(np.mean([measure(im) for im in outputs]))
            better = (after < before if wanted == "lower" else after > before) if wanted else None
            rows.append({"fault": fault, "images": len(images), "measure": name, "wanted": wanted or "-",
                         "before": round(before, 2), "after": round(after, 2),
                         "change %": round(100 * (after - before) / max(abs(before), 1e-9), 1), "improved": better,
                         "clipped after %": clipped})
    return pd.DataFrame(rows, columns=["fault", "images", "measure", "wanted", "before", "after", "change %",
                                       "improved", "clipped after %"])


def step_table(images_by_fault: Mapping[str, Sequence[np.ndarray]],
               transforms: Mapping[str, Callable[[np.ndarray], np.ndarray]]) -> pd.DataFrame:
    """Change (%) of each group's measures under each transform alone; + or - marks whether it went the wanted way
    (for known faults)."""
    table, index = {}, None
    for label, transform in transforms.items():
        effects = fault_effects(images_by_fault, transform).set_index(["fault", "measure"])
        marks = ["" if ok is None else ("+ " if ok else "- ") for ok in effects["improved"]]
        table[label] = [f"{mark}{change:+.0f}%" for mark, change in zip(marks, effects["change %"])]
        index = effects.index
    return pd.DataFrame(table, index=index)
