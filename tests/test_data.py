"""The generated demo dataset: layout, determinism, content, recorded faults, and no silent overwrite."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections import Counter

import cv2
import numpy as np
import pytest
import yaml

from distil.data import demo
from distil.data.demo import (
    CLASS_NAMES,
    FAULTS,
    apply_fault,
    image_faults,
    make_demo_dataset,
    render_scene,
    write_image,
)


def digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".jpg", ".txt"})
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest(), len(files)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("d") / "demo", n_train=120, n_val=30, imgsz=96, seed=7)


@pytest.mark.slow
def test_yolo_layout_with_absolute_paths(dataset):
    data = yaml.safe_load(dataset.read_text())
    assert data["names"] == dict(enumerate(CLASS_NAMES)) and data["nc"] == len(CLASS_NAMES) == 6
    for split, count in (("train", 120), ("val", 30)):
        folder = data[split]
        assert folder.startswith("/")
        assert len(list((dataset.parent / "images" / split).glob("*.jpg"))) == count
        assert len(list((dataset.parent / "labels" / split).glob("*.txt"))) == count


def test_labels_are_valid_and_varied(dataset):
    boxes, per_image = [], []
    for label in (dataset.parent / "labels" / "train").glob("*.txt"):
        rows = [list(map(float, line.split())) for line in label.read_text().splitlines()]
        per_image.append(len(rows))
        boxes += rows
    boxes = np.array(boxes)
    assert set(boxes[:, 0].astype(int)) == set(range(len(CLASS_NAMES)))
    assert ((boxes[:, 1:] > 0) & (boxes[:, 1:] <= 1)).all()
    assert ((boxes[:, 1] - boxes[:, 3] / 2) >= -1e-6).all() and ((boxes[:, 1] + boxes[:, 3] / 2) <= 1 + 1e-6).all()
    assert boxes[:, 3].max() / boxes[:, 3].min() > 3  # varied sizes
    assert max(per_image) >= 4 and 0 in per_image  # several objects per image, and empty images


def test_faults_are_recorded_in_the_expected_share(dataset):
    faults = image_faults(dataset)
    assert len(faults) == 150
    counts = Counter(faults.values())
    assert set(counts) == {"none", *FAULTS}
    assert 0.35 < 1 - counts["none"] / 150 < 0.65  # fault_fraction 0.5


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_demo_dataset(tmp_path / "a", n_train=6, n_val=2, imgsz=64, seed=1)
    b = make_demo_dataset(tmp_path / "b", n_train=6, n_val=2, imgsz=64, seed=1)
    c = make_demo_dataset(tmp_path / "c", n_train=6, n_val=2, imgsz=64, seed=2)
    assert digest(a.parent) == digest(b.parent)
    assert digest(a.parent) != digest(c.parent)


def test_existing_dataset_is_reused_and_nothing_else_is_overwritten(tmp_path):
    first = make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=64)
    stamp = first.stat().st_mtime_ns
    assert make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=64).stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="other settings.*overwrite=True"):
        make_demo_dataset(tmp_path / "d", n_train=5, n_val=2, imgsz=64)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="other files"):
        make_demo_dataset(tmp_path / "mine", n_train=4, n_val=2, imgsz=64)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    replaced = make_demo_dataset(tmp_path / "d", n_train=5, n_val=2, imgsz=64, overwrite=True)
    assert json.loads((replaced.parent / "dataset.json").read_text())["settings"]["n_train"] == 5


def test_an_interrupted_drawing_is_started_again_not_refused(tmp_path, monkeypatch):
    drawn = []

    def interrupted(root, settings, split, index):
        if len(drawn) == 3:
            raise KeyboardInterrupt  # Ctrl-C half-way
        drawn.append(index)
        return write_image(root, settings, split, index)

    monkeypatch.setattr(demo, "write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=64, workers=1)
    assert not (tmp_path / "d").exists()  # no half dataset where the next call would refuse it as "other files"
    monkeypatch.setattr(demo, "write_image", write_image)
    data_yaml = make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=64, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "d"]  # the drawing folder went in whole
    assert yaml.safe_load(data_yaml.read_text())["train"] == str(tmp_path / "d" / "images" / "train")
    assert len(list((tmp_path / "d" / "images" / "train").iterdir())) == 4


def test_a_second_call_while_the_first_draws_waits_and_reuses_its_dataset(tmp_path, monkeypatch):
    """Two runs started at once in a new checkout ask for the same dataset; neither may clear the other's drawing."""
    second: dict = {}

    def call_again():
        try:
            second["data_yaml"] = make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=64, workers=1)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            second["error"] = error

    other = threading.Thread(target=call_again)

    def first_image_starts_the_second_call(root, settings, split, index):
        if not other.is_alive() and "started" not in second:
            second["started"] = True
            other.start()
            other.join(timeout=3)  # without the lock it draws, clears this drawing and finishes well within this
        return write_image(root, settings, split, index)

    monkeypatch.setattr(demo, "write_image", first_image_starts_the_second_call)
    first = make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=64, workers=1)
    other.join(timeout=60)
    assert "error" not in second, second.get("error")
    assert second["data_yaml"] == first and len(list((tmp_path / "d" / "images" / "train").iterdir())) == 4
    assert not (tmp_path / "d.drawing").exists()


