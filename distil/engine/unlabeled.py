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
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler
from ultralytics.data.build import build_dataloader
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import IMG_FORMATS, check_image
from ultralytics.utils import LOCAL_RANK, LOGGER


class UnlabeledImagesError(ValueError):
    """The unlabeled images cannot be used; the message names the source and what to do."""


def unlabeled_images(source: str | Path) -> list[str]:
    """The image files of a folder (searched recursively) or of a ``.txt`` list (one path per line).

    Raises:
        UnlabeledImagesError: The source is missing, lists missing files, or holds no image.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise UnlabeledImagesError(f"distill_unlabeled={str(source)!r} does not exist: give a folder of images or a "
                                   ".txt file listing image paths")
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    elif path.suffix == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        files = [str((path.parent / line).resolve()) if not Path(line).is_absolute() else line for line in lines]
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            raise UnlabeledImagesError(f"distill_unlabeled={str(source)!r} lists {len(missing)} missing file(s), e.g. "
                                       f"{missing[0]}")
        files = [f for f in files if Path(f).suffix[1:].lower() in IMG_FORMATS]
    else:
        raise UnlabeledImagesError(f"distill_unlabeled={str(source)!r} is neither a folder nor a .txt list of image "
                                   "paths")
    if not files:
        formats = ", ".join(sorted(IMG_FORMATS))
        raise UnlabeledImagesError(f"distill_unlabeled={str(source)!r} holds no image (looked for {formats})")
    return files


def read_label_rows(path: str | Path) -> np.ndarray:
    """The rows (class, x, y, w, h) of a YOLO label file; an empty file (the teacher saw nothing) is no rows,
    without the warning ``np.loadtxt`` prints for each of them."""
    return np.array(Path(path).read_text().split(), dtype=np.float32).reshape(-1, 5)


class UnlabeledDataset(YOLODataset):
    """A YOLO training dataset of images without labels: no label file beside them is read, no cache written.

    Args:
        pseudo_labels: Image -> label file the teacher wrote for it (offline response distillation), or None.
    """

    def __init__(self, *args, pseudo_labels: dict[str, str] | None = None, **kwargs) -> None:
        self.pseudo_labels = pseudo_labels
        super().__init__(*args, **kwargs)

    def get_img_files(self, img_path) -> list[str]:
        return unlabeled_images(img_path)

    def get_labels(self) -> list[dict]:
        """An empty label per readable image (or the teacher's, offline); unreadable ones are skipped."""
        labels, skipped = [], []
        for im_file in self.im_files:
            try:
                _, shape = check_image(im_file)
            except Exception:  # any failure to read the header means a damaged file
                skipped.append(im_file)
                continue
            rows = np.zeros((0, 5), np.float32)
            if self.pseudo_labels is not None and im_file in self.pseudo_labels:
                rows = read_label_rows(self.pseudo_labels[im_file])
            labels.append({"im_file": im_file, "shape": shape, "cls": rows[:, :1], "bboxes": rows[:, 1:],
                           "segments": [], "keypoints": None, "normalized": True, "bbox_format": "xywh"})
        if skipped:
            LOGGER.warning(f"distil: {len(skipped)} unreadable unlabeled image(s) skipped, e.g. {skipped[0]}")
        if not labels:
            raise UnlabeledImagesError(f"no readable image among the {len(self.im_files)} unlabeled files")
        self.im_files = [label["im_file"] for label in labels]
        return labels


class UnlabeledBatches:
    """An endless supply of augmented unlabeled batches, built like the trainer's own training loader.

    Args:
        trainer: The Ultralytics trainer (its args, batch size, stride, device, data).
        source: A folder of images or a ``.txt`` list.
        ratio: Unlabeled images per labeled image in a batch.
        prepare: Called on the dataset once built (the trainer's own dataset preparation, e.g. ``enhance``).
        pseudo_labels: Image -> label file the teacher wrote (offline detections), if any.
        rank: The process's rank; under DDP each process draws its own share of the images.
    """

    def __init__(self, trainer, source: str, ratio: float, prepare: Callable[[YOLODataset], None],
                 pseudo_labels: dict[str, str] | None = None, rank: int = LOCAL_RANK) -> None:
        self.batch = max(1, round(trainer.batch_size * ratio))
        self.dataset = UnlabeledDataset(
            img_path=source, imgsz=trainer.args.imgsz, batch_size=self.batch, augment=True, hyp=trainer.args,
            rect=False, cache=None, single_cls=trainer.args.single_cls, stride=int(trainer.stride), pad=0.0,
            prefix="unlabeled: ", task="detect", classes=None, data=trainer.data, fraction=1.0,
            pseudo_labels=pseudo_labels)
        prepare(self.dataset)
        self.loader = build_dataloader(self.dataset, self.batch, trainer.args.workers, shuffle=True, rank=rank,
                                       device=trainer.device)
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
            if isinstance(self.loader.sampler, DistributedSampler):  # under DDP its order is seeded by the pass
                self.loader.sampler.set_epoch(self.passes)
            self.iterator = iter(self.loader)
            return next(self.iterator)

    def close_mosaic(self, hyp) -> None:
        """Follow the labeled loader into its last epochs without mosaic."""
        self.dataset.mosaic = False
        self.dataset.close_mosaic(hyp=hyp)
        self.loader.reset()
        self.iterator = iter(self.loader)


def append_images(labeled: dict, unlabeled: dict) -> dict:
    """The labeled batch with the unlabeled images after its own; labels and counts stay the labeled ones'.

    ``n_labeled`` in the result says how many images at the start carry labels. Labels the teacher wrote
    for the unlabeled images (offline) come as ``pseudo_batch_idx``, ``pseudo_cls``, ``pseudo_bboxes``,
    their image indices counted in the combined batch.
    """
    combined = dict(labeled)
    combined["img"] = torch.cat([labeled["img"], unlabeled["img"]])
    combined["im_file"] = [*labeled["im_file"], *unlabeled["im_file"]]
    combined["n_labeled"] = len(labeled["img"])
    combined["pseudo_batch_idx"] = unlabeled["batch_idx"] + len(labeled["img"])
    combined["pseudo_cls"] = unlabeled["cls"]
    combined["pseudo_bboxes"] = unlabeled["bboxes"]
    return combined
