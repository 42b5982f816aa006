"""Does distillation pay, and with which loss? The study behind the README's table.

On the demo dataset with the demo teacher, trains the student under one schedule and seed set:
(a) without distillation, (b) with each feature loss, each with and without the ground-truth
mask, at each weight given; over several seeds. Every run is validated on the ``val`` split (the
one used to choose settings) and, for the reported numbers, on the ``test`` split no choice was
made on. Prints and writes (``outputs/study/``) mean and spread of mAP50-95 and mAP50 per
setting, seconds per epoch, and the share of the teacher-baseline gap closed.

    python benchmarks/kd_study.py                                  # params/demo.yaml, seeds 0 1
    python benchmarks/kd_study.py --losses mse --masks none --weights 0.5 1 2 4 --seeds 0   # a weight sweep
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import pandas as pd
from distil.config import DistillParams, resolve_path
from distil.viz import read_results

import distil


def settings(losses: list[str], masks: list[str], weights: list[float]) -> list[dict]:
    """The baseline, then every loss x mask x weight."""
    rows = [{"setting": "baseline", "distill_weight": 0.0, "loss": "mse", "distill_mask": "none"}]
    for loss, mask, weight in itertools.product(losses, masks, weights):
        name = f"{loss}" + ("+gt" if mask == "gt" else "") + (f" w{weight:g}" if len(weights) > 1 else "")
        rows.append({"setting": name, "distill_weight": weight, "loss": loss, "distill_mask": mask})
    return rows


def run_name(setting: dict, seed: int) -> str:
    return "study-" + setting["setting"].replace("+", "-").replace(" ", "-") + f"-s{seed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params/demo.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--losses", nargs="+", default=["mse", "cwd", "pkd"])
    parser.add_argument("--masks", nargs="+", default=["none", "gt"])
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0])
    parser.add_argument("--out", default="outputs/study")
    args = parser.parse_args()
    base = DistillParams.load(args.params, plots=False)
    out = resolve_path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    runs = []
    for seed, setting in itertools.product(args.seeds, settings(args.losses, args.masks, args.weights)):
        overrides = {k: v for k, v in setting.items() if k != "setting"}
        run_dir = distil.train(base, seed=seed, run=run_name(setting, seed), **overrides)
        results = read_results(run_dir)
        runs.append({"setting": setting["setting"], "seed": seed, "run": str(run_dir),
                     "s_per_epoch": float(results["time"].iloc[-1]) / len(results)})
        print(f"trained {run_dir.name}: {runs[-1]['s_per_epoch']:.1f} s/epoch", flush=True)

    data = distil.prepare_data(base)
    checkpoints = {"teacher": base.teacher_path, **{Path(r["run"]).name: Path(r["run"]) / "weights" / "best.pt"
                                                     for r in runs}}
    teacher = {}
    for split in ("val", "test"):
        table = distil.evaluate(checkpoints, data, base.imgsz, base.batch, base.ultralytics_device, base.enhance,
                                speed_reps=0, split=split)
        for r in runs:
            r[f"{split} mAP50-95"] = float(table.loc[Path(r["run"]).name, "mAP50-95"])
            r[f"{split} mAP50"] = float(table.loc[Path(r["run"]).name, "mAP50"])
        teacher.update({f"{split} {m}": float(table.loc["teacher", m]) for m in ("mAP50-95", "mAP50")})
    runs_table = pd.DataFrame(runs)
    runs_table.to_csv(out / "runs.csv", index=False)

    summary = runs_table.groupby("setting", sort=False).agg(
        seeds=("seed", "count"),
        **{f"{s} {m} {f}": (f"{s} {m}", f) for s in ("test", "val") for m in ("mAP50-95", "mAP50")
           for f in ("mean", "std")},
        s_per_epoch=("s_per_epoch", "mean"))
    baseline, top = summary.loc["baseline", "test mAP50-95 mean"], teacher["test mAP50-95"]
    summary["gap closed (test)"] = [(v - baseline) / (top - baseline) if top - baseline > 1e-9 else math.nan
                                    for v in summary["test mAP50-95 mean"]]
    summary.loc["baseline", "gap closed (test)"] = math.nan
    summary = summary.round(4)
    summary.to_csv(out / "study.csv")

    command = "python benchmarks/kd_study.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items())
    header = (f"Study: `{command}` on {time.strftime('%Y-%m-%d')}, {len(runs)} runs in "
              f"{(time.time() - started) / 3600:.2f} h. Teacher ({base.teacher_path.name}): test mAP50-95 "
              f"{teacher['test mAP50-95']:.3f}, mAP50 {teacher['test mAP50']:.3f}. Student {base.student}, "
              f"{base.demo_train} training images, {base.epochs} epochs at {base.imgsz} px. Mean ± std over seeds "
              f"{args.seeds}; settings were compared on `val`, the numbers reported are on `test`.\n\n")
    lines = ["| setting | test mAP50-95 | test mAP50 | val mAP50-95 | s/epoch | gap closed |",
             "|---|---|---|---|---|---|"]
    for name, row in summary.iterrows():
        gap = "" if math.isnan(row["gap closed (test)"]) else f"{row['gap closed (test)']:+.0%}"
        lines.append(f"| {name} | {row['test mAP50-95 mean']:.3f} ± {row['test mAP50-95 std']:.3f} | "
                     f"{row['test mAP50 mean']:.3f} ± {row['test mAP50 std']:.3f} | {row['val mAP50-95 mean']:.3f} | "
                     f"{row['s_per_epoch']:.1f} | {gap} |")
    markdown = header + "\n".join(lines) + "\n"
    (out / "study.md").write_text(markdown)
    (out / "study.json").write_text(json.dumps({"command": command, "teacher": teacher, "runs": runs}, indent=2))
    print("\n" + markdown)
    print(f"written {out}")


if __name__ == "__main__":
    main()
