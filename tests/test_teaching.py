"""Teaching beyond the labels: unlabeled images, the teacher's detections as targets, the teacher mask, the schedule.

Each piece is checked against a direct computation or an invariant that would break if it were wrong.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from ultralytics.cfg import get_cfg
from ultralytics.data.build import build_dataloader, build_yolo_dataset
from ultralytics.data.utils import check_det_dataset
from ultralytics.nn.tasks import DetectionModel

import distil
from distil.data import CLASS_NAMES
from distil.engine import DistillSettings, FeatureDistillationModel, load_teacher
from distil.engine.labeling import LabelStore
from distil.engine.response import ResponseLoss, response_targets
from distil.engine.schedule import distill_factor
from distil.engine.teacher import cpu_computes_bf16, ready_for_inference
from distil.engine.teacher_signals import ClassMappingError, Detections, TeacherReader, class_map
from distil.engine.unlabeled import UnlabeledBatches, UnlabeledImagesError, append_images, unlabeled_images

NAMES = dict(enumerate(CLASS_NAMES))


def real_batch(data_yaml, split: str, batch: int = 4, seed: int = 0) -> dict:
    """A batch as the Ultralytics training loader makes it (mosaic, flips, HSV, scale), images in [0, 1]."""
    torch.manual_seed(seed)
    cfg = get_cfg(overrides={"imgsz": 64, "seed": seed})
    data = check_det_dataset(str(data_yaml))
    dataset = build_yolo_dataset(cfg, data[split], batch, data, mode="train")
    item = next(iter(build_dataloader(dataset, batch, 0, shuffle=False, device="cpu")))
    item["img"] = item["img"].float() / 255
    return item


def student(nc: int = len(NAMES)) -> DetectionModel:
    model = DetectionModel("yolov8n.yaml", nc=nc, verbose=False)
    model.args, model.names = get_cfg(), NAMES
    return model


def student_on_a_batch(data_yaml) -> tuple[DetectionModel, dict, list]:
    """A seeded student in training mode, a real batch, its predictions, and its criterion built by one loss."""
    torch.manual_seed(0)
    model = student()
    batch = real_batch(data_yaml, "train")
    model.train()
    preds = model(batch["img"])
    model.loss(batch, preds)  # builds the criterion
    return model, batch, preds


# --- unlabeled images never act as background ----------------------------------------------------------
@pytest.mark.slow
def test_ground_truth_loss_is_the_same_with_and_without_unlabeled_images(tiny_data, rtdetr_teacher):
    labeled = real_batch(tiny_data, "train")
    unlabeled = real_batch(tiny_data, "val", seed=1)  # any images; their labels are not passed on
    settings = DistillSettings(distill_model=str(rtdetr_teacher), distill_det=1.0, distill_mask="teacher")
    model = FeatureDistillationModel(load_teacher(rtdetr_teacher), student(), settings, imgsz=64).train()
    model.student_model.eval()  # BatchNorm from running statistics: each image's predictions its own
    alone_loss, alone = model.loss(labeled)
    combined = append_images(labeled, unlabeled)
    mixed_loss, mixed = model.loss(combined)
    for key in ("box_loss", "cls_loss", "dfl_loss"):
        assert torch.allclose(alone[key], mixed[key], rtol=1e-5, atol=1e-7), key
    assert torch.allclose(alone_loss[:3], mixed_loss[:3], rtol=1e-5)
    assert mixed["det_loss"] != alone["det_loss"]  # the unlabeled images do receive the distillation terms

    # what the invariant guards against: the plain loss over every image treats the unlabeled ones as background
    preds = model.student_model(combined["img"])
    _, naive = model.student_model.loss(combined, preds)
    assert not torch.allclose(naive["cls_loss"], alone["cls_loss"], rtol=1e-3)


@pytest.mark.parametrize("workers", [0, 2])
def test_under_ddp_every_pass_over_the_unlabeled_images_is_a_new_order(tiny_data, tmp_path, workers):
    """A DistributedSampler orders by seed + epoch: left at one epoch, every pass would repeat the first. With loader
    workers (as DDP runs take) the next pass is drawn ahead, so setting the epoch between passes came too late."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:  # the loader's own trainer attributes, without a training
        trainer = SimpleNamespace(batch_size=4, args=get_cfg(overrides={"imgsz": 64, "workers": workers}), stride=32,
                                  device=torch.device("cpu"), data=check_det_dataset(str(tiny_data)))
        batches = UnlabeledBatches(trainer, str(tiny_data.parent / "images" / "unlabeled"), 1.0, lambda dataset: None,
                                   rank=0)
        passes = [[file for _ in range(len(batches.loader)) for file in batches.next()["im_file"]] for _ in range(3)]
    finally:
        dist.destroy_process_group()
    assert all(sorted(order) == sorted(passes[0]) and len(set(order)) == 16 for order in passes)  # each image once
    assert passes[0] != passes[1] and passes[1] != passes[2]


