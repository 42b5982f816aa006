"""How much of the teacher's features does a student already carry? A diagnostic for "why no gain".

Feature distillation can only teach what a 1x1 adapter cannot already read off the student. For
each paired level this fits, per student, the best linear map (ridge regression, i.e. the ideal
1x1 adapter) from the student's maps to the teacher's on training images, and reports the share of
the teacher's variance it explains (R2) on validation images. An untrained student (random
features) is the floor. When a student trained without distillation already explains most of the
teacher, an MSE-type loss has little left to transfer.

    python benchmarks/feature_fit.py                          # the demo's teacher and runs
    python benchmarks/feature_fit.py --students baseline=a.pt distilled=b.pt --teacher t.pt --data d.yaml
"""

from __future__ import annotations

import argparse

import torch

import distil
from distil.data import load_images
from distil.engine import load_teacher, pair_layers
from distil.eval.features import feature_maps, load_student, model_input
from distil.manifest import write_json
from distil.params import DistillParams
from distil.paths import resolve_path


def stacked_maps(model: torch.nn.Module, images: list, imgsz: int, indices: list[int]) -> list[torch.Tensor]:
    """Per level, every position of every image as a row: (images x H x W, channels), float64."""
    per_image = [feature_maps(model, model_input(image, imgsz), indices) for image in images]
    return [torch.cat([maps[level][0].flatten(1).T for maps in per_image]).double()
            for level in range(len(indices))]


def ridge_r2(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor,
             ridge: float) -> float:
    """R2 on held-out rows of the ridge map x -> y (with bias) fitted on the fitting rows."""
    mean_x, std_x = x_fit.mean(0), x_fit.std(0) + 1e-6
    ones = torch.ones(len(x_fit), 1, dtype=x_fit.dtype)
    design = torch.cat([(x_fit - mean_x) / std_x, ones], 1)
    gram = design.T @ design + ridge * len(x_fit) * torch.eye(design.shape[1], dtype=x_fit.dtype)
    weights = torch.linalg.solve(gram, design.T @ y_fit)
    held_out = torch.cat([(x_eval - mean_x) / std_x, torch.ones(len(x_eval), 1, dtype=x_eval.dtype)], 1)
    residual = ((held_out @ weights - y_eval) ** 2).sum()
    total = ((y_eval - y_eval.mean(0)) ** 2).sum()
    return float(1 - residual / total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params/demo.yaml")
    parser.add_argument("--teacher", help="teacher checkpoint (default: the params' teacher)")
    parser.add_argument("--data", help="data.yaml (default: the params' dataset)")
    parser.add_argument("--students", nargs="+", help="label=checkpoint.pt ... (default: the demo's runs)")
    parser.add_argument("--images", type=int, default=200,
                        help="at most this many images per split (fit on train, R2 on val)")
    parser.add_argument("--ridge", type=float, default=1e-2, help="ridge strength, per row, on standardised inputs")
    args = parser.parse_args()
    params = DistillParams.load(args.params)
    teacher_path = resolve_path(args.teacher) if args.teacher else params.teacher_path
    data = resolve_path(args.data) if args.data else distil.prepare_data(params)
    students = dict(s.split("=", 1) for s in args.students) if args.students else {
        "untrained": params.student,
        "baseline": str(params.run_dir("auto", baseline=True) / "weights" / "best.pt"),
        "distilled": str(params.run_dir("auto") / "weights" / "best.pt")}

    torch.set_num_threads(1)  # small batch-1 passes; also keeps clear of a training running beside it
    teacher = load_teacher(teacher_path)
    fit_images, eval_images = load_images(data, args.images, "train"), load_images(data, args.images, "val")
    loaded = {label: load_student(spec) for label, spec in students.items()}
    pairs = pair_layers(teacher, next(iter(loaded.values())), params.imgsz)
    t_idx, s_idx = [p.teacher.index for p in pairs], [p.student.index for p in pairs]
    t_fit, t_eval = (stacked_maps(teacher, images, params.imgsz, t_idx) for images in (fit_images, eval_images))
    results = {}
    for label, student in loaded.items():
        s_fit, s_eval = (stacked_maps(student, images, params.imgsz, s_idx) for images in (fit_images, eval_images))
        results[label] = {p.name: round(ridge_r2(s_fit[i], t_fit[i], s_eval[i], t_eval[i], args.ridge), 3)
                          for i, p in enumerate(pairs)}
    print(f"Share of the teacher's feature variance a linear 1x1 map from the student explains (R2 on "
          f"{len(eval_images)} validation images, fitted on {len(fit_images)} training images), "
          f"teacher {teacher_path.name}:")
    names = [p.name for p in pairs]
    print(f"{'student':<12}" + "".join(f"{n:>8}" for n in names))
    for label, row in results.items():
        print(f"{label:<12}" + "".join(f"{row[n]:>8.3f}" for n in names))
    path = write_json(params.outputs_dir / "bench" / "feature_fit.json",
                      {"teacher": str(teacher_path), "data": str(data), "fit_images": len(fit_images),
                       "eval_images": len(eval_images), "ridge": args.ridge, "r2": results})
    print(f"written {path}")


if __name__ == "__main__":
    main()
