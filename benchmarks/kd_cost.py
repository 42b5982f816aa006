"""What teaching costs per optimizer step, by where the teacher runs, and what labeling once costs.

Side by side in one process, interleaved (so drift hits every mode alike), on the same number of images per
step (a batch of labeled + unlabeled images against a baseline batch of as many labeled ones):

- ``baseline``: the student alone (forward, detection loss, backward, optimizer step);
- ``online``: the recipe's step, the teacher on every batch (its features under its own mask, and its detections
  as targets);
- ``offline``: the teacher's stored soft labels as targets, no teacher pass at all;
- ``every-4``: the stored labels on every step and the teacher's features on every 4th (four steps, timed
  together, divided by four);

for RT-DETR-x -> YOLOv8s from their YAMLs at 640 and the demo's models at 160 (random weights: time does not
depend on them; the random teacher's detections are cut at the score that keeps 20 a image, what a trained
one gives on a busy image). Then labeling throughput: distil's labeler (one worker, and two worker processes on
half the threads each) against Ultralytics' own ``predict`` on the same images, device and batch. Then the total
for a dataset of N images and E epochs: online E x N x (t_student + t_teacher), offline E x N x t_student +
N_unlabeled x t_label, for the demo and a COCO-sized case. Rows go to ``benchmarks/results/kd_cost.csv``.

    python benchmarks/kd_cost.py                      # CPU, 2 threads (about 15 minutes on 2 cores)
    python benchmarks/kd_cost.py --device cuda --batch 16 --amp --cases x640   # a GPU (benchmarks/gpu_cost.sh)
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from step_overhead import make_batch, threshold_for
from ultralytics.cfg import get_cfg

import distil  # noqa: F401  (offline Ultralytics)
from distil.engine import DistillSettings, FeatureDistillationModel, build_from_yaml, detector, load_teacher
from distil.engine.labeling import label
from distil.engine.labeling.teacher_pass import TeacherLabeler
from distil.eval.timing import interleaved_medians

RESULTS = Path(__file__).parent / "results" / "kd_cost.csv"
CASES = {  # name -> teacher YAML, student YAML, image size
    "x640": ("rtdetr-x.yaml", "yolov8s.yaml", 640),
    "demo160": ("rtdetr-demo.yaml", "yolov8n.yaml", 160),
}
RECIPE = {"distill_loss": "cwd", "distill_mask": "teacher", "distill_weight": 1.0, "distill_det": 1.0}
BOXES = 20  # teacher detections per image
# the cases of the totals: labeled images, unlabeled images, epochs, unlabeled images seen per labeled one
TOTALS = {"demo": (50, 2000, 600, 56 / 50), "COCO-sized": (118_000, 123_000, 300, 1.0)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def with_stored_labels(batch: dict, n_labeled: int, classes: int) -> dict:
    """The batch as the trainer builds it offline: its first ``n_labeled`` images labeled, the rest with the
    teacher's stored boxes (``BOXES`` each, with scores and class vectors)."""
    generator = torch.Generator().manual_seed(1)
    device = batch["img"].device
    unlabeled = len(batch["img"]) - n_labeled
    keep = batch["batch_idx"] < n_labeled
    out = {**batch, "batch_idx": batch["batch_idx"][keep], "cls": batch["cls"][keep], "bboxes": batch["bboxes"][keep],
           "n_labeled": n_labeled}
    boxes = unlabeled * BOXES
    out["pseudo_batch_idx"] = (n_labeled + torch.arange(unlabeled).repeat_interleave(BOXES)).float().to(device)
    out["pseudo_cls"] = torch.randint(0, classes, (boxes, 1), generator=generator).float().to(device)
    out["pseudo_bboxes"] = (torch.rand(boxes, 4, generator=generator) * 0.3 + 0.2).to(device)
    out["pseudo_scores"] = (torch.rand(boxes, generator=generator) * 0.5 + 0.5).to(device)
    out["pseudo_probs"] = torch.rand(boxes, classes, generator=generator).to(device)
    return out