def test_unlabeled_sources_are_checked_before_training(tmp_path, tiny_data):
    folder = tiny_data.parent / "images" / "unlabeled"
    assert len(unlabeled_images(folder)) == 16
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in sorted(folder.glob("*.jpg"))[:5]))
    assert len(unlabeled_images(listing)) == 5
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("no images here")
    with pytest.raises(UnlabeledImagesError, match="does not exist"):
        unlabeled_images(tmp_path / "missing")
    with pytest.raises(UnlabeledImagesError, match="holds no image"):
        unlabeled_images(tmp_path / "empty")
    listing.write_text(str(tmp_path / "gone.jpg"))
    with pytest.raises(UnlabeledImagesError, match="lists 1 missing file"):
        unlabeled_images(listing)


@pytest.mark.parametrize("change, message", [
    ({"distill_unlabeled": "nowhere/images"}, "distill_unlabeled='.*nowhere/images' does not exist"),
    ({"distill_unlabeled": "demo"}, "needs data: demo and demo_unlabeled > 0"),
])
def test_bad_unlabeled_params_stop_before_data_is_made(tmp_path, rtdetr_teacher, change, message):
    params = {"name": "bad", "teacher": str(rtdetr_teacher), "student": "yolov8n.yaml", "outputs": str(tmp_path),
              "demo_train": 4, "demo_val": 2, "demo_imgsz": 64, **change}
    if change.get("distill_unlabeled") == "demo" and "demo_unlabeled" not in change:
        params["data"] = str(tmp_path / "data.yaml")
        (tmp_path / "data.yaml").write_text("train: x\nval: y\nnames: {0: a}\n")
    with pytest.raises(distil.ParamsError, match=message):
        distil.train(params)
    assert not (tmp_path / "runs").exists()


def test_teacher_none_is_the_baseline_of_any_recipe():
    recipe = {"distill_loss": "cwd", "distill_det": 1.0, "distill_unlabeled": "demo", "demo_unlabeled": 4,
              "student": "yolov8n.yaml"}
    params = distil.DistillParams.load(recipe, teacher="none")
    assert not params.distilling and params.run_name == "demo-baseline"
    assert "distill_model" not in distil.experiment.ultralytics_overrides(params, params.outputs_dir / "d.yaml")


# --- the teacher's detections as targets ----------------------------------------------------------------
def test_class_names_map_by_name_and_unmatched_ones_are_refused():
    teacher = {0: "Person", 1: "bicycle", 2: "car", 3: "traffic_light"}
    assert class_map(teacher, {0: "car", 1: "person", 2: "Traffic Light"}).tolist() == [1, -1, 0, 2]
    with pytest.raises(ClassMappingError, match=r"no teacher class for \['scooter'\].*Dataset classes: .*teacher"):
        class_map(teacher, {0: "car", 1: "scooter"})
    with pytest.raises(ClassMappingError, match="no class in common"):
        class_map(teacher, {0: "disc", 1: "star"})


