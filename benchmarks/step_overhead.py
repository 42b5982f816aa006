"""What distillation costs per training step, beyond the teacher's unavoidable forward pass.

Measures side by side, in one process, interleaved (so drift hits all three alike):

- ``student``: a plain student training step (forward, detection loss, backward, optimizer step);
- ``teacher``: the teacher as distillation reads it (no grad): up to its last hooked layer for
  features, plus its objectness for the teacher mask, the whole model when its detections are targets;
- ``distill``: a distillation training step (that teacher reading + student step + adapters + losses);

and prints ``R = t_distill / (t_student + t_teacher)``: everything above 1 is this project's
overhead (hooks, adapters, feature loss, masks, the response targets and their assignment). Target:
R <= 1.05. By default four paths are measured: features (``mse``), features under the teacher mask,
the teacher's detections as targets (``det``), and all of them together. The random-weight teacher is
read at the score threshold that keeps ``--boxes`` detections per image (20: what a trained teacher
gives at 0.5 on a busy image), so that its detections cost what real ones would to assign.

    python benchmarks/step_overhead.py                        # rtdetr-x -> yolov8s, 320 and 640, CPU
    python benchmarks/step_overhead.py --paths feature --imgsz 640
    python benchmarks/step_overhead.py --device cuda --batch 16 --imgsz 640 --amp
"""

from __future__ import annotations

import argparse

import torch
from ultralytics.cfg import get_cfg

import distil  # noqa: F401  (offline Ultralytics)
from distil.engine import DistillSettings, FeatureDistillationModel, build_from_yaml, load_teacher
from distil.eval.timing import interleaved_medians
from distil.manifest import write_json


def make_batch(batch: int, imgsz: int, device: torch.device) -> dict:
    """A training batch with 4 boxes per image, as the Ultralytics dataloader would give."""
    generator = torch.Generator().manual_seed(0)
    n = 4 * batch
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=generator).to(device),
        "cls": torch.randint(0, 3, (n, 1), generator=generator).float().to(device),
        "bboxes": (torch.rand(n, 4, generator=generator) * 0.4 + torch.tensor([0.3, 0.3, 0.05, 0.05])).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(4).float().to(device),
    }


# path -> the settings that make it
PATHS = {
    "feature": {"distill_weight": 1.0, "distill_mask": "none"},
    "feature+teacher-mask": {"distill_weight": 1.0, "distill_mask": "teacher"},
    "det": {"distill_weight": 0.0, "distill_det": 1.0},
    "feature+teacher-mask+det": {"distill_weight": 1.0, "distill_mask": "teacher", "distill_det": 1.0},
}


def threshold_for(teacher, images: torch.Tensor, boxes: int) -> float:
    """The score threshold at which the teacher keeps about ``boxes`` detections per image."""
    with torch.no_grad():
        y = teacher(images)[0]
    scores = y[..., 4] if y.shape[-1] == 6 else y[:, 4:].amax(1)  # RT-DETR (B, k, 6) or YOLO (B, 4 + nc, A)
    return float(scores.flatten().sort(descending=True).values[boxes * len(images) - 1].clamp(1e-6, 1 - 1e-6))


def measure(teacher_cfg: str, student_cfg: str, imgsz: int, batch: int, reps: int, device: torch.device,
            amp: bool, loss: str, path: str, boxes: int) -> dict:
    teacher = load_teacher(build_from_yaml(teacher_cfg)).to(device)
    student = build_from_yaml(student_cfg).to(device)
    student.args = get_cfg()
    batch_data = make_batch(batch, imgsz, device)
    conf = threshold_for(teacher, batch_data["img"], boxes)
    settings = DistillSettings(distill_model=teacher_cfg, distill_loss=loss, distill_det_conf=conf, **PATHS[path])
    wrapper = FeatureDistillationModel(teacher, student, settings, imgsz=imgsz).to(device).train()
    student_optimizer = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.9)
    distill_optimizer = torch.optim.SGD([*student.parameters(), *wrapper.projector.parameters()], lr=1e-4, momentum=0.9)
    autocast = lambda: torch.autocast(device.type, enabled=amp and device.type == "cuda")  # noqa: E731

    def student_step():
        with autocast():
            loss, _ = student.loss(batch_data)
        loss.sum().backward()
        student_optimizer.step()
        student_optimizer.zero_grad(set_to_none=True)

    def teacher_forward():
        with torch.no_grad(), autocast():
            wrapper.reader(teacher, batch_data["img"])

    def distill_step():
        with autocast():
            loss, _ = wrapper.loss(batch_data)
        loss.sum().backward()
        distill_optimizer.step()
        distill_optimizer.zero_grad(set_to_none=True)

    steps = {"student": student_step, "teacher": teacher_forward, "distill": distill_step}
    medians = interleaved_medians(steps, reps, warmup=1, device=device)
    return {
        "teacher": teacher_cfg, "student": student_cfg, "imgsz": imgsz, "batch": batch, "reps": reps,
        "device": str(device), "amp": amp, "loss": loss, "path": path, "teacher_boxes_per_image": boxes,
        "threads": torch.get_num_threads(),
        **{f"t_{name}_s": round(value, 4) for name, value in medians.items()},
        "R": round(medians["distill"] / (medians["student"] + medians["teacher"]), 3),
        "distill_over_student": round(medians["distill"] / medians["student"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="rtdetr-x.yaml")
    parser.add_argument("--student", default="yolov8s.yaml")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--loss", default="mse")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--boxes", type=int, default=20, help="teacher detections per image (response paths)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="outputs/bench/step_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for imgsz in args.imgsz:
        for path in args.paths:
            row = measure(args.teacher, args.student, imgsz, args.batch, args.reps, device, args.amp, args.loss, path,
                          args.boxes)
            rows.append(row)
            print(f"{args.teacher} -> {args.student} @ {imgsz}, {path}, batch {args.batch}, {device}"
                  f"{' amp' if args.amp else ''}, {row['threads']} threads: student step {row['t_student_s']:.3f}s, "
                  f"teacher {row['t_teacher_s']:.3f}s, distill step {row['t_distill_s']:.3f}s -> "
                  f"R = t_distill / (t_student + t_teacher) = {row['R']:.3f}  (distill/student = "
                  f"{row['distill_over_student']:.2f}x)", flush=True)
    print(f"written {write_json(args.out, rows)}")


if __name__ == "__main__":
    main()
