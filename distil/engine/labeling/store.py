"""The teacher's labels of a set of images, on disk: an index, the image list, and shards written whole.

A label folder (what ``distil label`` writes and offline distillation reads)::

    index.json        what made the labels: the teacher file and its sha1, image size, score floor, precision,
                      the teacher's class names (the labels' class space), shard size, the number of images
    images.txt        the images, sorted, one per line; shard k holds lines k*S to (k+1)*S - 1
    shards/00000.npz  per box of the shard's images: its image (row in the shard), box (cx, cy, w, h normalised to
                      the image), score, class, and the teacher's score for every class (the soft target)

A shard is written to a temporary file, flushed and renamed into place (`distil.atomic`), so a reader sees a
whole shard or none, and a shard that exists is done: a job run again labels only the missing ones. Each shard
depends on its own images alone, so the labels are the same however many workers made them, in any order.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import distil.atomic as atomic

FORMAT = 1
INDEX = "index.json"
IMAGES = "images.txt"


class LabelStoreError(ValueError):
    """A label folder cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class LabelSettings:
    """Everything the labels depend on besides the images: what makes two label folders interchangeable."""

    teacher: str  # the checkpoint as given (for the record)
    teacher_sha1: str  # what identifies it
    imgsz: int
    conf: float  # boxes below it are not stored
    half: bool  # fp16 on a GPU (bf16 on a CPU with bf16 units) instead of fp32
    names: dict[int, str] = field(default_factory=dict)  # the teacher's classes: the labels' class space
    made_by: str = "teacher"  # 'teacher', or 'labels' for true labels written as a label folder (the oracle)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["names"] = {str(k): v for k, v in self.names.items()}
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LabelSettings:
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        known["names"] = {int(k): v for k, v in dict(values.get("names") or {}).items()}
        return cls(**known)


@dataclass
class ShardLabels:
    """The boxes of one shard's images, one row per box, and where each came from."""

    image: np.ndarray  # (M,) int32: the image's row within the shard
    boxes: np.ndarray  # (M, 4) float32: cx, cy, w, h normalised to the image
    scores: np.ndarray  # (M,) float32: the teacher's score of the box's class
    cls: np.ndarray  # (M,) int32: the class, in the teacher's class space
    probs: np.ndarray  # (M, C) float32: the teacher's score of every class (C teacher classes)
    unreadable: list[int] = field(default_factory=list)  # rows of images that could not be decoded
    worker: dict[str, Any] = field(default_factory=dict)  # which process on which node and device made it

    @classmethod
    def empty(cls, classes: int) -> ShardLabels:
        return cls(np.zeros(0, np.int32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int32), np.zeros((0, classes), np.float32))

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, image=self.image.astype(np.int32), boxes=self.boxes.astype(np.float32),
                 scores=self.scores.astype(np.float32), cls=self.cls.astype(np.int32),
                 probs=self.probs.astype(np.float32), unreadable=np.asarray(self.unreadable, np.int32),
                 worker=np.asarray(json.dumps(self.worker)))
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> ShardLabels:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["image"], data["boxes"], data["scores"], data["cls"], data["probs"],
                       data["unreadable"].tolist(), json.loads(str(data["worker"])))


@dataclass
class ImageLabels:
    """The teacher's boxes on one image, in the class space asked for (see `LabelStore.per_image`)."""

    boxes: np.ndarray  # (n, 4) cx, cy, w, h normalised
    scores: np.ndarray  # (n,)
    cls: np.ndarray  # (n,)
    probs: np.ndarray  # (n, C)


def images_digest(images: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(images).encode()).hexdigest()


