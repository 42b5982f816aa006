"""Image enhancement for poor captures: white balance, denoising, contrast, gamma, CLAHE, sharpening.

Every step is a pure function on a uint8 BGR image (the OpenCV and Ultralytics convention) that
returns a new image of the same shape and dtype. `enhance` runs named steps in the canonical
order below (or the default pipeline when none is named); `Pipeline` holds an explicit list of
steps with settings, built from a dict or a params YAML, and says what it will do.

Canonical order, and why: colour first (white balance), then noise (before anything amplifies
it), then global exposure (contrast stretch, gamma), then local contrast (CLAHE), and
sharpening last.

Inputs: grayscale (2-D or one channel) runs the steps that make sense for it; BGRA keeps its
alpha untouched; 16-bit images are converted to 8-bit first (``x / 257``; the result is uint8, and
a warning says so); arrays are made contiguous. Empty arrays, float or other dtypes, NaNs and
channel counts other than 1, 3, 4 raise a `ValueError` that names what was received.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

STEP_ORDER = ("white_balance", "denoise", "auto_contrast", "gamma", "clahe", "sharpen")
DEFAULT_STEPS: dict[str, Any] = {"white_balance": True, "denoise": True, "gamma": "auto", "clahe": True}


# --- input handling ------------------------------------------------------------------------------
def check_image(image: Any) -> np.ndarray:
    """Validate an image and return it as a contiguous uint8 array (2-D, or H x W x 1/3/4).

    Raises:
        ValueError: Not an array, empty, unsupported dtype, NaNs, or a bad channel count.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an image as a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"expected a non-empty image, got an array of shape {image.shape}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an image of shape HxW or HxWxC with C in 1, 3, 4; got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        if np.isnan(image).any():
            raise ValueError(f"the image holds NaN values (dtype {image.dtype}); expected uint8 pixels")
        raise ValueError(f"expected uint8 (or uint16) pixels, got {image.dtype}; "
                         "convert floats in [0, 1] with (image * 255).round().astype(np.uint8)")
    if image.dtype == np.uint16:
        warnings.warn("16-bit image converted to 8-bit (x / 257) before enhancement; the result is uint8",
                      stacklevel=3)
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"expected uint8 (or uint16) pixels, got {image.dtype}")
    return np.ascontiguousarray(image)


