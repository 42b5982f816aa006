"""The labels of a dataset checked before training, as Ultralytics will read them, so that what it drops is said.

Ultralytics drops a whole image (its valid boxes too) when one line of its label file is wrong: a class id
beyond ``names``, a coordinate outside 0-1, a row of the wrong length; or when the image cannot be read. It says
so in one line among many and trains on. Here every image of the splits a run uses goes through Ultralytics' own
check (``verify_image_label``), so the report names exactly what it will drop, how many boxes with it, and why;
the run says it before training and again at its end, records it in its manifest, and with
``strict_labels: true`` refuses to start.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ultralytics.data.utils import IMG_FORMATS, check_det_dataset, img2label_paths, verify_image_label

SHOWN = 5  # files named in a message; the rest counted


@dataclass
class Dropped:
    """An image Ultralytics will leave out of training, and why."""

    image: str
    reason: str
    boxes: int  # boxes of its label file lost with it


@dataclass
class LabelReport:
    """What the check found in one split."""

    split: str
    images: int
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def boxes_lost(self) -> int:
        return sum(d.boxes for d in self.dropped)

    def as_dict(self) -> dict:
        return {"split": self.split, "images": self.images, "dropped_images": len(self.dropped),
                "dropped_boxes": self.boxes_lost, "first": [vars(d) for d in self.dropped[:SHOWN]]}

    def message(self) -> str:
        """One paragraph: how many, why, the first files."""
        lines = [f"{len(self.dropped)} of the {self.images} {self.split} images will be left out of training by "
                 f"Ultralytics, with {self.boxes_lost} boxes, because of errors in them or their labels:"]
        lines += [f"  {d.image}: {d.reason}" for d in self.dropped[:SHOWN]]
        if len(self.dropped) > SHOWN:
            lines.append(f"  ... and {len(self.dropped) - SHOWN} more")
        return "\n".join(lines)


def split_files(entry: str | list[str]) -> list[str]:
    """The image files of a split as Ultralytics lists them: folders searched recursively, ``.txt`` lists read."""
    files = []
    for item in entry if isinstance(entry, list) else [entry]:
        path = Path(item)
        if path.is_dir():
            files += [str(p) for p in sorted(path.rglob("*")) if p.suffix[1:].lower() in IMG_FORMATS]
        elif path.suffix == ".txt" and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            files += [str((path.parent / line).resolve()) if not Path(line).is_absolute() else line for line in lines]
    return files


def reason_of(message: str, image: str) -> str:
    """Ultralytics' message for a dropped image, said for a person (its HEIC fallback's "No module named 'pi_heif'"
    is what any file that is not an image gets)."""
    text = message.split("ignoring corrupt image/label:", 1)[-1].strip()
    unreadable = "pi_heif" in text or "cannot identify image file" in text or "Invalid image format" in text
    if unreadable and Path(image).suffix.lower() in {".heic", ".heif"}:
        return "a HEIC/HEIF image, which this installation cannot read (pip install pi-heif)"
    if unreadable:
        return "not an image (or a damaged one)"
    return text


def boxes_in(label_file: str) -> int:
    path = Path(label_file)
    return sum(1 for line in path.read_text(errors="replace").splitlines() if line.strip()) if path.exists() else 0


def check_labels(data_yaml: str | Path, splits: tuple[str, ...] = ("train", "val")) -> list[LabelReport]:
    """Check every image and label file of ``splits`` as Ultralytics will; one report per split."""
    data = check_det_dataset(str(data_yaml))
    classes = len(data["names"])
    reports = []
    for split in splits:
        if not data.get(split):
            continue
        images = split_files(data[split])
        labels = img2label_paths(images)
        jobs = [(image, label, "", False, classes, 0, 0, False) for image, label in zip(images, labels)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(verify_image_label, jobs))
        report = LabelReport(split, len(images))
        for (image, label, *_), result in zip(jobs, results):
            if result[8]:  # Ultralytics' "corrupt" count: the image is dropped
                report.dropped.append(Dropped(image, reason_of(result[9], image), boxes_in(label)))
        reports.append(report)
    return reports
