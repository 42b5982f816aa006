"""The embedded demo dataset: deterministic scenes written as a YOLO detection dataset.

Nothing can be downloaded here, so the project makes its own data, and makes it hard enough that a
few hundred labels are not enough, as in the situation distillation is for. Each image is a textured
background with up to ``max_objects`` objects of six classes that differ **only in shape**, in pairs
that are close at small sizes (a disc and a hexagon, a square and a rhombus, a triangle and a
five-pointed star). Colour says nothing about the class: every object has a random hue, a shading
gradient and, for some, stripes. Objects are small (a radius of 4-14% of the image side), may
overlap and hide each other, and share the scene with decoys that are not objects (irregular blobs,
elongated ellipses, bars) painted the same way. Some images hold no object, and a known fraction
carries one realistic capture fault (colour cast, under/over-exposure, low contrast or haze, sensor
noise, blur), recorded in ``dataset.json`` so that the enhancement pipeline can be measured
against it.

Every image is drawn from its own random generator seeded by ``(seed, split, index)``: the same
arguments always give the same bytes, whatever else was generated before. The splits' seeds are
disjoint, so the ``unlabeled`` split holds images that no model was trained on with labels: the
teacher and the student train on the first images of ``train``. Its true labels are written too
(``labels/unlabeled``), for the study's oracle only; distillation never reads them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from filelock import FileLock

from distil.data.yolo import load_images, split_images

CLASS_NAMES = ("disc", "hexagon", "square", "rhombus", "triangle", "star")
FAULTS = ("colour_cast", "underexposed", "overexposed", "low_contrast", "noise", "blur")
SPLITS = {"train": 0, "val": 1, "test": 2, "unlabeled": 3}
PARALLEL_FROM = 500  # images from which generation runs in parallel


@dataclass(frozen=True)
class DemoSettings:
    """What a demo dataset was generated with; a folder is reused only for the same settings.

    Attributes:
        n_train: Training images.
        n_val: Validation images.
        imgsz: Side of the square images in pixels.
        seed: Seed of the whole dataset.
        fault_fraction: Share of images that carry one capture fault.
        empty_fraction: Share of images without any object.
        max_objects: Most objects in one image.
        n_test: Test images (a third split, for results reported after tuning on ``val``).
        n_unlabeled: Images of the ``unlabeled`` split (for distillation beyond the labels).
    """

    n_train: int = 400
    n_val: int = 100
    imgsz: int = 160
    seed: int = 0
    fault_fraction: float = 0.5
    empty_fraction: float = 0.05
    max_objects: int = 10
    n_test: int = 0
    n_unlabeled: int = 0


@dataclass(frozen=True)
class SceneObject:
    """One labelled object: class index and pixel box (x1, y1, x2, y2)."""

    cls: int
    box: tuple[float, float, float, float]


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour blotches + fine grain + optional stripes, in muted tones."""
    base_colour = rng.uniform(60, 190, size=3)
    cells = int(rng.integers(3, 8))
    blotches = cv2.resize(rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_CUBIC)
    grain_cells = max(size // 4, 2)
    grain = cv2.resize(rng.uniform(-1, 1, (grain_cells, grain_cells, 1)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_LINEAR)[..., None]
    image = base_colour + 45 * blotches + 14 * grain
    if rng.random() < 0.5:  # wood-grain or fabric-like stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 24) * size / 160
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        image += rng.uniform(6, 18) * np.sin(phase)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A BGR colour of any hue, fairly saturated and bright: colour carries no class information."""
    hsv = np.array([[[rng.integers(0, 180), rng.uniform(90, 230), rng.uniform(110, 240)]]])
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def regular_polygon(rng: np.random.Generator, sides: int, centre: np.ndarray, radius: float,
                    radii: tuple[float, ...] = (1.0,), stretch: float = 1.0) -> np.ndarray:
    """Vertices of a randomly rotated polygon; ``radii`` alternate (a star), ``stretch`` scales one axis."""
    angles = rng.uniform(0, 2 * np.pi) + np.arange(sides) * 2 * np.pi / sides
    scale = np.array([radii[k % len(radii)] for k in range(sides)])[:, None]
    points = np.stack([np.cos(angles), np.sin(angles) / stretch], axis=1) * scale
    turn = rng.uniform(0, np.pi)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return centre + radius * points @ rotation.T


def shape_polygon(rng: np.random.Generator, cls: int, centre: np.ndarray, radius: float) -> np.ndarray:
    """Vertices of the class's shape, randomly rotated; shape (K, 2)."""
    name = CLASS_NAMES[cls]
    if name == "disc":
        return regular_polygon(rng, 48, centre, radius)
    if name == "hexagon":
        return regular_polygon(rng, 6, centre, radius)
    if name == "square":
        return regular_polygon(rng, 4, centre, radius)
    if name == "rhombus":  # a square stretched along one diagonal: angles of about 65 and 115 degrees
        return regular_polygon(rng, 4, centre, radius * 1.15, stretch=1.6)
    if name == "triangle":
        return regular_polygon(rng, 3, centre, radius)
    return regular_polygon(rng, 10, centre, radius, radii=(1.0, 0.5))  # star


def decoy_polygon(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    """A shape that is no class: an irregular blob, an elongated ellipse or a bar."""
    kind = rng.integers(3)
    if kind == 0:
        sides = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, sides))
        lengths = rng.uniform(0.45, 1.0, sides)
        return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1) * lengths[:, None]
    if kind == 1:
        return regular_polygon(rng, 40, centre, radius, stretch=rng.uniform(2.2, 3.5))
    return regular_polygon(rng, 4, centre, radius, stretch=rng.uniform(4.0, 7.0))