def step_rows(case: str, batch: int, reps: int, device: torch.device, amp: bool) -> list[dict]:
    """Seconds per optimizer step of each mode, interleaved."""
    teacher_cfg, student_cfg, imgsz = CASES[case]
    teacher = load_teacher(build_from_yaml(teacher_cfg)).to(device)
    plain = make_batch(batch, imgsz, device)
    classes = 3  # make_batch's
    conf = threshold_for(teacher, plain["img"], BOXES)
    half = batch // 2
    mixed = with_stored_labels(plain, half, classes)
    autocast = lambda: torch.autocast(device.type, enabled=amp and device.type == "cuda")  # noqa: E731

    def distiller(**settings) -> tuple[FeatureDistillationModel, torch.optim.Optimizer]:
        student = build_from_yaml(student_cfg).to(device)
        student.args, student.names = get_cfg(overrides={"amp": amp}), {i: str(i) for i in range(classes)}
        teacher.names = {i: str(i) for i in range(classes)}
        options = DistillSettings(distill_model=teacher_cfg, distill_det_conf=conf, **settings)
        model = FeatureDistillationModel(teacher, student, options, imgsz=imgsz).to(device).train()
        return model, torch.optim.SGD([*student.parameters(), *model.projector.parameters()], lr=1e-4, momentum=0.9)

    student = build_from_yaml(student_cfg).to(device)
    student.args = get_cfg(overrides={"amp": amp})
    student_optimizer = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.9)
    online, online_opt = distiller(**RECIPE)
    offline, offline_opt = distiller(distill_weight=0.0, distill_det=1.0, distill_det_mode="offline",
                                     distill_unlabeled="x")
    every4, every4_opt = distiller(**{**RECIPE, "distill_det_mode": "offline", "distill_unlabeled": "x",
                                      "distill_teacher_every": 4})

    def step(model, optimizer, data) -> None:
        with autocast():
            loss, _ = model.loss(data)
        loss.sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def every_fourth() -> None:  # one step with the teacher, three without: four steps
        for _ in range(4):
            step(every4, every4_opt, mixed)

    labeled_only = {k: v for k, v in mixed.items() if not k.startswith("pseudo_")}  # online: the teacher finds boxes
    functions = {"baseline": lambda: step(student, student_optimizer, plain),
                 "online": lambda: step(online, online_opt, labeled_only),
                 "offline": lambda: step(offline, offline_opt, mixed), "every-4": every_fourth}
    medians = interleaved_medians(functions, reps, warmup=1, device=device)
    medians["every-4"] /= 4
    common = {"teacher": teacher_cfg, "student": student_cfg, "imgsz": imgsz, "images_per_step": batch,
              "device": device_name(device), "amp": amp, "reps": reps}
    return [{"mode": mode, "s_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 2),
             "ratio_to_baseline": round(seconds / medians["baseline"], 3), **common}
            for mode, seconds in medians.items()]


def demo_images(folder: Path, count: int, imgsz: int) -> list[str]:
    """Images to label: the demo generator's, at ``imgsz``."""
    from distil.data import make_demo_dataset

    data = make_demo_dataset(folder / "data", n_train=4, n_val=4, imgsz=imgsz, seed=7, n_unlabeled=count)
    return sorted(str(p) for p in (data.parent / "images" / "unlabeled").glob("*.jpg"))