def test_duplicates_of_ground_truth_are_dropped_and_the_rest_kept_with_their_scores():
    batch = {"batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[2.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    teacher = Detections(batch_idx=torch.tensor([0.0, 0.0, 1.0]), cls=torch.tensor([2.0, 4.0, 1.0]),
                         bboxes=torch.tensor([[0.51, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2]]),
                         scores=torch.tensor([0.9, 0.7, 0.8]))
    targets = response_targets(teacher, batch, n_labeled=1)
    rows = sorted(zip(targets.batch_idx.tolist(), targets.cls.tolist(), targets.scores.tolist()))
    # image 0: its ground truth (score 1) and the teacher's new box; the duplicate is gone; image 1 (unlabeled): teacher
    assert rows == [(0.0, 2.0, 1.0), (0.0, 4.0, pytest.approx(0.7)), (1.0, 1.0, pytest.approx(0.8))]
    assert targets.batch_idx.tolist() == sorted(targets.batch_idx.tolist())  # grouped by image, as Ultralytics needs


def rtdetr_output(batch: dict, score: float, n_images: int, extra_low: bool = True):
    """What a perfect RT-DETR returns for this batch in eval mode, ``(y, (dec_bboxes, dec_scores, ...))``: one query
    per ground-truth box, its class at ``score`` (a little less for each later box, so that RT-DETR's ranking keeps
    the batch's order), and a weak second guess of the next class at 0.2."""
    queries = [[] for _ in range(n_images)]
    for i, c, box in zip(batch["batch_idx"].long().tolist(), batch["cls"].view(-1).long().tolist(), batch["bboxes"]):
        probs = torch.full((len(NAMES),), 0.01)
        probs[c] = score - 1e-4 * len(queries[i])
        if extra_low:
            probs[(c + 1) % len(NAMES)] = 0.2
        queries[i].append((box, probs))
    width = max(len(q) for q in queries) + 1  # one empty query at least
    boxes, probs = torch.zeros(n_images, width, 4), torch.full((n_images, width, len(NAMES)), 0.01)
    for i, found in enumerate(queries):
        for j, (box, p) in enumerate(found):
            boxes[i, j], probs[i, j] = box, p
    return None, (boxes[None], torch.logit(probs)[None], None, None, None)


def test_teacher_boxes_land_where_the_ground_truth_is_in_the_augmented_batch(tiny_data, rtdetr_teacher):
    batch = real_batch(tiny_data, "train")  # mosaic, flips and scale applied
    reader = TeacherReader(load_teacher(rtdetr_teacher), [21], detections=True, conf=0.5,
                           classes=class_map(NAMES, NAMES))
    detections = reader.read_detections(rtdetr_output(batch, 0.9, len(batch["img"])), batch["img"])
    assert len(detections.scores) == len(batch["cls"])  # the weak guesses fell under the threshold
    assert torch.allclose(detections.bboxes, batch["bboxes"].clamp(0, 1), atol=1e-6)
    assert torch.allclose(detections.scores, torch.tensor(0.9), atol=1e-2)
    ordered = detections.probs[torch.arange(len(detections.cls)), detections.cls.long()]
    assert torch.allclose(ordered, detections.scores) and detections.probs.shape[1] == len(NAMES)  # the class vector
    as_unlabeled = {"batch_idx": torch.zeros(0), "cls": torch.zeros(0, 1), "bboxes": torch.zeros(0, 4)}
    targets = response_targets(detections, as_unlabeled, n_labeled=0)
    assert torch.equal(targets.cls, batch["cls"].view(-1))
    labeled = response_targets(detections, batch, n_labeled=len(batch["img"]))
    assert len(labeled.scores) == len(batch["cls"]) and bool((labeled.scores == 1).all())  # all duplicates