def paint_polygon(image: np.ndarray, points: np.ndarray, colour: np.ndarray, rng: np.random.Generator) -> None:
    """Fill a polygon in place: a shaded colour (a light gradient), stripes on some, and a darker rim."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    x1, y1 = np.floor(points.min(0)).astype(int).clip(0)
    x2, y2 = (np.ceil(points.max(0)).astype(int) + 1).clip(max=image.shape[1])
    if x2 <= x1 or y2 <= y1:
        return
    crop = (slice(y1, y2), slice(x1, x2))
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (xx - xx.mean()) * np.cos(direction) + (yy - yy.mean()) * np.sin(direction)
    ramp /= max(float(np.abs(ramp).max()), 1.0)
    shade = colour * (1.0 + 0.3 * ramp[..., None])
    if rng.random() < 0.35:  # a striped fill in a second colour
        period = rng.uniform(3, 7) * image.shape[0] / 160
        stripes = np.sin((xx * np.cos(direction + 1) + yy * np.sin(direction + 1)) * 2 * np.pi / period) > 0
        shade = np.where(stripes[..., None], shade, random_colour(rng) * (1.0 + 0.3 * ramp[..., None]))
    alpha = mask[crop].astype(np.float32)[..., None] / 255
    region = image[crop].astype(np.float32)
    image[crop] = np.clip(region * (1 - alpha) + shade * alpha, 0, 255).astype(np.uint8)
    cv2.polylines(image, [np.round(points).astype(np.int32)], True, (colour * 0.55).tolist(), 1, cv2.LINE_AA)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def render_scene(rng: np.random.Generator, size: int, n_objects: int) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw one scene: decoys, then up to ``n_objects`` objects, each overlapping the others by IoU <= 0.3.

    Objects drawn later may hide part of earlier ones (their boxes keep the whole shape, as an
    annotator who knows the shape would draw them).
    """
    image = textured_background(rng, size)
    for _ in range(int(rng.integers(0, 5))):
        radius = size * rng.uniform(0.04, 0.14)
        centre = rng.uniform(radius, size - radius, 2)
        paint_polygon(image, decoy_polygon(rng, centre, radius), random_colour(rng), rng)
    objects: list[SceneObject] = []
    for _ in range(n_objects * 10):  # rejection sampling: a few tries per wanted object
        if len(objects) == n_objects:
            break
        cls = int(rng.integers(len(CLASS_NAMES)))
        radius = size * rng.uniform(0.04, 0.14)
        centre = rng.uniform(radius + 1, size - radius - 1, 2)
        points = shape_polygon(rng, cls, centre, radius)
        box = (*points.min(0).clip(0, size), *points.max(0).clip(0, size))
        if any(box_iou(box, other.box) > 0.3 for other in objects):
            continue
        paint_polygon(image, points, random_colour(rng), rng)
        objects.append(SceneObject(cls, tuple(float(v) for v in box)))
    return image, objects


