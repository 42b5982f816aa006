"""Images without labels, mixed into training batches for the teacher to teach on.

How they are mixed: every training batch of ``batch`` labeled images gets ``round(batch *
distill_unlabeled_ratio)`` unlabeled images appended, drawn from their own shuffled, endlessly
repeating loader. An epoch is still one pass over the labeled images, so they are seen exactly as
often as without unlabeled data; the unlabeled ones cycle at their own pace. Both loaders apply the
same Ultralytics augmentation (mosaic, flips, HSV, scale, ``close_mosaic``) and the same ``enhance``
pipeline, and the teacher sees exactly the augmented images the student sees.

Unlabeled images never act as background: the ground-truth detection loss is computed on the labeled
images of a batch only (`distil.engine.model`). They receive the distillation terms alone: the
feature loss (under ``distill_mask: teacher`` where the teacher sees objects) and the teacher's
detections as targets. Label files that happen to sit beside them are never read.

Offline, the teacher's stored boxes are these images' labels, so Ultralytics' augmentation moves them with
the image. Each box's score and class vector ride in its ``cls`` row (``[class, score, p_0 .. p_C-1]``):
every transform on the path (mosaic, random perspective, flips, letterbox, ``close_mosaic``'s, the
collate function) filters or concatenates ``cls`` by row beside the boxes, so a box that is cropped away
takes its score with it. `append_images` splits the row again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler
from ultralytics.data.build import build_dataloader
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import IMG_FORMATS, check_image
from ultralytics.utils import LOCAL_RANK, LOGGER

if TYPE_CHECKING:
    from distil.engine.labeling.store import ImageLabels


class UnlabeledImagesError(ValueError):
    """The unlabeled images cannot be used; the message names the source and what to do."""


def unlabeled_images(source: str | Path, key: str = "distill_unlabeled") -> list[str]:
    """The image files of a folder (searched recursively) or of a ``.txt`` list (one path per line).

    Raises:
        UnlabeledImagesError: The source is missing, lists missing files, or holds no image.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise UnlabeledImagesError(f"{key}={str(source)!r} does not exist: give a folder of images or a "
                                   ".txt file listing image paths")
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    elif path.suffix == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        files = [str((path.parent / line).resolve()) if not Path(line).is_absolute() else line for line in lines]
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            raise UnlabeledImagesError(f"{key}={str(source)!r} lists {len(missing)} missing file(s), e.g. "
                                       f"{missing[0]}")
        files = [f for f in files if Path(f).suffix[1:].lower() in IMG_FORMATS]
    else:
        raise UnlabeledImagesError(f"{key}={str(source)!r} is neither a folder nor a .txt list of image "
                                   "paths")
    if not files:
        formats = ", ".join(sorted(IMG_FORMATS))
        raise UnlabeledImagesError(f"{key}={str(source)!r} holds no image (looked for {formats})")
    return files


class UnlabeledDataset(YOLODataset):
    """A YOLO training dataset of images without labels: no label file beside them is read, no cache written.

    Args:
        pseudo_labels: Image (resolved path) -> the teacher's stored boxes on it (offline distillation), or None.
        nc: The dataset's number of classes (the width of each box's class vector).
    """

    def __init__(self, *args, pseudo_labels: Mapping[str, ImageLabels] | None = None, nc: int = 0,
                 **kwargs) -> None:
        self.pseudo_labels = pseudo_labels
        self.row_width = 1 if pseudo_labels is None else 2 + nc  # class, score, class vector
        super().__init__(*args, **kwargs)

    def get_img_files(self, img_path) -> list[str]:
        return unlabeled_images(img_path)

    def get_labels(self) -> list[dict]:
        """An empty label per readable image (or the teacher's boxes, offline); unreadable ones are skipped."""
        labels, skipped = [], []
        for im_file in self.im_files:
            try:
                _, shape = check_image(im_file)
            except Exception:  # any failure to read the header means a damaged file
                skipped.append(im_file)
                continue
            cls, boxes = np.zeros((0, self.row_width), np.float32), np.zeros((0, 4), np.float32)
            found = self.pseudo_labels.get(str(Path(im_file).resolve())) if self.pseudo_labels is not None else None
            if found is not None:
                cls = np.concatenate([found.cls[:, None], found.scores[:, None], found.probs], 1).astype(np.float32)
                boxes = found.boxes.astype(np.float32)
            labels.append({"im_file": im_file, "shape": shape, "cls": cls, "bboxes": boxes,
                           "segments": [], "keypoints": None, "normalized": True, "bbox_format": "xywh"})
        if skipped:
            LOGGER.warning(f"distil: {len(skipped)} unreadable unlabeled image(s) skipped, e.g. {skipped[0]}")
        if not labels:
            raise UnlabeledImagesError(f"no readable image among the {len(self.im_files)} unlabeled files")
        self.im_files = [label["im_file"] for label in labels]
        return labels

    def __getitem__(self, index: int) -> dict:
        """An augmented image and its boxes; an image left without boxes keeps the row width of the others
        (Ultralytics' formatting gives it one column), so a batch's rows concatenate."""
        item = super().__getitem__(index)
        if len(item["cls"]) == 0 and item["cls"].shape[-1] != self.row_width:
            item["cls"] = item["cls"].new_zeros((0, self.row_width))
        return item