@pytest.mark.slow
def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path):
    """The drawing processes are spawned and import the script again; without a guard each draws anew."""
    script = tmp_path / "draw.py"
    script.write_text("from distil.data.demo import make_demo_dataset\n"
                      f"make_demo_dataset({str(tmp_path / 'd')!r}, n_train=4, n_val=2, imgsz=64, workers=2)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and 'if __name__ == "__main__":' in done.stderr.splitlines()[-1]


@pytest.mark.slow
def test_processes_drawing_in_parallel_write_the_same_dataset(tmp_path):
    settings = {"n_train": 12, "n_val": 4, "n_test": 3, "n_unlabeled": 5, "imgsz": 64, "seed": 3}
    serial = make_demo_dataset(tmp_path / "serial", workers=1, **settings).parent
    parallel = make_demo_dataset(tmp_path / "parallel", workers=2, **settings).parent
    assert digest(parallel) == digest(serial) and digest(serial)[1] == 2 * 24
    assert (parallel / "dataset.json").read_text() == (serial / "dataset.json").read_text()


def test_bad_settings_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="imgsz must be >= 32.*fault_fraction must be within"):
        make_demo_dataset(tmp_path / "x", imgsz=8, fault_fraction=2.0)
    assert not (tmp_path / "x").exists()


def high_frequency_energy(image):
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


def test_each_fault_degrades_the_image_as_named():
    rng = np.random.default_rng(0)
    clean, _ = render_scene(rng, 128, 4)
    faulted = {fault: apply_fault(clean, fault, np.random.default_rng(1)) for fault in FAULTS}
    assert faulted["underexposed"].mean() < clean.mean() * 0.6
    assert (255 - faulted["overexposed"].astype(float)).mean() < (255 - clean.astype(float)).mean() * 0.6
    assert faulted["low_contrast"].std() < clean.std() * 0.6
    spread = lambda im: np.ptp(im.reshape(-1, 3).mean(0))  # noqa: E731
    assert spread(faulted["colour_cast"]) > spread(clean) + 20
    assert high_frequency_energy(faulted["noise"]) > 1.5 * high_frequency_energy(clean)
    assert high_frequency_energy(faulted["blur"]) < 0.6 * high_frequency_energy(clean)
    for image in faulted.values():
        assert image.shape == clean.shape and image.dtype == np.uint8


def test_unlabeled_split_is_new_images_whose_labels_stay_apart(tmp_path):
    data = make_demo_dataset(tmp_path / "u", n_train=8, n_val=2, imgsz=64, seed=1, n_unlabeled=6)
    spec = yaml.safe_load(data.read_text())
    unlabeled = sorted((data.parent / "images" / "unlabeled").glob("*.jpg"))
    assert len(unlabeled) == 6 and spec["unlabeled"] == str(data.parent / "images" / "unlabeled")
    train = {p.read_bytes() for p in (data.parent / "images" / "train").glob("*.jpg")}
    longer = make_demo_dataset(tmp_path / "t", n_train=40, n_val=2, imgsz=64, seed=1)  # a teacher's larger set
    train |= {p.read_bytes() for p in (longer.parent / "images" / "train").glob("*.jpg")}
    assert not train & {p.read_bytes() for p in unlabeled}  # drawn from seeds no labeled split uses
    assert len(list((data.parent / "labels" / "unlabeled").glob("*.txt"))) == 6  # for an oracle only


def test_classes_differ_in_shape_only_and_decoys_are_not_labelled():
    """Every class takes every colour: the mean hue of a class's objects says nothing about it."""
    from distil.data.demo import DemoSettings, generate_image

    settings = DemoSettings(imgsz=128, fault_fraction=0.0)
    hues = {c: [] for c in range(len(CLASS_NAMES))}
    for index in range(40):
        image, objects, _ = generate_image(settings, "train", index)
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        for obj in objects:
            x1, y1, x2, y2 = (int(round(v)) for v in obj.box)
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            hues[obj.cls].append(int(hsv[cy, cx, 0]))
    for cls, values in hues.items():
        assert len(values) >= 10, cls
        assert np.ptp(values) > 120, f"class {CLASS_NAMES[cls]} spans hues {min(values)}..{max(values)} only"