def apply_fault(image: np.ndarray, fault: str, rng: np.random.Generator) -> np.ndarray:
    """Degrade an image the way a poor camera or poor light would."""
    x = image.astype(np.float32) / 255
    if fault == "colour_cast":
        gains = np.ones(3, np.float32)
        warm = rng.random() < 0.5  # warm (tungsten) or cool (shade) light
        gains[2 if warm else 0] = rng.uniform(1.25, 1.5)
        gains[0 if warm else 2] = rng.uniform(0.55, 0.75)
        x = x * gains
    elif fault == "underexposed":
        x = rng.uniform(0.3, 0.5) * x ** rng.uniform(1.3, 1.8)
    elif fault == "overexposed":
        x = 1 - rng.uniform(0.3, 0.5) * (1 - x) ** rng.uniform(1.3, 1.8)
    elif fault == "low_contrast":
        haze = rng.uniform(0.55, 0.8)
        alpha = rng.uniform(0.3, 0.5)
        x = alpha * x + (1 - alpha) * haze
    elif fault == "noise":
        x = x + rng.normal(0, rng.uniform(0.06, 0.12), x.shape).astype(np.float32)
    elif fault == "blur":
        k = int(rng.choice([5, 7, 9])) * max(1, image.shape[0] // 320)
        x = cv2.GaussianBlur(x, (k | 1, k | 1), 0)
    elif fault != "none":
        raise ValueError(f"unknown fault {fault!r}; expected one of {('none', *FAULTS)}")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def generate_image(settings: DemoSettings, split: str, index: int) -> tuple[np.ndarray, list[SceneObject], str]:
    """The ``index``-th image of ``split``: its pixels, objects and fault, fully determined by the settings."""
    rng = np.random.default_rng([settings.seed, SPLITS[split], index])
    empty = rng.random() < settings.empty_fraction
    n_objects = 0 if empty else int(rng.integers(1, settings.max_objects + 1))
    image, objects = render_scene(rng, settings.imgsz, n_objects)
    fault = str(rng.choice(FAULTS)) if rng.random() < settings.fault_fraction else "none"
    return apply_fault(image, fault, rng), objects, fault


def yolo_label_lines(objects: list[SceneObject], size: int) -> list[str]:
    """Objects as YOLO label lines: ``cls cx cy w h``, normalised to the image size."""
    lines = []
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        lines.append(f"{obj.cls} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                     f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}")
    return lines


def write_image(root: Path, settings: DemoSettings, split: str, index: int) -> tuple[str, dict]:
    """Draw one image, write it and its labels; its entry in ``dataset.json``."""
    image, objects, fault = generate_image(settings, split, index)
    stem = f"{split}_{index:05d}"
    cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    lines = yolo_label_lines(objects, settings.imgsz)
    (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return f"{split}/{stem}.jpg", {"fault": fault, "objects": len(objects)}


def generation_workers(n_images: int) -> int:
    """Processes worth starting for ``n_images`` (each spends seconds importing before it draws anything)."""
    return min(os.cpu_count() or 1, 16) if n_images >= PARALLEL_FROM else 1


def read_dataset_record(root: Path) -> dict | None:
    """The ``dataset.json`` (settings and per-image faults) of an existing demo dataset, or None."""
    path = root / "dataset.json"
    return json.loads(path.read_text()) if path.exists() else None


MAIN_GUARD_NEEDED = (
    "a process drawing the demo images stopped. They are drawn in spawned processes, which import the calling "
    "script again: in a script, call distil under `if __name__ == \"__main__\":` (notebooks need nothing)")


def make_demo_dataset(root: str | Path, settings: DemoSettings | None = None, overwrite: bool = False,
                      workers: int | None = None, **fields) -> Path:
    """Write the demo dataset under ``root`` in YOLO layout and return its ``data.yaml``.

    A folder that already holds a dataset made with the same settings is reused as is. A folder
    that holds anything else is never overwritten unless ``overwrite=True`` is given. The images are
    drawn in ``<root>.drawing`` and moved to ``root`` once all are there, so a drawing interrupted
    (Ctrl-C, a killed process) is simply started again by the next call. A second process asking for the
    same folder while the first draws waits for it (a lock in ``<root's parent>/.locks``) and reuses its dataset.

    Args:
        root: Folder for ``images/``, ``labels/``, ``data.yaml`` and ``dataset.json``.
        settings: What to generate (`DemoSettings`); its fields may also be given as keywords,
            e.g. ``make_demo_dataset(root, n_train=16, n_val=8, imgsz=64)``.
        overwrite: Replace a folder that holds something else.
        workers: Processes that draw the images (the same bytes whatever their number); None: one per CPU
            core for a large dataset, where starting them pays (at 640 px an image takes about 0.1 s).

    Returns:
        Path of ``data.yaml`` (its ``train``/``val`` paths are absolute).

    Raises:
        TypeError: A keyword that is not a `DemoSettings` field.
        ValueError: Settings that cannot make a usable dataset.
    """
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(DemoSettings)})
    if unknown:
        raise TypeError(f"make_demo_dataset: unknown setting {', '.join(unknown)}; DemoSettings has "
                        f"{', '.join(f.name for f in dataclasses.fields(DemoSettings))}")
    settings = dataclasses.replace(settings or DemoSettings(), **fields)
    check_settings(settings)
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a drawing process importing a script without a main guard: without this it would wait for the lock
        # its parent holds, forever; failing here breaks the parent's pool, which then names the fix
        raise RuntimeError(MAIN_GUARD_NEEDED)
    root = Path(root).expanduser().resolve()
    locks = root.parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # two runs started at once (two study runs in a new checkout) would clear each other's <root>.drawing:
    # the second waits here, then finds the first one's dataset and reuses it. Laid out as distil.runs.FolderLock
    # lays out its locks; not that class, which refuses instead of waiting and sits in a layer above this one
    with FileLock(locks / f"{root.name}.lock"):
        return draw_or_reuse(root, settings, overwrite, workers)