def test_a_yolo_teachers_boxes_go_through_nms_and_into_the_batch_frame(yolo_teacher):
    teacher = load_teacher(yolo_teacher)
    teacher.names = dict(enumerate(CLASS_NAMES))
    images = torch.zeros(2, 3, 64, 96)
    anchors = 64 * 96 // 64 + 64 * 96 // 256 + 64 * 96 // 1024
    y = torch.zeros(2, 4 + len(NAMES), anchors)
    y[1, :4, 5] = torch.tensor([48.0, 16.0, 20.0, 10.0])  # cx, cy, w, h in pixels
    y[1, 4 + 3, 5] = 0.8
    y[1, :4, 7] = torch.tensor([48.5, 16.0, 20.0, 10.0])  # a near-copy NMS removes
    y[1, 4 + 3, 7] = 0.6
    y[0, 4 + 1, 9] = 0.3  # under the threshold
    reader = TeacherReader(teacher, [15], detections=True, conf=0.5, classes=class_map(teacher.names, NAMES))
    detections = reader.read_detections((y, None), images)
    assert detections.batch_idx.tolist() == [1.0] and detections.cls.tolist() == [3.0]
    assert torch.allclose(detections.bboxes, torch.tensor([[0.5, 0.25, 20 / 96, 10 / 64]]))
    assert torch.allclose(detections.probs, y[1, 4:, 5][None])  # the kept anchor's class scores


def test_response_loss_scales_class_targets_by_the_teachers_score(tiny_data):
    model, batch, preds = student_on_a_batch(tiny_data)
    full = Detections(batch["batch_idx"].view(-1), batch["cls"].view(-1), batch["bboxes"],
                      torch.ones(len(batch["cls"])))
    sure = ResponseLoss(model.criterion)(preds, full)
    ground_truth = model.criterion.get_assigned_targets_and_loss(preds, batch)[1]
    assert torch.allclose(sure, ground_truth, rtol=1e-5)  # score 1: exactly Ultralytics' own loss
    bce, targets = model.criterion.bce, []
    model.criterion.bce = lambda logits, target: (targets.append(target.detach()), bce(logits, target))[1]
    ResponseLoss(model.criterion)(preds, full)
    unsure = ResponseLoss(model.criterion)(preds, Detections(full.batch_idx, full.cls, full.bboxes, full.scores * 0.3))
    assert (targets[0] > 0).any() and torch.allclose(targets[1], 0.3 * targets[0])  # the class targets follow the score
    # box and DFL terms are means weighted by the class targets: a common scale changes them only where the
    # targets' sum falls below 1 (Ultralytics clamps it there), and then only downwards
    assert unsure[0] <= sure[0] * (1 + 1e-5) and unsure[2] <= sure[2] * (1 + 1e-5)


# --- the teacher mask ----------------------------------------------------------------------------------
def test_rtdetr_saliency_is_what_its_own_query_selection_computes(tiny_data, rtdetr_teacher):
    teacher = load_teacher(rtdetr_teacher)
    images = real_batch(tiny_data, "val")["img"]
    captured = {}
    handle = teacher.model[-1].enc_score_head.register_forward_hook(lambda m, i, o: captured.update(scores=o))
    with torch.no_grad():
        teacher(images)  # the full RT-DETR forward, decoder and query selection included
    handle.remove()
    direct = captured["scores"].sigmoid().amax(-1)  # (B, sum HW)
    saliency = TeacherReader(teacher, [21, 24, 27], saliency=True)(teacher, images).saliency
    assert sorted(saliency) == [8, 16, 32]
    ours = torch.cat([saliency[s].flatten(1) for s in (8, 16, 32)], 1)
    assert torch.allclose(ours, direct, atol=1e-6)
    assert saliency[8].shape == (len(images), 1, 8, 8) and saliency[32].shape == (len(images), 1, 2, 2)