def label_rows(case: str, batch: int, images: int, reps: int, device: torch.device, threads: int) -> list[dict]:
    """Images per second: distil's labeler against Ultralytics' predict (interleaved, one worker each), then a
    labeling job on two worker processes (steady state: from its first finished shard to its last)."""
    teacher_cfg, _, imgsz = CASES[case]
    work = Path(tempfile.mkdtemp(prefix="kd_cost-"))
    try:
        torch.manual_seed(0)
        model = build_from_yaml(teacher_cfg)
        model.names = {i: str(i) for i in range(int(model.model[-1].nc))}
        checkpoint = work / "teacher.pt"
        torch.save({"model": model, "train_args": {}, "date": None, "version": None}, checkpoint)
        files = demo_images(work, images, imgsz)
        labeler = TeacherLabeler(checkpoint, imgsz, conf=0.25, device=str(device), batch=batch)
        predictor = detector(checkpoint)

        def predict() -> None:
            for _ in predictor.predict(files, imgsz=imgsz, conf=0.25, batch=batch, device=str(device), stream=True,
                                       verbose=False):
                pass

        medians = interleaved_medians({"predict": predict, "label": lambda: labeler(files)}, reps, warmup=1,
                                      device=device)
        rows = [{"mode": name, "images_per_s": round(len(files) / seconds, 2), "workers": 1, "threads": threads}
                for name, seconds in (("label (Ultralytics predict)", medians["predict"]),
                                      ("label", medians["label"]))]
        rows[1]["ratio_to_baseline"] = round(medians["predict"] / medians["label"], 3)  # throughput over predict's
        if device.type == "cpu" and threads > 1:
            finished = []
            label(checkpoint, files, work / "two", imgsz=imgsz, conf=0.25, workers=2, batch=batch,
                  shard_size=max(batch, len(files) // 8), progress=False,
                  on_shard=lambda shard, labels: finished.append(time.perf_counter()))
            size = max(batch, len(files) // 8)
            steady = (len(finished) - 1) * size / (finished[-1] - finished[0])
            rows.append({"mode": "label", "images_per_s": round(steady, 2), "workers": 2, "threads": threads // 2,
                         "ratio_to_baseline": round(steady * medians["predict"] / len(files), 3)})
        common = {"teacher": teacher_cfg, "imgsz": imgsz, "images_per_step": batch, "device": device_name(device),
                  "reps": reps}
        return [{**common, **row, "s_per_step": round(batch / row["images_per_s"], 4)} for row in rows]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def totals(rows: pd.DataFrame) -> list[str]:
    """Hours of the whole job, online against offline, from the measured per-image times."""
    lines = []
    for case in rows["case"].unique():
        mine = rows[rows["case"] == case].set_index("mode")
        if not {"baseline", "online", "label"} <= set(mine.index):
            continue
        per_image = mine["s_per_step"] / mine["images_per_step"]
        student, teacher = per_image["baseline"], per_image["online"] - per_image["baseline"]
        labeling = 1 / float(mine.loc[mine.index == "label"].query("workers == 1")["images_per_s"].iloc[0])
        for name, (labeled, unlabeled, epochs, ratio) in TOTALS.items():
            seen = epochs * labeled * (1 + ratio)
            online = seen * (student + teacher) / 3600
            offline = (seen * student + unlabeled * labeling) / 3600
            lines.append(f"{case}, {name} ({labeled} labeled + {unlabeled} unlabeled images, {epochs} epochs): "
                         f"online {online:,.1f} h, offline {offline:,.1f} h (of which labeling "
                         f"{unlabeled * labeling / 3600:,.2f} h): {online / offline:.2f} x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch", type=int, default=0, help="images per step (default: 4 at 640, 16 at 160)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--label-images", type=int, default=0, help="images labeled per timed repetition "
                        "(default: 16 at 640, 64 at 160)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    device = torch.device(args.device)
    rows = []
    for case in args.cases:
        batch = args.batch or (4 if CASES[case][2] >= 640 else 16)
        images = args.label_images or (16 if CASES[case][2] >= 640 else 64)
        for row in step_rows(case, batch, args.reps, device, args.amp) + \
                label_rows(case, batch, images, min(args.reps, 3), device, args.threads):
            rows.append({"case": case, **row, "date": time.strftime("%Y-%m-%d")})
            print({k: v for k, v in rows[-1].items() if k not in ("date",)}, flush=True)
    table = pd.DataFrame(rows)
    previous = pd.read_csv(args.out) if args.out.exists() else pd.DataFrame()
    if len(previous):  # the rows of this device replace its earlier ones; other devices' stay
        previous = previous[previous["device"].map(lambda d: d.split(" (")[0]) != device_name(device).split(" (")[0]]
    merged = pd.concat([previous, table], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(args.out, index=False)
    for line in totals(table):
        print(line)
    print(f"written {args.out}")


if __name__ == "__main__":
    np.random.seed(0)
    main()
