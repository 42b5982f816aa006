"""Soft offline targets: each stored box's score and class vector travel with it through Ultralytics' augmentation
to the response loss; the teacher on every k-th batch only; labels made elsewhere, checked before use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.data.build import build_dataloader
from ultralytics.data.utils import check_det_dataset

import distil
from distil.data import CLASS_NAMES
from distil.engine import DistillSettings, FeatureDistillationModel, SettingError, load_teacher
from distil.engine.labeling import ImageLabels, LabelStoreError, label
from distil.engine.model import written_by_teacher
from distil.engine.response import ResponseLoss
from distil.engine.teacher_signals import Detections
from distil.engine.unlabeled import UnlabeledDataset, append_images

from .test_teaching import real_batch, student, student_on_a_batch

NC = len(CLASS_NAMES)
BOXES_PER_IMAGE = 3


def stored_labels(images: list[str]) -> dict[str, ImageLabels]:
    """Three boxes per image, each with a score of its own (its identity here) and a class vector of its own."""
    rng = np.random.default_rng(0)
    labels = {}
    for i, image in enumerate(images):
        ids = np.arange(i * BOXES_PER_IMAGE, (i + 1) * BOXES_PER_IMAGE)
        centers = rng.uniform(0.2, 0.8, (BOXES_PER_IMAGE, 2))
        sizes = rng.uniform(0.1, 0.3, (BOXES_PER_IMAGE, 2))
        probs = rng.uniform(0, 0.4, (BOXES_PER_IMAGE, NC)).astype(np.float32)
        cls = ids % NC
        scores = (0.5 + ids / 1000).astype(np.float32)
        probs[np.arange(BOXES_PER_IMAGE), cls] = scores
        labels[image] = ImageLabels(np.concatenate([centers, sizes], 1).astype(np.float32), scores, cls, probs)
    labels[images[-1]] = ImageLabels(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                                     np.zeros((0, NC), np.float32))  # the teacher saw nothing on the last image
    return labels


def by_score(labels: dict[str, ImageLabels]) -> dict[float, tuple[int, np.ndarray, np.ndarray]]:
    """Stored score -> (class, box, class vector) of the box it identifies."""
    return {round(float(s), 4): (int(c), b, p) for v in labels.values() for s, c, b, p in
            zip(v.scores, v.cls, v.boxes, v.probs)}


def dataset(tiny_data, labels, **hyp) -> UnlabeledDataset:
    args = get_cfg(overrides={"imgsz": 64, **hyp})
    return UnlabeledDataset(img_path=str(tiny_data.parent / "images" / "unlabeled"), imgsz=64, batch_size=4,
                            augment=True, hyp=args, rect=False, cache=None, single_cls=False, stride=32, pad=0.0,
                            prefix="unlabeled: ", task="detect", classes=None, data=check_det_dataset(str(tiny_data)),
                            fraction=1.0, pseudo_labels=labels, nc=NC)


def unlabeled_files(tiny_data) -> list[str]:
    return sorted(str(p.resolve()) for p in (tiny_data.parent / "images" / "unlabeled").glob("*.jpg"))


def test_a_flipped_box_keeps_its_score_and_class_vector(tiny_data):
    labels = stored_labels(unlabeled_files(tiny_data))
    truth = by_score(labels)
    data = dataset(tiny_data, labels, mosaic=0.0, fliplr=1.0, flipud=0.0, degrees=0.0, translate=0.0, scale=0.0,
                   shear=0.0, perspective=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)
    seen = 0
    for index in range(len(data)):
        item = data[index]
        assert item["cls"].shape == (len(item["bboxes"]), 2 + NC)
        for row, box in zip(item["cls"].numpy(), item["bboxes"].numpy()):
            cls, stored_box, probs = truth[round(float(row[1]), 4)]
            assert int(row[0]) == cls and np.allclose(row[2:], probs, atol=1e-6)
            flipped = stored_box.copy()
            flipped[0] = 1 - flipped[0]  # the image was mirrored: the box moved with it, its score and classes did not
            assert np.allclose(box, flipped, atol=1.5 / 64)
            seen += 1
    assert seen == BOXES_PER_IMAGE * (len(labels) - 1)


def test_through_mosaic_and_random_perspective_every_box_keeps_its_own_score_and_a_cropped_one_takes_it_along(
        tiny_data):
    labels = stored_labels(unlabeled_files(tiny_data))
    truth = by_score(labels)
    data = dataset(tiny_data, labels, mosaic=1.0, fliplr=0.5, scale=0.5, translate=0.1)
    torch.manual_seed(0)
    rows, cropped = 0, 0
    for _ in range(3):
        for index in range(len(data)):
            item = data[index]
            scores = [round(float(s), 4) for s in item["cls"][:, 1]]
            assert len(scores) == len(item["bboxes"])  # one row per box (a mosaic may hold one image twice)
            for row, score in zip(item["cls"].numpy(), scores):
                cls, _, probs = truth[score]
                assert int(row[0]) == cls and np.allclose(row[2:], probs, atol=1e-6)
            rows += len(scores)
            cropped += len(scores) < 4 * BOXES_PER_IMAGE  # a mosaic of four images, three boxes each, lost some
    assert rows > 0 and cropped > 0
    data.close_mosaic(hyp=get_cfg(overrides={"imgsz": 64}))  # the last epochs: letterbox only
    assert data[0]["cls"].shape[1] == 2 + NC


def test_the_scores_and_class_vectors_reach_the_response_loss_as_stored(tiny_data):
    labels = stored_labels(unlabeled_files(tiny_data))
    truth = by_score(labels)
    data = dataset(tiny_data, labels, mosaic=1.0)
    loader = build_dataloader(data, 4, 0, shuffle=False, device="cpu")
    unlabeled_batch = next(iter(loader))  # collated: the empty image's rows are as wide as the others
    batch = append_images(real_batch(tiny_data, "train"), unlabeled_batch)
    targets = written_by_teacher(batch)
    assert len(targets.scores) == len(unlabeled_batch["bboxes"]) > 0
    for score, cls, probs in zip(targets.scores.tolist(), targets.cls.tolist(), targets.probs.numpy()):
        stored_cls, _, stored_probs = truth[round(score, 4)]
        assert cls == stored_cls and np.allclose(probs, stored_probs, atol=1e-6)
    assert (targets.batch_idx >= len(batch["img"]) - len(unlabeled_batch["img"])).all()  # the unlabeled images'


def test_class_vector_targets_generalise_score_targets(tiny_data):
    model, batch, preds = student_on_a_batch(tiny_data)
    n = len(batch["cls"])
    cls = batch["cls"].view(-1)
    one_hot = torch.nn.functional.one_hot(cls.long(), NC).float()
    bce, targets = model.criterion.bce, []
    model.criterion.bce = lambda logits, target: (targets.append(target.detach()), bce(logits, target))[1]

    def class_targets(kind: str, scores: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        ResponseLoss(model.criterion, kind)(preds, Detections(batch["batch_idx"].view(-1), cls, batch["bboxes"],
                                                              scores, probs))
        return targets[-1]  # (images, anchors, classes): what each anchor is asked to say about each class

    sure = class_targets("score", torch.ones(n), one_hot)
    assert (sure > 0).any() and ((sure > 0).sum(-1) <= 1).all()  # positives, each for its box's class alone
    assert torch.equal(class_targets("probs", torch.ones(n), one_hot), sure)  # a one-hot vector: the same
    assert torch.allclose(class_targets("probs", torch.full((n,), 0.3), 0.3 * one_hot),
                          class_targets("score", torch.full((n,), 0.3), one_hot))
    spread = class_targets("probs", torch.full((n,), 0.7), one_hot * 0.6 + 0.1)  # doubt, as sigmoid scores have
    assert torch.allclose(spread.amax(-1), 0.7 * sure.amax(-1), atol=1e-6)  # the box's class at the teacher's score
    positive = sure.amax(-1) > 0
    assert torch.allclose(spread[positive].sort(-1).values[:, :-1], 0.1 / 0.7 * spread[positive].amax(-1, True))
    assert torch.equal(class_targets("hard", torch.full((n,), 0.3), one_hot), sure)  # hard: the score is ignored


@pytest.mark.slow
def test_the_teacher_runs_on_every_kth_batch_and_the_stored_labels_teach_on_every_one(tiny_data, rtdetr_teacher):
    settings = DistillSettings(distill_model=str(rtdetr_teacher), distill_weight=1.0, distill_det=1.0,
                               distill_det_mode="offline", distill_unlabeled="x", distill_teacher_every=3)
    model = FeatureDistillationModel(load_teacher(rtdetr_teacher), student(), settings, imgsz=64).train()
    reads = []
    original = model.reader.__call__

    class CountingReader(type(model.reader)):
        def __call__(self, teacher, images):
            reads.append(model.steps)
            return original(teacher, images)

    model.reader.__class__ = CountingReader
    labels = stored_labels(unlabeled_files(tiny_data))
    batch = append_images(real_batch(tiny_data, "train"),
                          next(iter(build_dataloader(dataset(tiny_data, labels), 4, 0, shuffle=False, device="cpu"))))
    batch["img"] = batch["img"].float() / 255 if batch["img"].dtype == torch.uint8 else batch["img"]
    items = [model.loss(batch)[1] for _ in range(6)]
    assert reads == [1, 4]  # steps 1 and 4 of 6
    assert [bool(i["dis_loss"] != 0) for i in items] == [True, False, False, True, False, False]
    assert all(i["det_loss"] > 0 for i in items)


@pytest.mark.parametrize("values, message", [
    ({"distill_teacher_every": 4, "distill_det": 1.0}, "distill_teacher_every=4 .* set distill_det_mode: offline"),
    ({"distill_det_labels": "labels/", "distill_det": 1.0},
     "distill_det_labels='labels/' .* distill_det_mode: offline"),
    ({"distill_det_targets": "soft"}, r"distill_det_targets='soft' is not one of \['hard', 'probs', 'score'\]"),
    ({"distill_teacher_every": 0}, "distill_teacher_every=0 must be a whole number >= 1"),
])
def test_offline_settings_that_cannot_work_are_refused_with_the_way_out(values, message):
    with pytest.raises(SettingError, match=message):
        DistillSettings.from_values({"distill_model": "t.pt", **values}, check_teacher=False)


@pytest.mark.slow
def test_labels_made_elsewhere_are_used_as_given_and_refused_when_another_teacher_made_them(
        tiny_data, rtdetr_teacher, tmp_path):
    from ultralytics import YOLO

    from .conftest import distill_overrides, save_teacher_checkpoint

    retrained = load_teacher(rtdetr_teacher)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)  # the same architecture and classes, other weights
    another = save_teacher_checkpoint(retrained, tmp_path / "another.pt")

    images = tiny_data.parent / "images" / "unlabeled"
    given = label(rtdetr_teacher, images, tmp_path / "cluster-labels", imgsz=64, conf=0.05, progress=False)
    model = YOLO("yolov8n.yaml")
    model.train(trainer=distil.DistillationTrainer, epochs=1, distill_det=1.0, distill_det_mode="offline",
                distill_det_conf=0.05, distill_unlabeled=str(images), distill_det_labels=str(given.folder),
                **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "given", distill_weight=0.0))
    record = json.loads((tmp_path / "given" / "distill.json").read_text())["targets"]
    assert record["source"] == "given (distill_det_labels)" and record["labels"]["folder"] == str(given.folder)
    assert not (tmp_path / "pseudo-labels").exists()  # nothing labeled again
    other = YOLO("yolov8n.yaml")
    with pytest.raises(LabelStoreError, match="was made by the teacher .* this run's teacher .* is another"):
        other.train(trainer=distil.DistillationTrainer, epochs=1, distill_det=1.0, distill_det_mode="offline",
                    distill_det_conf=0.05, distill_unlabeled=str(images), distill_det_labels=str(given.folder),
                    **distill_overrides(tiny_data, another, tmp_path, "mismatch", distill_weight=0.0))