def test_yolo_saliency_is_its_heads_best_class_score(tiny_data, yolo_teacher):
    teacher = load_teacher(yolo_teacher)
    images = real_batch(tiny_data, "val")["img"]
    with torch.no_grad():
        y = teacher(images)[0]
    saliency = TeacherReader(teacher, [15, 18, 21], saliency=True)(teacher, images).saliency
    ours = torch.cat([saliency[s].flatten(1) for s in (8, 16, 32)], 1)
    assert torch.allclose(ours, y[:, 4:].amax(1), atol=1e-6)


def test_teacher_mask_weights_follow_the_saliency_and_keep_the_loss_scale():
    from distil.engine.losses import build_loss
    from distil.engine.masks import saliency_weights

    saliency = torch.zeros(2, 1, 4, 4)
    saliency[:, :, 1, 2] = 1.0
    weights = saliency_weights(saliency, (4, 4), background=0.1)
    assert weights[0, 0, 1, 2] == 1.0 and torch.allclose(weights[0, 0, 0, 0], torch.tensor(0.1))
    student, teacher = torch.randn(2, 5, 4, 4), torch.randn(2, 5, 4, 4)
    uniform = build_loss("mse")(student, teacher)
    masked = build_loss("mse")(student, teacher, saliency_weights(torch.full((2, 1, 4, 4), 0.5), (4, 4)))
    assert torch.allclose(uniform, masked)  # a uniform mask is no mask: the weighted mean keeps the scale


# --- the schedule ----------------------------------------------------------------------------------------
def test_schedule_ramps_up_over_the_warmup_and_stops_for_the_last_epochs():
    assert [distill_factor(p, 10, warmup=2, stop=3) for p in (0, 0.5, 1, 2, 6.99, 7, 9.5)] == [
        0.0, 0.25, 0.5, 1.0, 1.0, 0.0, 0.0]
    assert distill_factor(0, 10) == 1.0 and distill_factor(9.9, 10) == 1.0


@pytest.mark.slow
def test_no_teacher_runs_and_no_unlabeled_image_is_drawn_while_the_schedule_is_off(tiny_data, rtdetr_teacher,
                                                                                 tmp_path):
    """Also: the unlabeled images go through the same enhancement as the labeled ones."""
    from ultralytics import YOLO

    from distil.enhancement.dataset import EnhancedImageLoader

    from .conftest import distill_overrides

    seen = []

    def count_images(trainer):
        seen.append((trainer.epoch, trainer.distill_model.factor(), trainer.distill_model.steps,
                     isinstance(trainer.unlabeled.dataset.load_image, EnhancedImageLoader)))

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_batch_end", count_images)
    model.train(trainer=distil.DistillationTrainer, epochs=2, distill_stop=1, distill_det=1.0, enhance="default",
                distill_unlabeled=str(tiny_data.parent / "images" / "unlabeled"),
                **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "stop"))
    assert [factor for epoch, factor, _, _ in seen if epoch == 1] == [0.0, 0.0]
    assert all(enhanced for *_, enhanced in seen)
    import pandas as pd

    results = pd.read_csv(tmp_path / "stop" / "results.csv")
    results.columns = results.columns.str.strip()
    assert results["train/det_loss"].tolist()[1] == 0 and results["train/dis_loss"].tolist()[1] == 0
    assert results["train/det_loss"].tolist()[0] > 0