def per_colour_image(step: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Let a step written for BGR also take grayscale (as is) and BGRA (alpha kept)."""

    def run(image: np.ndarray, **settings: Any) -> np.ndarray:
        image = check_image(image)
        if image.ndim == 3 and image.shape[2] == 4:
            out = run(image[:, :, :3], **settings)
            return np.dstack([out, image[:, :, 3]])
        if image.ndim == 3 and image.shape[2] == 1:
            return run(image[:, :, 0], **settings)[:, :, None]
        return step(image, **settings)

    run.__name__, run.__doc__, run.__wrapped__ = step.__name__, step.__doc__, step
    return run


def channel_percentile(image: np.ndarray, channel: int, percentile: float) -> float:
    """A channel's percentile from its histogram (much faster than sorting the pixels)."""
    counts = cv2.calcHist([image], [channel], None, [256], [0, 256]).ravel()
    return float(np.searchsorted(np.cumsum(counts), percentile / 100.0 * counts.sum()))


def luminance(image: np.ndarray) -> np.ndarray:
    """Lightness channel (0..255) of a grayscale or BGR image."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def apply_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map every pixel through a 256-entry table (the fast path for point operations)."""
    return cv2.LUT(image, np.clip(lut, 0, 255).astype(np.uint8))


# --- steps -----------------------------------------------------------------------------------------
@per_colour_image
def white_balance(image: np.ndarray, method: str = "gray_world", percentile: float = 99.0) -> np.ndarray:
    """Remove a colour cast by scaling each channel.

    ``gray_world`` makes the three channel means equal (right when the scene averages to gray);
    ``white_patch``, the robust variant, maps each channel's ``percentile`` to a common white, so
    a scene dominated by one colour does not pull it (right when something white or gray is in
    view, and no channel is clipped there). Grayscale images are returned unchanged.
    """
    if image.ndim == 2:
        return image.copy()
    if method == "gray_world":
        reference = np.array(cv2.mean(image)[:3])
    elif method == "white_patch":
        reference = np.array([channel_percentile(image, c, percentile) for c in range(3)])
    else:
        raise ValueError(f"white_balance method {method!r} is not 'gray_world' or 'white_patch'")
    gains = reference.mean() / np.maximum(reference, 1.0)
    return cv2.merge([apply_lut(image[:, :, c], np.arange(256) * gains[c]) for c in range(3)])


@per_colour_image
def denoise(image: np.ndarray, strength: float = 40.0, method: str = "bilateral", diameter: int = 5) -> np.ndarray:
    """Edge-preserving noise removal.

    ``bilateral`` (default, fast enough for interactive use) averages neighbours of similar
    colour: ``strength`` is its colour sigma in pixel levels. ``nlmeans`` (non-local means) is
    stronger and much slower: ``strength`` is its filter strength h.
    """
    if method == "bilateral":
        return cv2.bilateralFilter(image, diameter, float(strength), diameter)
    if method == "nlmeans":
        h = float(strength) / 3
        if image.ndim == 2:
            return cv2.fastNlMeansDenoising(image, None, h, 7, 21)
        return cv2.fastNlMeansDenoisingColored(image, None, h, h, 7, 21)
    raise ValueError(f"denoise method {method!r} is not 'bilateral' or 'nlmeans'")


@per_colour_image
def auto_contrast(image: np.ndarray, clip: float = 1.0) -> np.ndarray:
    """Stretch brightness linearly so that ``clip`` % of pixels saturate at each end.

    The same map is applied to every channel (measured on lightness), so colours keep their hue.
    """
    low, high = np.percentile(luminance(image), [clip, 100 - clip])
    if high - low < 1:
        return image.copy()
    return apply_lut(image, (np.arange(256) - low) * 255.0 / (high - low))


def auto_gamma(image: np.ndarray) -> float:
    """The gamma that moves the mean lightness to mid-gray: ``log(mean) / log(0.5)``, within [0.25, 4]."""
    mean = float(np.clip(luminance(image).mean() / 255.0, 0.01, 0.99))
    return float(np.clip(np.log(mean) / np.log(0.5), 0.25, 4.0))


@per_colour_image
def gamma(image: np.ndarray, gamma: float | str = "auto") -> np.ndarray:
    """Gamma correction: ``out = 255 * (in / 255) ** (1 / gamma)``.

    ``gamma > 1`` brightens shadows (under-exposure), ``gamma < 1`` darkens (over-exposure);
    ``"auto"`` picks the gamma that brings the mean lightness to mid-gray.
    """
    if gamma == "auto":
        value = auto_gamma(image)
    elif isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and gamma > 0:
        value = float(gamma)
    else:
        raise ValueError(f"gamma must be a number > 0 (above 1 brightens) or 'auto', got {gamma!r}")
    return apply_lut(image, 255.0 * (np.arange(256) / 255.0) ** (1.0 / value))


@per_colour_image
def clahe(image: np.ndarray, clip_limit: float = 2.0, tile_grid: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on the lightness channel (L of LAB).

    Raises local contrast tile by tile; ``clip_limit`` caps the amplification (and so noise and
    halos). Colours are untouched because a and b are kept.
    """
    grid = max(1, min(int(tile_grid), image.shape[0], image.shape[1]))
    equaliser = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(grid, grid))
    if image.ndim == 2:
        return equaliser.apply(image)
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = equaliser.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


@per_colour_image
def sharpen(image: np.ndarray, amount: float = 0.8, radius: float = 2.0, threshold: int = 2) -> np.ndarray:
    """Unsharp mask: ``out = in + amount * (in - blur(in, radius))`` where ``|in - blur| >= threshold``.

    The threshold leaves flat areas (and their noise) alone.
    """
    blurred = cv2.GaussianBlur(image, (0, 0), float(radius))
    sharp = cv2.addWeighted(image, 1.0 + float(amount), blurred, -float(amount), 0)  # saturating uint8
    if threshold > 0:
        flat = cv2.absdiff(image, blurred) < threshold
        sharp[flat] = image[flat]
    return sharp


STEPS: dict[str, Callable[..., np.ndarray]] = {
    "white_balance": white_balance, "denoise": denoise, "auto_contrast": auto_contrast,
    "gamma": gamma, "clahe": clahe, "sharpen": sharpen,
}
# The setting a bare value sets: gamma=0.8, clahe=3.0, white_balance="white_patch", ...
MAIN_SETTING = {"white_balance": "method", "denoise": "strength", "auto_contrast": "clip", "gamma": "gamma",
                "clahe": "clip_limit", "sharpen": "amount"}


# --- pipelines -------------------------------------------------------------------------------------
def step_settings(name: str, value: Any) -> dict[str, Any] | None:
    """A step's settings from its value: True (defaults), False/None (off), a bare main setting, or a dict."""
    if name not in STEPS:
        raise ValueError(f"unknown enhancement step {name!r}; steps are {', '.join(STEP_ORDER)}")
    if value is None or value is False:
        return None
    if value is True:
        return {}
    parameters = dict(list(inspect.signature(STEPS[name].__wrapped__).parameters.items())[1:])
    if isinstance(value, Mapping):
        unknown = set(value) - set(parameters)
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {sorted(unknown)}; it takes {sorted(parameters)}")
        settings = dict(value)
    else:
        settings = {MAIN_SETTING[name]: value}
    for key, given in settings.items():  # numbers must be numbers: 'bright' is not a gamma
        default, annotation = parameters[key].default, str(parameters[key].annotation)
        wants_number = isinstance(default, (int, float)) and not isinstance(default, bool) or "float" in annotation
        is_number = isinstance(given, (int, float)) and not isinstance(given, bool)
        if wants_number and not is_number and not (isinstance(given, str) and "str" in annotation):
            raise ValueError(f"{name}: {key}={given!r} must be a number (default {default!r})")
    return settings


@dataclass
class Pipeline:
    """An ordered list of enhancement steps with their settings.

    Example:
        >>> pipeline = Pipeline.from_dict({"white_balance": "white_patch", "gamma": "auto", "clahe": 3.0})
        >>> print(pipeline.describe())
        >>> enhanced = pipeline(image)
    """

    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, steps: Mapping[str, Any] | list, canonical_order: bool = False) -> Pipeline:
        """Build from ``{step: value}`` (given order) or ``[{step: value}, ...]``; off steps are dropped."""
        items = [next(iter(item.items())) for item in steps] if isinstance(steps, list) else list(steps.items())
        if canonical_order:
            items.sort(key=lambda item: STEP_ORDER.index(item[0]) if item[0] in STEP_ORDER else -1)
        built = [(name, step_settings(name, value)) for name, value in items]
        return cls([(name, settings) for name, settings in built if settings is not None])

    @classmethod
    def default(cls) -> Pipeline:
        """White balance, light denoising, automatic gamma and CLAHE: for photos taken in poor light."""
        return cls.from_dict(DEFAULT_STEPS, canonical_order=True)

    @classmethod
    def from_spec(cls, spec: str | Path | Mapping | list | None) -> Pipeline:
        """From a params value: ``'none'``, ``'default'``, a pipeline YAML path, or a dict/list of steps."""
        if spec is None or spec in ("none", ""):
            return cls()
        if spec == "default":
            return cls.default()
        if isinstance(spec, (Mapping, list)):
            return cls.from_dict(spec)
        from distil.paths import resolve_path

        path = resolve_path(spec)
        if not path.exists():
            raise FileNotFoundError(f"enhancement pipeline {spec!r} is not 'none', 'default' or an existing YAML "
                                    f"file (looked at {path})")
        loaded = yaml.safe_load(path.read_text()) or {}
        return cls.from_dict(loaded.get("steps", loaded) if isinstance(loaded, dict) else loaded)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = check_image(image)
        out = image.copy() if not self.steps else image
        for name, settings in self.steps:
            out = STEPS[name](out, **settings)
        return out

    def __bool__(self) -> bool:
        return bool(self.steps)

    def describe(self) -> str:
        """What the pipeline will do, one line per step."""
        if not self.steps:
            return "no enhancement (images pass through unchanged)"
        lines = []
        for index, (name, settings) in enumerate(self.steps, 1):
            shown = ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"
            summary = (STEPS[name].__doc__ or "").strip().splitlines()[0].replace("``", "")
            lines.append(f"{index}. {name} ({shown}): {summary}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dict(settings) for name, settings in self.steps}


def enhance(image: np.ndarray, **steps: Any) -> np.ndarray:
    """Enhance an image: the default pipeline, or only the steps named, in canonical order.

    Example:
        >>> enhance(image)  # white balance, denoise, auto gamma, CLAHE
        >>> enhance(image, white_balance=True)  # white balance only
        >>> enhance(image, gamma=0.8, clahe={"clip_limit": 3.0, "tile_grid": 4})

    Args:
        image: uint8 (or uint16) image, grayscale, BGR or BGRA.
        **steps: ``step=value``: True (defaults), False/None (off), a number or string for the
            step's main setting, or a dict of settings.
    """
    pipeline = Pipeline.from_dict(steps, canonical_order=True) if steps else Pipeline.default()
    return pipeline(image)