class UnlabeledBatches:
    """An endless supply of augmented unlabeled batches, built like the trainer's own training loader.

    Args:
        trainer: The Ultralytics trainer (its args, batch size, stride, device, data).
        source: A folder of images or a ``.txt`` list.
        ratio: Unlabeled images per labeled image in a batch.
        prepare: Called on the dataset once built (the trainer's own dataset preparation, e.g. ``enhance``).
        pseudo_labels: Image -> the teacher's stored boxes on it (offline detections), if any.
        rank: The process's rank; under DDP each process draws its own share of the images.
    """

    def __init__(self, trainer, source: str, ratio: float, prepare: Callable[[YOLODataset], None],
                 pseudo_labels: Mapping[str, ImageLabels] | None = None, rank: int = LOCAL_RANK) -> None:
        self.batch = max(1, round(trainer.batch_size * ratio))
        self.dataset = UnlabeledDataset(
            img_path=source, imgsz=trainer.args.imgsz, batch_size=self.batch, augment=True, hyp=trainer.args,
            rect=False, cache=None, single_cls=trainer.args.single_cls, stride=int(trainer.stride), pad=0.0,
            prefix="unlabeled: ", task="detect", classes=None, data=trainer.data, fraction=1.0,
            pseudo_labels=pseudo_labels, nc=len(trainer.data["names"]))
        prepare(self.dataset)
        self.loader = build_dataloader(self.dataset, self.batch, trainer.args.workers, shuffle=True, rank=rank,
                                       device=trainer.device)
        reshuffle_every_pass(self.loader)
        self.passes = 0
        self.iterator = iter(self.loader)

    def __len__(self) -> int:
        return len(self.dataset)

    def next(self) -> dict:
        """The next batch; a pass over the images ends, the next one starts (reshuffled)."""
        try:
            return next(self.iterator)
        except StopIteration:
            self.passes += 1
            self.iterator = iter(self.loader)
            return next(self.iterator)

    def close_mosaic(self, hyp) -> None:
        """Follow the labeled loader into its last epochs without mosaic."""
        self.dataset.mosaic = False
        self.dataset.close_mosaic(hyp=hyp)
        self.loader.reset()
        self.iterator = iter(self.loader)


class EveryPassReshuffled(DistributedSampler):
    """A `DistributedSampler` that draws a new order for every pass by itself (its epoch advances as a pass starts).

    Why not ``set_epoch`` between passes: Ultralytics' loader keeps its workers and prefetches, so the next pass's
    indices are drawn before the current pass has ended; a ``set_epoch`` call then comes one pass late, and with
    workers every pass repeated the first one's order.
    """

    def __iter__(self):
        order = super().__iter__()
        self.set_epoch(self.epoch + 1)
        return order


def reshuffle_every_pass(loader) -> None:
    """Under DDP, give Ultralytics' endless loader an `EveryPassReshuffled` sampler (before its first pass)."""
    batches = loader.batch_sampler.sampler  # Ultralytics' _RepeatSampler wraps the loader's BatchSampler
    old = getattr(batches, "sampler", None)
    if isinstance(old, DistributedSampler) and not isinstance(old, EveryPassReshuffled):
        batches.sampler = EveryPassReshuffled(old.dataset, num_replicas=old.num_replicas, rank=old.rank,
                                              shuffle=old.shuffle, seed=old.seed, drop_last=old.drop_last)


def append_images(labeled: dict, unlabeled: dict) -> dict:
    """The labeled batch with the unlabeled images after its own; labels and counts stay the labeled ones'.

    ``n_labeled`` in the result says how many images at the start carry labels. Labels the teacher wrote
    for the unlabeled images (offline) come as ``pseudo_batch_idx``, ``pseudo_cls``, ``pseudo_bboxes``,
    ``pseudo_scores`` and ``pseudo_probs`` (the class vectors), their image indices counted in the combined batch.
    """
    combined = dict(labeled)
    combined["img"] = torch.cat([labeled["img"], unlabeled["img"]])
    combined["im_file"] = [*labeled["im_file"], *unlabeled["im_file"]]
    combined["n_labeled"] = len(labeled["img"])
    combined["pseudo_batch_idx"] = unlabeled["batch_idx"] + len(labeled["img"])
    rows = unlabeled["cls"]
    combined["pseudo_cls"] = rows[:, :1]
    combined["pseudo_bboxes"] = unlabeled["bboxes"]
    if rows.shape[1] > 1:  # offline: each box's score and class vector (see UnlabeledDataset)
        combined["pseudo_scores"], combined["pseudo_probs"] = rows[:, 1], rows[:, 2:]
    return combined