@pytest.mark.slow
def test_offline_the_teacher_labels_the_unlabeled_images_once_and_the_labels_are_reused(tiny_data, rtdetr_teacher,
                                                                                          tmp_path):
    from ultralytics import YOLO

    from .conftest import distill_overrides

    folder = tiny_data.parent / "images" / "unlabeled"
    seen = []

    def record(trainer):
        batch = trainer.unlabeled.next()
        seen.append((trainer.distill_model.reads_teacher, len(trainer.unlabeled.dataset.labels),
                     sum(len(label["cls"]) for label in trainer.unlabeled.dataset.labels), len(batch["cls"])))

    runs = []
    for name in ("offline-a", "offline-b"):
        model = YOLO("yolov8n.yaml")
        model.add_callback("on_train_start", record)
        model.train(trainer=distil.DistillationTrainer, epochs=1, distill_det=1.0, distill_det_mode="offline",
                    distill_det_conf=0.05, distill_unlabeled=str(folder),
                    **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, name, distill_weight=0.0))
        runs.append(model.trainer)
    labels = sorted((tmp_path / "pseudo-labels").glob("*/index.json"))
    assert len(labels) == 1  # one set of labels, made by the first run, reused by the second
    reads_teacher, images, boxes, _ = seen[0]
    assert not reads_teacher and images == 16 and boxes > 0  # no teacher pass while training
    assert seen[0][2] == seen[1][2]
    store = LabelStore(labels[0].parent)
    assert store.images == sorted(str(p.resolve()) for p in folder.glob("*.jpg")) and store.complete
    rows = runs[0].unlabeled.dataset.labels[0]["cls"]  # class, score, the class vector: one row per box
    assert rows.shape[1] == 2 + len(NAMES) and ((rows[:, 1] >= 0.05) & (rows[:, 1] <= 1)).all()
    record = json.loads((tmp_path / "offline-a" / "distill.json").read_text())["targets"]
    assert record["targets"] == "offline soft (score)" and record["labels"]["folder"] == str(store.folder)
    assert record["labels"]["images"] == 16 and record["labels"]["teacher_sha1"] == store.settings.teacher_sha1

    import pandas as pd

    results = pd.read_csv(tmp_path / "offline-a" / "results.csv")
    results.columns = results.columns.str.strip()
    assert results["train/det_loss"].iloc[0] > 0 and "train/dis_loss" not in results.columns
    assert not list((tmp_path / "offline-a" / "weights").glob("adapters_*.pt"))  # untaught adapters are not saved


@pytest.mark.slow
def test_offline_labels_and_features_teach_together_on_the_unlabeled_images(tiny_data, rtdetr_teacher, tmp_path):
    """The study's u-cwd-teacher+det-offline: the teacher's features are read on every batch (labeled and
    unlabeled), its detections come from the offline labels, and both terms are trained."""
    import pandas as pd
    from ultralytics import YOLO

    from .conftest import distill_overrides

    seen = []
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_start", lambda trainer: seen.append(trainer.distill_model.reads_teacher))
    model.train(trainer=distil.DistillationTrainer, epochs=1, distill_det=1.0, distill_det_mode="offline",
                distill_det_conf=0.05, distill_unlabeled=str(tiny_data.parent / "images" / "unlabeled"),
                distill_loss="cwd", distill_mask="teacher",
                **distill_overrides(tiny_data, rtdetr_teacher, tmp_path, "both", distill_weight=1.0))
    assert seen == [True] and len(list((tmp_path / "pseudo-labels").glob("*/index.json"))) == 1
    results = pd.read_csv(tmp_path / "both" / "results.csv")
    results.columns = results.columns.str.strip()
    assert results["train/det_loss"].iloc[0] > 0 and results["train/dis_loss"].iloc[0] != 0


def test_the_diagram_says_what_teaches_besides_the_features():
    from distil.eval.diagram import beyond_features

    line = beyond_features({"distill_det": 1.0, "distill_det_conf": 0.5, "distill_det_mode": "offline"},
                           {"images": 2000})
    assert "detections from score 0.5" in line and "(offline)" in line and "2000 unlabeled images" in line
    assert "no detection targets" in beyond_features({"distill_det": 0.0}, None)


