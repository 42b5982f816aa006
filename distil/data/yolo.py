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


def readable_images(paths: list[str | Path], count: int) -> list[np.ndarray]:
    """The first ``count`` of ``paths`` that decode, as BGR arrays (an unreadable file is passed over, never handed on
    as None: Ultralytics would show its own sample photo in its place)."""
    images = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is not None:
            images.append(image)
        if len(images) == count:
            break
    return images


def load_images(data_yaml: str | Path, count: int, split: str = "val") -> list[np.ndarray]:
    """The first ``count`` images of a split, as BGR arrays (the same ones every time)."""
    return [cv2.imread(str(p)) for p in split_images(data_yaml, split)[:count]]


class NoLabelsError(ValueError):
    """A training set whose label files hold no box: there is nothing to learn."""


def require_boxes(dataset) -> None:
    """Stop before training when not one training image has a labelled box (Ultralytics would train on).

    Args:
        dataset: An Ultralytics YOLO dataset (``labels``, ``label_files``).

    Raises:
        NoLabelsError: Naming the labels folder and what a label line looks like.
    """
    if any(len(label["cls"]) for label in dataset.labels):
        return
    folder = Path(dataset.label_files[0]).parent if getattr(dataset, "label_files", None) else "the labels folder"
    raise NoLabelsError(f"none of the {len(dataset.labels)} training images has a labelled box: the label files in "
                        f"{folder} are all empty or missing. Each image needs a .txt file of the same name there with "
                        "one 'class cx cy w h' line (normalised to 0-1) per object")