def file_sha1(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class LabelStore:
    """A label folder: its index, its images, and which of its shards are done.

    Args:
        folder: The folder; `create` makes a new one, the constructor opens an existing one.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index_file = self.folder / INDEX
        if not index_file.exists():
            raise LabelStoreError(f"{self.folder} holds no labels ({INDEX} missing): make them with distil label")
        self.index = json.loads(index_file.read_text())
        if self.index.get("format") != FORMAT:
            raise LabelStoreError(f"{self.folder} holds labels of format {self.index.get('format')!r}; this version "
                                  f"reads format {FORMAT}: make them again with distil label into a new folder")
        self.settings = LabelSettings.from_dict(self.index["settings"])
        self.shard_size = int(self.index["shard_size"])
        self.images = (self.folder / IMAGES).read_text().splitlines()

    @classmethod
    def create(cls, folder: str | Path, settings: LabelSettings, images: Sequence[str],
               shard_size: int = 256) -> LabelStore:
        """Open the label folder for these settings and images, writing its index if it is new.

        Raises:
            LabelStoreError: The folder holds labels of other settings or other images (nothing is changed).
        """
        folder = Path(folder)
        images = sorted(str(image) for image in images)
        wanted = {"format": FORMAT, "settings": settings.as_dict(), "shard_size": shard_size, "count": len(images),
                  "images_sha1": images_digest(images)}
        if (folder / INDEX).exists():
            store = cls(folder)
            differing = store.differences(wanted)
            if differing:
                raise LabelStoreError(f"{folder} holds labels made otherwise ({'; '.join(differing)}): give another "
                                      "output folder, or move this one aside to label again")
            return store
        if folder.exists() and any(folder.iterdir()):
            raise LabelStoreError(f"{folder} is not empty and holds no labels: give an empty or new folder")
        atomic.write_text(folder / IMAGES, "\n".join(images) + "\n")
        atomic.write_json(folder / INDEX, wanted)  # last: a folder with an index has its image list
        return cls(folder)

    def differences(self, wanted: Mapping[str, Any]) -> list[str]:
        """How this folder's index differs from ``wanted`` (an index as `create` writes it), in words."""
        found = []
        for key, value in wanted["settings"].items():
            if key != "teacher" and self.index["settings"].get(key) != value:
                found.append(f"{key}: {self.index['settings'].get(key)!r} here, {value!r} asked")
        for key in ("shard_size", "count", "images_sha1"):
            if self.index.get(key) != wanted[key]:
                found.append(f"{key}: {self.index.get(key)!r} here, {wanted[key]!r} asked")
        return found

    # shards ---------------------------------------------------------------------------------------
    @property
    def shards(self) -> int:
        return -(-len(self.images) // self.shard_size)

    def shard_path(self, shard: int) -> Path:
        return self.folder / "shards" / f"{shard:05d}.npz"

    def shard_images(self, shard: int) -> list[str]:
        return self.images[shard * self.shard_size:(shard + 1) * self.shard_size]

    def pending(self) -> list[int]:
        """The shards not yet written, in order."""
        return [k for k in range(self.shards) if not self.shard_path(k).exists()]

    @property
    def complete(self) -> bool:
        return not self.pending()

    def write_shard(self, shard: int, labels: ShardLabels) -> Path:
        """Write one shard whole (see the module docstring)."""
        return atomic.write_bytes(self.shard_path(shard), labels.to_bytes())

    def read_shard(self, shard: int) -> ShardLabels:
        return ShardLabels.from_file(self.shard_path(shard))

    # reading --------------------------------------------------------------------------------------
    def per_image(self, conf: float | None = None, classes: np.ndarray | None = None) -> dict[str, ImageLabels]:
        """Image -> its boxes, from score ``conf`` up, in the class space ``classes`` maps to.

        Args:
            conf: Keep boxes from this score (at least the folder's own floor); None: the floor.
            classes: For each teacher class, its class in the dataset, or -1 (`teacher_signals.class_map`); boxes of
                classes mapped to -1 are dropped, and ``probs`` keeps one column per dataset class. None: the teacher's.

        Raises:
            LabelStoreError: Shards are missing, or ``conf`` is below the floor the labels were made with.
        """
        if not self.complete:
            raise LabelStoreError(f"{self.folder} is missing {len(self.pending())} of {self.shards} shards: run the "
                                  "same distil label command again to finish it")
        floor = self.settings.conf
        if conf is not None and conf < floor - 1e-9:
            raise LabelStoreError(f"distill_det_conf={conf} is below the score {floor} the labels in {self.folder} "
                                  "were kept from: raise it, or label again with a lower --conf")
        conf = floor if conf is None else conf
        columns, mapped = None, None
        if classes is not None:
            classes = np.asarray(classes)
            wanted = int(classes.max()) + 1 if (classes >= 0).any() else 0
            columns = np.array([int(np.flatnonzero(classes == d)[0]) for d in range(wanted)], dtype=np.int64)
            mapped = classes
        out: dict[str, ImageLabels] = {}
        for shard in range(self.shards):
            labels = self.read_shard(shard)
            keep = labels.scores >= conf
            if mapped is not None:
                target = np.where(labels.cls < len(mapped), mapped[labels.cls.clip(0, len(mapped) - 1)], -1)
                keep &= target >= 0
            for row, image in enumerate(self.shard_images(shard)):
                rows = keep & (labels.image == row)
                cls = labels.cls[rows] if mapped is None else target[rows]
                probs = labels.probs[rows] if columns is None else labels.probs[rows][:, columns]
                out[image] = ImageLabels(labels.boxes[rows], labels.scores[rows], cls.astype(np.int64), probs)
        return out

    def summary(self) -> dict[str, Any]:
        """What these labels are and what making them cost (the workers' seconds, summed over shards)."""
        shards = [self.read_shard(k) for k in range(self.shards) if self.shard_path(k).exists()]
        spent = {key: round(sum(float(s.worker.get(key, 0)) for s in shards), 1) for key in ("wall_s", "cpu_s")}
        return {"folder": str(self.folder), **{k: v for k, v in self.settings.as_dict().items() if k != "names"},
                "images": len(self.images), "boxes": sum(len(s.scores) for s in shards), "shards": self.shards,
                "unreadable": sum(len(s.unreadable) for s in shards), **spent}