def test_a_run_without_a_feature_term_is_drawn_as_the_path_of_the_teachers_detections():
    from matplotlib.text import Text

    from distil.eval.diagram import distillation_diagram

    level = {"level": "p3", "stride": 8, "adapter": {"in_channels": 64, "out_channels": 96},
             **{role: {"index": 15, "module": "C2f", "channels": 64, "height": 20, "width": 20, "stride": 8}
                for role in ("teacher", "student")}}
    settings = {"distill_weight": 1.0, "distill_loss": "mse", "distill_det": 1.0, "distill_det_conf": 0.5,
                "distill_det_mode": "offline"}

    def texts(weight: float) -> str:
        record = {"levels": [level], "settings": {**settings, "distill_weight": weight}, "imgsz": 160}
        return " ".join(t.get_text() for t in distillation_diagram(record).findobj(Text))

    assert "adapter 1x1 conv" in texts(1.0) and "mse loss" in texts(1.0)
    detections_only = texts(0.0)
    assert "adapter" not in detections_only and "mse" not in detections_only
    assert "labels each unlabeled image once" in detections_only and "no feature term" in detections_only


# --- how the teacher runs -------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_teacher_made_ready_for_inference_says_what_it_said_and_bf16_nearly_so(tiny_data, rtdetr_teacher):
    images = real_batch(tiny_data, "val")["img"]
    layers = [21, 24, 27]
    plain = load_teacher(rtdetr_teacher)
    ready = ready_for_inference(load_teacher(rtdetr_teacher))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ready.model[:-1].modules())  # Conv + BN fused
    before = TeacherReader(plain, layers, saliency=True)(plain, images)
    after = TeacherReader(ready, layers, saliency=True)(ready, images)
    for fused, unfused in zip(after.maps, before.maps):
        assert fused.is_contiguous()  # channels-last inside, plain layout out: losses may view(...) the maps
        assert torch.allclose(fused, unfused, atol=1e-4 * float(unfused.abs().max()))
    for stride in before.saliency:
        assert torch.allclose(after.saliency[stride], before.saliency[stride], atol=1e-5)
    bf16 = TeacherReader(ready, layers, saliency=True, cpu_bf16=True)(ready, images)
    for low, full in zip(bf16.maps, before.maps):
        error = float((low - full).abs().max() / full.abs().max())
        assert low.dtype == torch.float32 and 1e-5 < error < 0.05, error  # it ran in bf16, and came back close


@pytest.mark.slow
def test_the_teacher_runs_in_bf16_only_under_amp_on_a_cpu_with_bf16_instructions(rtdetr_teacher):
    settings = DistillSettings(distill_model=str(rtdetr_teacher), distill_det=1.0)
    with_amp = FeatureDistillationModel(load_teacher(rtdetr_teacher), student(), settings, imgsz=64)
    assert with_amp.reader.cpu_bf16 == cpu_computes_bf16()
    no_amp = student()
    no_amp.args = get_cfg(overrides={"amp": False})
    assert not FeatureDistillationModel(load_teacher(rtdetr_teacher), no_amp, settings, imgsz=64).reader.cpu_bf16


def test_under_cpu_bf16_the_backbone_runs_in_bf16_and_the_rtdetr_decoder_in_fp32(tiny_data, rtdetr_teacher):
    """RT-DETR's decoder under bf16 autocast on a CPU ran 3.5 times slower than in fp32: it runs outside it."""
    teacher = ready_for_inference(load_teacher(rtdetr_teacher))
    seen = {}
    teacher.model[0].register_forward_hook(lambda m, i, o: seen.update(backbone=o.dtype))
    teacher.model[-1].register_forward_pre_hook(
        lambda m, args: seen.update(decoder=args[0][0].dtype, autocast=torch.is_autocast_enabled("cpu")))
    reader = TeacherReader(teacher, [21], detections=True, conf=0.01, classes=class_map(NAMES, NAMES),
                           cpu_bf16=True)
    signals = reader(teacher, real_batch(tiny_data, "val")["img"])
    assert seen == {"backbone": torch.bfloat16, "decoder": torch.float32, "autocast": False}
    assert signals.maps[0].dtype == torch.float32 and len(signals.detections.scores) > 0
