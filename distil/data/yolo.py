"""Read any YOLO-format dataset: the image files of a split, and the images themselves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def split_images(data_yaml: str | Path, split: str = "val") -> list[Path]:
    """Image files of a split of any YOLO dataset (sorted)."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    folder = Path(data[split])
    if not folder.is_absolute():
        folder = Path(data.get("path") or Path(data_yaml).parent) / folder
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(data_yaml: str | Path, count: int, split: str = "val") -> list[np.ndarray]:
    """The first ``count`` images of a split, as BGR arrays (the same ones every time)."""
    return [cv2.imread(str(p)) for p in split_images(data_yaml, split)[:count]]