def draw_or_reuse(root: Path, settings: DemoSettings, overwrite: bool, workers: int | None) -> Path:
    """`make_demo_dataset` under its lock: reuse, refuse or draw the dataset in ``root``."""
    manifest = read_dataset_record(root)
    if manifest is not None and manifest.get("settings") == asdict(settings) and (root / "data.yaml").exists():
        return root / "data.yaml"
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            found = "a demo dataset made with other settings" if manifest else "other files"
            raise FileExistsError(
                f"{root} already holds {found}; choose another folder or pass overwrite=True to replace it")
        shutil.rmtree(root)

    counts = {"train": settings.n_train, "val": settings.n_val, "test": settings.n_test,
              "unlabeled": settings.n_unlabeled}
    jobs = [(split, index) for split, count in counts.items() for index in range(count)]
    # drawn beside root and moved in whole: an interrupted drawing leaves no half dataset in root to refuse later
    drawing = root.with_name(root.name + ".drawing")
    shutil.rmtree(drawing, ignore_errors=True)
    for split in {split for split, _ in jobs}:
        (drawing / "images" / split).mkdir(parents=True, exist_ok=True)
        (drawing / "labels" / split).mkdir(parents=True, exist_ok=True)
    write = functools.partial(write_image, drawing, settings)
    workers = generation_workers(len(jobs)) if workers is None else workers
    if workers > 1:  # spawned, not forked: OpenCV's thread pool does not survive a fork
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                written = list(pool.map(write, *zip(*jobs), chunksize=32))
        except BrokenProcessPool as error:  # most often: a script without a main guard, imported again by each
            raise RuntimeError(MAIN_GUARD_NEEDED) from error
    else:
        written = [write(split, index) for split, index in jobs]
    images = dict(written)

    data_yaml = root / "data.yaml"
    data = {
        "path": str(root),
        "train": str(root / "images" / "train"),
        "val": str(root / "images" / "val"),
        **({"test": str(root / "images" / "test")} if settings.n_test else {}),
        # not an Ultralytics key: images for distillation beyond the labels (their labels are for the oracle only)
        **({"unlabeled": str(root / "images" / "unlabeled")} if settings.n_unlabeled else {}),
        "nc": len(CLASS_NAMES),
        "names": dict(enumerate(CLASS_NAMES)),
    }
    (drawing / data_yaml.name).write_text(yaml.safe_dump(data, sort_keys=False))
    (drawing / "dataset.json").write_text(json.dumps({"settings": asdict(settings), "images": images}, indent=1))
    if root.exists():
        root.rmdir()  # empty (anything else was refused or cleared above)
    drawing.rename(root)
    return data_yaml


