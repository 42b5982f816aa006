"""Does teaching pay? The study behind the README's tables, on the demo, against a converged student.

Every arm trains the same student with the same seeds against the demo teacher, on the schedule of
params/demo.yaml (600 epochs of 50 labeled images in batches of 8: 4200 optimizer steps) or half of it
(the arms of the first schedule); only what teaches, and how long, differs:

- ``baseline-long``: the student on its labeled images, no teacher, on the demo's schedule: as many
  optimizer steps as the recipe; ``baseline``: the same on half the schedule (as many steps as
  ``u-det-offline``); ``baseline-4x``: twice the demo's schedule, the check that ``baseline-long`` is
  converged (it was not: ``baseline-4x`` early-stops within its schedule and is the converged reference);
- labeled images only: ``cwd-gt`` (the best feature setting of the earlier loss study),
  ``cwd-teacher`` (the teacher mask), ``det`` (the teacher's detections as targets), ``cwd-gt+det``;
- with the unlabeled images: ``u-det`` (online response), ``u-det-offline-long`` (the teacher labels them
  once: self-training; the demo's recipe), ``u-det-offline`` (the same on half the schedule,
  ``u-det-offline-4x`` on twice it;
  ``u-det-offline-conf0.3`` keeps the teacher's boxes down to score 0.3 instead of 0.5),
  ``u-cwd-teacher`` (features under the teacher mask), ``u-cwd-teacher+det`` (and the teacher's detections
  online), ``u-cwd-teacher+det-offline`` (with the recipe's offline labels instead); each row's
  ``images_per_epoch`` counts the unlabeled batch appended to every labeled batch, the last and partial
  one too;
  arms named with ``+sched`` add the weight schedule (a warm-up over the first 30 epochs, the last 60 without);
- ``oracle``: the true labels of the unlabeled images where the teacher's offline labels would be, on the
  recipe's schedule: the ceiling, not a competitor;
- ``*-b16``: the demo's first schedule, batches of 16 (4 optimizer steps an epoch): kept because it showed
  that on 50 labels the student is short of optimizer steps, which is why the demo now takes batches of 8.

Runs are validated on ``val`` (where choices are made) and ``test`` (reported). Each finished run adds
a row to ``benchmarks/results/kd_study.csv`` at once; a run already there is skipped, a finished run
folder is reused and an interrupted one resumed, so the study can stop and go on across sessions.

    python benchmarks/kd_study.py --arms baseline baseline-long oracle --seeds 0 1 2
    python benchmarks/kd_study.py --arms u-det u-det-offline --seeds 0      # screening, one seed
    python benchmarks/kd_study.py --report                                  # the README's tables
    python benchmarks/kd_study.py --report --readme README.md               # ... written into the README
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

import distil
from distil.engine.pseudo_labels import INDEX, pseudo_label_key
from distil.engine.settings import SETTINGS
from distil.engine.teacher_signals import class_map
from distil.engine.trainer import training_imgsz
from distil.engine.unlabeled import unlabeled_images
from distil.eval.comparison import dataset_names
from distil.eval.figures import read_results, training_seconds
from distil.params import DistillParams
from distil.paths import resolve_path
from distil.runs import run_state

RESULTS = Path(__file__).parent / "results" / "kd_study.csv"
COLUMNS = ["setting", "seed", "labeled", "unlabeled", "val_map50_95", "test_map50_95", "val_map50", "test_map50",
           "s_per_epoch", "epochs", "images_per_epoch", "run", "finished", "machine"]
# self-training: the teacher labels the unlabeled images once, the student learns from those labels
SELF_TRAINING = {"distill_unlabeled": "demo", "distill_weight": 0.0, "distill_det": 1.0, "distill_det_mode": "offline"}
# the weight schedule, sized to the demo's 600 epochs: the first 5% ramp the teacher's weights up from 0, the
# last 10% train on the labels alone (the student ends on the true task, as with mosaic off at the end)
SCHEDULE = {"distill_warmup": 30.0, "distill_stop": 60}
STUDY_PATIENCE = 100  # epochs without a better validation before a run stops: what made baseline-4x converged
HALF = {"epochs_factor": 0.5}  # the first schedule: 300 epochs, half the demo's
ARMS: dict[str, dict] = {
    "baseline": {"teacher": "none", **HALF},
    "baseline-long": {"teacher": "none"},
    "baseline-4x": {"teacher": "none", "epochs_factor": 2},
    "oracle": {"oracle": True},
    # labeled images only: no distill_unlabeled (an arm starts from the defaults, see ARM_KEYS)
    "cwd-gt": {"distill_loss": "cwd", "distill_mask": "gt", "distill_weight": 1.0, "distill_det": 0},
    "cwd-teacher": {"distill_loss": "cwd", "distill_mask": "teacher", "distill_weight": 1.0, "distill_det": 0},
    "det": {"distill_weight": 0.0, "distill_det": 1.0},
    "cwd-gt+det": {"distill_loss": "cwd", "distill_mask": "gt", "distill_weight": 1.0, "distill_det": 1.0},
    "u-det": {"distill_unlabeled": "demo", "distill_weight": 0.0, "distill_det": 1.0, "distill_det_mode": "online"},
    # the recipe: as many optimizer steps as baseline-long, twice its images
    "u-det-offline-long": dict(SELF_TRAINING),
    "u-det-offline": {**SELF_TRAINING, **HALF},
    "u-det-offline-4x": {**SELF_TRAINING, "epochs_factor": 2},  # the recipe on baseline-4x's schedule
    # more of the teacher's boxes (recall) at the price of more false ones
    "u-det-offline-conf0.3": {**SELF_TRAINING, **HALF, "distill_det_conf": 0.3},
    "u-cwd-teacher": {"distill_unlabeled": "demo", "distill_loss": "cwd", "distill_mask": "teacher",
                      "distill_weight": 1.0, "distill_det": 0},
    "u-cwd-teacher+det": {"distill_unlabeled": "demo", "distill_loss": "cwd", "distill_mask": "teacher",
                          "distill_weight": 1.0, "distill_det": 1.0, "distill_det_mode": "online"},
    # the same with the recipe's offline labels: is it the features, or the online detections, that add to it?
    "u-cwd-teacher+det-offline": {"distill_unlabeled": "demo", "distill_loss": "cwd", "distill_mask": "teacher",
                                  "distill_weight": 1.0, "distill_det": 1.0, "distill_det_mode": "offline"},
}
ARMS.update({f"{name}+sched": {**arm, **SCHEDULE} for name, arm in list(ARMS.items()) if "distill_det" in arm})
BATCH_16 = {"batch": 16, "nbs": 16}  # the first schedule (see the docstring)
ARMS.update({f"{name}-b16": {**ARMS[name], **BATCH_16} for name in ("baseline", "baseline-long", "u-det-offline")})
ARMS["oracle-b16"] = {**ARMS["oracle"], **HALF, **BATCH_16}


# every setting some arm sets starts from its default in every arm: what teaches is the arm's alone, whatever
# recipe the params file (the demo's) holds
ARM_KEYS = sorted({key for arm in ARMS.values() for key in arm} & set(SETTINGS))


def arm_params(base: DistillParams, name: str, seed: int) -> dict:
    """The flat params of one arm and seed."""
    arm = {**{key: SETTINGS[key].default for key in ARM_KEYS}, **ARMS[name]}
    epochs = round(base.epochs * arm.pop("epochs_factor", 1))
    if arm.pop("oracle", False):  # the offline path, fed the true labels (see oracle_labels)
        arm = {**arm, **SELF_TRAINING, "distill_det_conf": 1.0}
    # every epoch validated: the study's curves are its evidence of convergence (the demo validates fewer), and
    # every run stops early as Ultralytics does by default (the demo's distilled run does not)
    return {**base.as_dict(), **arm, "epochs": epochs, "seed": seed, "plots": False, "rebuild": False,
            "val_period": 1, "patience": STUDY_PATIENCE, "run": f"study-{name}-s{seed}"}


def oracle_labels(params: DistillParams) -> None:
    """Put the unlabeled images' true label files where the trainer looks for the teacher's offline labels."""
    images = unlabeled_images(params.unlabeled_source)
    names = dataset_names(distil.prepare_data(params))
    key = pseudo_label_key(params.teacher_path, images, params.distill_det_conf, training_imgsz(params.imgsz),
                           class_map(names, names))
    folder = params.runs_dir / "pseudo-labels" / key
    folder.mkdir(parents=True, exist_ok=True)
    truth = {image: str(Path(image.replace("/images/", "/labels/")).with_suffix(".txt")) for image in images}
    (folder / INDEX).write_text(json.dumps(truth, indent=1))


def evaluate_run(params: DistillParams, checkpoint: Path) -> dict:
    """mAP50-95 and mAP50 on val and test (Ultralytics' validator)."""
    data = distil.prepare_data(params)
    row = {}
    for split in ("val", "test"):
        table = distil.evaluate({"model": checkpoint}, data, params.imgsz, params.batch, params.ultralytics_device,
                                params.enhance, speed_reps=0, split=split)
        row[f"{split}_map50_95"] = round(float(table.loc["model", "mAP50-95"]), 4)
        row[f"{split}_map50"] = round(float(table.loc["model", "mAP50"]), 4)
    return row


def done_rows(results: Path) -> pd.DataFrame:
    return pd.read_csv(results) if results.exists() else pd.DataFrame(columns=COLUMNS)


def machine() -> str:
    """What trained a row: its GPU, or the CPU cores (rows from before this column are the 2-core CPU's)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()} CPU cores ({platform.machine()})"


def check_same_task(rows: pd.DataFrame, base: DistillParams, results: Path) -> None:
    """Refuse to mix runs of another labeled set into the results file (its rows would be taken as done)."""
    others = sorted({int(n) for n in rows["labeled"].dropna()} - {base.demo_train}) if "labeled" in rows else []
    if others or ("labeled" not in rows and len(rows)):
        raise SystemExit(f"{results} holds runs on {others or 'an unrecorded number of'} labeled images, and "
                         f"{base.demo_train} are asked for: move it aside (e.g. to kd_study_<n>_labels.csv) to start "
                         "the study of this task")


def append_row(results: Path, row: dict) -> None:
    """Add one result to the CSV at once (the study may stop at any moment)."""
    table = pd.concat([done_rows(results), pd.DataFrame([{**row, "machine": machine()}])], ignore_index=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    table.reindex(columns=COLUMNS).to_csv(results, index=False)


def images_per_epoch(run_dir: Path, labeled: int, epochs: int) -> float:
    """The labeled images plus the unlabeled ones appended to each of the run's batches (from its ``distill.json``:
    every batch gets a full unlabeled batch, the last and partial labeled one too)."""
    path = run_dir / "distill.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    if not record.get("unlabeled"):
        return labeled
    return labeled + record["steps"] / epochs * record["unlabeled"]["per_batch"]


def run_arm(base: DistillParams, name: str, seed: int, results: Path) -> None:
    """Train (or reuse, or resume) one arm and seed, evaluate it and record it."""
    flat = arm_params(base, name, seed)
    params = DistillParams.load(flat)
    if ARMS[name].get("oracle"):
        distil.prepare_data(params)
        oracle_labels(params)
    run_dir = params.runs_dir / params.run_name
    started = time.time()
    run_dir = distil.train(params, resume=run_state(run_dir) in ("interrupted", "damaged"))
    epochs = read_results(run_dir)
    unlabeled = params.distilling and bool(params.distill_unlabeled)
    append_row(results, {"setting": name, "seed": seed, "labeled": base.demo_train, "unlabeled": unlabeled,
                         **evaluate_run(params, run_dir / "weights" / "best.pt"),
                         "s_per_epoch": round(training_seconds(epochs) / len(epochs), 2), "epochs": len(epochs),
                         "images_per_epoch": images_per_epoch(run_dir, base.demo_train, len(epochs)),
                         "run": run_dir.name, "finished": time.strftime("%Y-%m-%d %H:%M")})
    print(f"{name} seed {seed}: {time.time() - started:.0f} s, {done_rows(results).iloc[-1].to_dict()}", flush=True)


def teacher_row(base: DistillParams, results: Path) -> None:
    """The teacher on val and test (once; later, if it is not trained yet)."""
    if (done_rows(results)["setting"] == "teacher").any():
        return
    if not base.teacher_path.exists():
        print(f"no teacher at {base.teacher_path} yet: its row comes when it is there (run 00_teacher)")
        return
    append_row(results, {"setting": "teacher", "seed": None, "labeled": None, "unlabeled": False,
                         **evaluate_run(base, base.teacher_path), "s_per_epoch": None, "epochs": None,
                         "images_per_epoch": None, "run": str(base.teacher_path),
                         "finished": time.strftime("%Y-%m-%d %H:%M")})


def report(rows: pd.DataFrame) -> str:
    """Markdown: mean ± std over seeds per arm on test (and val), seconds per epoch, gap closed (test)."""
    runs = rows[rows["setting"] != "teacher"]
    teachers = rows[rows["setting"] == "teacher"]
    teacher = teachers.iloc[0] if len(teachers) else pd.Series(
        {"test_map50_95": math.nan, "test_map50": math.nan, "val_map50_95": math.nan})
    summary = runs.groupby("setting", sort=False).agg(
        seeds=("seed", "count"), test=("test_map50_95", "mean"), test_std=("test_map50_95", "std"),
        test50=("test_map50", "mean"), test50_std=("test_map50", "std"), val=("val_map50_95", "mean"),
        s_per_epoch=("s_per_epoch", "mean"), unlabeled=("unlabeled", "first"))
    order = {"baseline": 0, "oracle": 2}  # the references first (shortest schedule first), the ceiling last

    def place(name: str) -> tuple[int, float]:
        group = order.get(name.split("-")[0], 1)
        return group, ARMS.get(name, {}).get("epochs_factor", 1) if group == 0 else 0

    summary = summary.loc[sorted(summary.index, key=place)]
    baselines = summary.loc[[s for s in summary.index if s.startswith("baseline")]]  # every labels-only reference
    best = baselines["test"].idxmax() if len(baselines) else None
    gap = (teacher["test_map50_95"] - baselines.loc[best, "test"]) if best else math.nan

    def spread(value: float) -> str:
        return "" if pd.isna(value) else f" ± {value:.3f}"

    lines = [f"| setting | unlabeled | seeds | test mAP50-95 | test mAP50 | val mAP50-95 | s/epoch | gap closed "
             f"(test, vs {best or 'no baseline yet'}) |", "|---|---|---|---|---|---|---|---|",
             f"| teacher | | | {teacher['test_map50_95']:.3f} | {teacher['test_map50']:.3f} | "
             f"{teacher['val_map50_95']:.3f} | | |"]
    for name, row in summary.iterrows():
        closed = "" if name in baselines.index or not gap > 0 else \
            f"{(row['test'] - baselines.loc[best, 'test']) / gap:+.0%}"
        lines.append(f"| {name} | {'yes' if row['unlabeled'] else ''} | {int(row['seeds'])} | {row['test']:.3f}"
                     f"{spread(row['test_std'])} | {row['test50']:.3f}{spread(row['test50_std'])} | {row['val']:.3f} | "
                     f"{row['s_per_epoch']:.1f} | {closed} |")
    if len(baselines) and baselines["test_std"].notna().any():
        largest = baselines["test_std"].max()
        lines.append(f"\nLargest seed standard deviation among the baselines (test): {largest:.3f}.")
        lines += goal_lines(summary, baselines.index, best, largest, gap)
    elif len(baselines):
        lines.append("\nThe baselines have one seed each so far: no seed spread to compare gains with yet.")
    return "\n".join(lines)


def goal_lines(summary: pd.DataFrame, baselines, best: str, largest: float, gap: float) -> list[str]:
    """The issue's goal for every teaching arm with three seeds or more: a gain over the better baseline of
    at least twice the largest baseline seed std, and at least half the gap to the teacher closed."""
    lines = []
    for name, row in summary.iterrows():
        if name in baselines or name.startswith("oracle") or row["seeds"] < 3:
            continue
        gain = row["test"] - summary.loc[best, "test"]
        met = gain >= 2 * largest and gap > 0 and gain / gap >= 0.5
        lines.append(f"- {name} ({int(row['seeds'])} seeds): {gain:+.3f} over {best} = {gain / largest:.1f} x the "
                     f"largest baseline std (goal >= 2), {gain / gap:+.0%} of the gap closed (goal >= 50%): "
                     f"{'goal met' if met else 'goal not met'}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params/demo.yaml")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report", action="store_true", help="print the tables from the results file and stop")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file: rows are added to it and "
                        "--report reads it (e.g. an earlier task's, benchmarks/results/kd_study_200_labels.csv)")
    parser.add_argument("--readme", type=Path, help="with --report: write the report into this file, between "
                        "its two markers (README.md's study section), instead of printing it")
    args = parser.parse_args()
    if args.report:
        text = report_text(args.results)
        if args.readme:
            write_into(args.readme, text)
            print(f"updated the study report in {args.readme}")
        else:
            print(text)
        return
    base = DistillParams.load(args.params)
    check_same_task(done_rows(args.results), base, args.results)
    teacher_row(base, args.results)
    done = {(r.setting, int(r.seed)) for r in done_rows(args.results).itertuples() if r.setting != "teacher"}
    for seed in args.seeds:
        for name in args.arms:
            if (name, seed) not in done:
                run_arm(base, name, seed, args.results)
    print(full_report(done_rows(args.results)))


def full_report(rows: pd.DataFrame) -> str:
    """The study's table, then the first schedule's in a table of its own, then what the runs cost."""
    first = rows["setting"].str.endswith("-b16")
    parts = [report(rows[~first])]
    if first.any():
        parts += ["\nThe first schedule, batches of 16 (the `*-b16` arms):\n",
                  report(rows[first | (rows["setting"] == "teacher")])]
    runs = rows[(rows["setting"] != "teacher") & rows["epochs"].notna()]
    if len(runs):
        minutes = runs["s_per_epoch"] * runs["epochs"] / 60
        parts.append(f"\nThe {len(runs)} runs above: {minutes.sum() / 60:.1f} hours of training, "
                     f"{minutes.min():.0f} to {minutes.max():.0f} minutes a run.")
    return "\n".join(parts)


def report_text(results: Path) -> str:
    """The report of a results file, headed by where, when and on what its runs were made."""
    rows = pd.read_csv(results)
    labeled = ", ".join(str(int(n)) for n in sorted(rows["labeled"].dropna().unique()))
    where = os.path.relpath(results.resolve(), resolve_path("."))
    machines = ", ".join(sorted(set(rows["machine"].dropna()))) if "machine" in rows else ""
    return (f"Study results from {where} ({len(rows)} rows; students on {labeled} labeled images), as of "
            f"{rows['finished'].max()}, on {machines or machine()}:\n\n{full_report(rows)}")


README_START = "<!-- the study's report: python benchmarks/kd_study.py --report --readme README.md -->"
README_END = "<!-- end of the study's report -->"


def readme_parts(readme: Path) -> tuple[str, str, str]:
    """The README around its report and the report it holds now, split at the two markers."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{readme} has no place for the study's report: put the two lines {README_START} and "
                         f"{README_END} where it goes")
    before, rest = text.split(README_START, 1)
    inside, after = rest.split(README_END, 1)
    return before, inside.strip("\n"), after


def readme_report(readme: Path) -> str:
    """The report as the README holds it now, between its markers."""
    return readme_parts(readme)[1]


def write_into(readme: Path, report: str) -> None:
    """Replace the report between the README's markers (the README's tables are generated, not typed)."""
    before, _, after = readme_parts(readme)  # a clear error, before anything is written, without the markers
    readme.write_text(f"{before}{README_START}\n{report}\n{README_END}{after}")


if __name__ == "__main__":
    main()