def check_settings(settings: DemoSettings) -> None:
    """Reject settings that cannot make a usable dataset, before anything is written."""
    problems = []
    for name in ("n_test", "n_unlabeled"):
        if getattr(settings, name) < 0:
            problems.append(f"{name} must be >= 0 (got {getattr(settings, name)})")
    if settings.n_train < 1 or settings.n_val < 1:
        problems.append(f"n_train and n_val must be >= 1 (got {settings.n_train}, {settings.n_val})")
    if settings.imgsz < 32:
        problems.append(f"imgsz must be >= 32 pixels (got {settings.imgsz})")
    for name in ("fault_fraction", "empty_fraction"):
        value = getattr(settings, name)
        if not 0 <= value <= 1:
            problems.append(f"{name} must be within [0, 1] (got {value})")
    if problems:
        raise ValueError("make_demo_dataset: " + "; ".join(problems))


def image_faults(data_root: str | Path) -> dict[str, str]:
    """Map each image path (absolute) of a demo dataset to the fault it carries (``"none"`` if clean)."""
    root = Path(data_root)
    root = root.parent if root.suffix in {".yaml", ".yml"} else root
    manifest = read_dataset_record(root)
    if manifest is None:
        raise FileNotFoundError(f"{root / 'dataset.json'} not found: faults are known only for demo datasets")
    return {str(root / "images" / name): info["fault"] for name, info in manifest["images"].items()}


def images_by_fault(data_yaml: str | Path, per_fault: int, split: str = "val") -> dict[str, list[np.ndarray]]:
    """Up to ``per_fault`` images of each capture fault (``none`` first) of a demo dataset.

    For a dataset not made by `make_demo_dataset` the faults are unknown: all images come under ``"all"``.
    """
    try:
        faults = image_faults(data_yaml)
    except FileNotFoundError:
        return {"all": load_images(data_yaml, per_fault, split)}
    grouped: dict[str, list[np.ndarray]] = {fault: [] for fault in ("none", *FAULTS)}
    for path in split_images(data_yaml, split):
        fault = faults.get(str(path), "none")
        if len(grouped[fault]) < per_fault:
            grouped[fault].append(cv2.imread(str(path)))
    return {fault: images for fault, images in grouped.items() if images}
