"""Does teaching pay? The study behind the README's tables, on the demo, against a converged student.

Its arms are params files, ``params/study/<arm>.yaml``: each builds on ``_study.yaml`` (what every arm shares:
``params/demo.yaml``'s task and schedule, every epoch validated, Ultralytics' early stopping, every distillation
setting some arm sets at its default) and holds only what its arm changes; the comment at its top says what it
tests. So every arm trains the same student with the same seeds against the demo teacher; only what teaches,
and how long, differs. ``baseline-4x`` (the student alone on twice the demo's schedule, early-stopped within it)
is the converged reference; ``oracle*`` arms learn from the true labels of the unlabeled images where the
teacher's offline labels would be (the ceiling, not a competitor: this script writes them as a label folder).

Runs are validated on ``val`` (where choices are made) and ``test`` (reported). Each finished run adds a row
to ``benchmarks/results/kd_study.csv`` at once, with its CPU seconds (and those of the labeling pass it learned
from); a run already there is skipped, a finished run folder is reused and an interrupted one resumed, so the
study can stop and go on across sessions. ``--draw N`` runs arms on another draw of the demo's data
(``demo_seed: N``, 1000 test images; rows in ``kd_study_draws.csv``): a check on data no choice was made on.

    python benchmarks/kd_study.py --arms baseline baseline-long oracle --seeds 0 1 2
    python benchmarks/kd_study.py --arms u-det u-det-offline --seeds 0      # screening, one seed
    python benchmarks/kd_study.py --chosen                                  # the arm params/demo.yaml is
    python benchmarks/kd_study.py --draw 1 --arms baseline-4x --seeds 0     # another draw of the data
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

import numpy as np
import pandas as pd
import torch

import distil
from distil.engine.labeling import LabelSettings, LabelStore, ShardLabels, image_list
from distil.engine.trainer import training_imgsz
from distil.eval.figures import read_results, training_seconds
from distil.params import DistillParams
from distil.params_files import BASE_KEY, base_path, load_yaml_text, read_params_file
from distil.paths import resolve_path
from distil.runs import VOLATILE, comparable, run_state

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "kd_study.csv"
DRAWS = Path(__file__).parent / "results" / "kd_study_draws.csv"
COSTS = Path(__file__).parent / "results" / "kd_cost.csv"  # kd_cost.py's side-by-side step times
ARMS_DIR = ROOT / "params" / "study"
DEMO = ROOT / "params" / "demo.yaml"
DRAW_TEST = 1000  # test images of another draw: its numbers carry less sampling noise than the 200 of draw 0
COLUMNS = ["setting", "seed", "draw", "labeled", "unlabeled", "val_map50_95", "test_map50_95", "val_map50",
           "test_map50", "s_per_epoch", "epochs", "images_per_epoch", "cpu_s", "label_cpu_s", "run", "finished",
           "machine"]
# how a run was made (where, how often validated, under which name), not what it trains: ignored when an arm is
# compared with a params file
STUDY_ONLY = {"val_period", "patience", "plots", "run", "seed"}


def arm_files(folder: Path = ARMS_DIR) -> dict[str, Path]:
    """Arm name -> its params file (files starting with ``_`` are shared bases, not arms)."""
    return {path.stem: path for path in sorted(folder.glob("*.yaml")) if not path.name.startswith("_")}


ARMS = arm_files()


def arm_keys(path: Path) -> dict:
    """What an arm file and its bases set above the task file (``params/demo.yaml``): the study's shared keys and
    every arm it builds on (``base: u-cwd-teacher+det-offline-every4.yaml``), the nearest winning."""
    values = load_yaml_text(path.read_text(), str(path)) or {}
    base = values.pop(BASE_KEY, None)
    if base is None or base_path(path, base) == DEMO.resolve():
        return values
    return {**arm_keys(base_path(path, base)), **values}


def arm_values(name: str, params_file: Path = DEMO) -> dict:
    """An arm's flat params on the task of ``params_file``: that file, then the arm's own keys and its bases'.

    With ``params/demo.yaml`` this is the arm file itself, its bases resolved (a test checks it); another task file
    (``params/demo-gpu.yaml``) takes the place of its root.
    """
    return {**read_params_file(params_file), **arm_keys(ARMS[name])}


def arm_params(name: str, seed: int, params_file: Path = DEMO, draw: int | None = None) -> dict:
    """The flat params of one arm and seed (and draw of the data: ``demo_seed``, with a larger test split)."""
    values = arm_values(name, params_file)
    if draw is not None:
        values.update(demo_seed=draw, demo_test=DRAW_TEST)
    run = f"study-{name}-s{seed}" if draw is None else f"study-d{draw}-{name}-s{seed}"
    return {**values, "seed": seed, "rebuild": False, "run": run}


def chosen_arm(params_file: Path = DEMO) -> str:
    """The arm ``params_file`` is: the one whose params compare equal to it, study-only keys aside.

    Raises:
        SystemExit: No arm is the recipe (a change to params/demo.yaml that no arm file records).
    """
    demo = {k: v for k, v in comparable(read_params_file(params_file)).items() if k not in STUDY_ONLY | VOLATILE}
    for name in ARMS:
        arm = {k: v for k, v in comparable(arm_values(name, params_file)).items() if k not in STUDY_ONLY | VOLATILE}
        if arm == demo:
            return name
    raise SystemExit(f"no arm in {ARMS_DIR} is the recipe of {params_file}: add it as an arm file")


def is_oracle(name: str) -> bool:
    return name.startswith("oracle")


def true_labels(images: list[str], classes: int) -> ShardLabels:
    """The ground truth of images (their YOLO label files beside ``images/``), as a shard of certain boxes."""
    parts = []
    for row, image in enumerate(images):
        label = Path(image.replace(f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}")).with_suffix(".txt")
        found = np.array(label.read_text().split(), dtype=np.float32).reshape(-1, 5) if label.exists() else \
            np.zeros((0, 5), np.float32)
        parts.append((np.full(len(found), row, np.int32), found))
    image = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    cls = rows[:, 0].astype(np.int32)
    return ShardLabels(image, rows[:, 1:], np.ones(len(rows), np.float32), cls,
                       np.eye(classes, dtype=np.float32)[cls])


def oracle_labels(params: DistillParams) -> str:
    """The unlabeled images' true labels, written once as a label folder (``distill_det_labels`` of the oracle)."""
    from ultralytics.data.utils import check_det_dataset  # after distil's import, which keeps Ultralytics offline

    images = image_list(params.unlabeled_source)
    names = check_det_dataset(str(distil.prepare_data(params)))["names"]
    folder = params.runs_dir / "oracle-labels" / params.demo_data_dir().name
    settings = LabelSettings("ground truth", "", training_imgsz(params.imgsz), 1.0, False, names, made_by="labels")
    store = LabelStore.create(folder, settings, images)
    for shard in store.pending():
        store.write_shard(shard, true_labels(store.shard_images(shard), len(names)))
    return str(folder)


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


def run_arm(name: str, seed: int, results: Path, params_file: Path = DEMO, draw: int | None = None) -> None:
    """Train (or reuse, or resume) one arm and seed, evaluate it and record it with what it cost."""
    flat = arm_params(name, seed, params_file, draw)
    if is_oracle(name):
        flat["distill_det_labels"] = oracle_labels(DistillParams.load(flat))
    params = DistillParams.load(flat)
    run_dir = params.runs_dir / params.run_name
    state = run_state(run_dir)
    started, cpu_started = time.time(), time.process_time()
    run_dir = distil.train(params, resume=state in ("interrupted", "damaged"))
    cpu = time.process_time() - cpu_started  # this process's CPU seconds, all threads (labeling here included)
    epochs = read_results(run_dir)
    unlabeled = params.distilling and bool(params.distill_unlabeled)
    append_row(results, {"setting": name, "seed": seed, "draw": draw or 0, "labeled": params.demo_train,
                         "unlabeled": unlabeled, **evaluate_run(params, run_dir / "weights" / "best.pt"),
                         "s_per_epoch": round(training_seconds(epochs) / len(epochs), 2), "epochs": len(epochs),
                         "images_per_epoch": images_per_epoch(run_dir, params.demo_train, len(epochs)),
                         "cpu_s": round(cpu, 1) if state == "absent" else None,  # trained here from its start
                         "label_cpu_s": labeling_cpu_seconds(run_dir),
                         "run": run_dir.name, "finished": time.strftime("%Y-%m-%d %H:%M")})
    print(f"{name} seed {seed}: {time.time() - started:.0f} s, {done_rows(results).iloc[-1].to_dict()}", flush=True)


def labeling_cpu_seconds(run_dir: Path) -> float | None:
    """The CPU seconds the teacher spent labeling what a run learned from (once per label folder, whichever run made
    it), from the run's ``distill.json``; None where the run learned from no stored labels of a teacher."""
    path = run_dir / "distill.json"
    targets = (json.loads(path.read_text()).get("targets") or {}) if path.exists() else {}
    labels = targets.get("labels") or {}
    return labels.get("cpu_s") if labels.get("made_by") == "teacher" else None


def teacher_row(base: DistillParams, results: Path, draw: int | None = None) -> None:
    """The teacher on val and test (once per draw; later, if it is not trained yet)."""
    rows = done_rows(results)
    draws = rows["draw"].fillna(0) if "draw" in rows else pd.Series(0, index=rows.index)
    if ((rows["setting"] == "teacher") & (draws == (draw or 0))).any():
        return
    if not base.teacher_path.exists():
        print(f"no teacher at {base.teacher_path} yet: its row comes when it is there (run 00_teacher)")
        return
    append_row(results, {"setting": "teacher", "seed": None, "draw": draw or 0, "labeled": None, "unlabeled": False,
                         **evaluate_run(base, base.teacher_path), "s_per_epoch": None, "epochs": None,
                         "images_per_epoch": None, "run": os.path.relpath(base.teacher_path, ROOT),
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
        return group, arm_epochs(name) if group == 0 else 0

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


def step_ratio(name: str, costs: pd.DataFrame) -> float:
    """An arm's optimizer step in baseline steps on as many images, from kd_cost.py's side-by-side demo rows.

    Measured, not counted: the same step sizes differ by the teacher's pass only, which runs on every batch
    (online), on every k-th (features every k), or never (offline targets, the teacher's pass done once)."""
    demo = costs[costs["case"] == "demo160"].drop_duplicates("mode", keep="last").set_index("mode")
    ratios = demo["ratio_to_baseline"].astype(float)
    values = arm_values(name)
    every = int(values["distill_teacher_every"])
    teacher_on_batches = float(values["distill_weight"]) > 0 or (
        float(values["distill_det"]) > 0 and values["distill_det_mode"] == "online")
    if not teacher_on_batches:
        return ratios["offline"]
    if every == 1:
        return ratios["online"]
    return ratios.get(f"every-{every}", ratios["offline"] + (ratios["online"] - ratios["offline"]) / every)


def recipe_by_the_rule(rows: pd.DataFrame, costs: pd.DataFrame) -> tuple[str | None, list[str]]:
    """The study's rule for the demo's recipe, and the lines that show it: among the teaching arms (two seeds or
    more; oracles, baselines and retired arms aside) whose mean val mAP50-95 is within one seed std of the best
    arm's, the cheapest (epochs run x step cost); among equally cheap ones (within 2%), the best on val."""
    runs = rows[(rows["setting"] != "teacher") & rows["setting"].isin(list(ARMS))]
    runs = runs[~runs["setting"].str.startswith(("baseline", "oracle"))]
    summary = runs.groupby("setting").agg(seeds=("seed", "count"), val=("val_map50_95", "mean"),
                                          val_std=("val_map50_95", "std"), epochs=("epochs", "mean"))
    summary = summary[summary["seeds"] >= 2]
    if not len(summary):
        return None, []
    best = summary["val"].idxmax()
    floor = summary.loc[best, "val"] - summary.loc[best, "val_std"]
    within = summary[summary["val"] >= floor].copy()
    within["cost"] = [row.epochs * step_ratio(name, costs) for name, row in within.iterrows()]
    cheap = within[within["cost"] <= within["cost"].min() * 1.02]
    chosen = cheap["val"].idxmax()
    lines = [f"\nThe demo's recipe by the study's rule (on val, among the arms within one seed std of the best, the "
             f"cheapest): best on val {best} ({summary.loc[best, 'val']:.4f} ± {summary.loc[best, 'val_std']:.4f}); "
             f"within it:"]
    lines += [f"- {name}: val {row.val:.4f} ({int(row.seeds)} seeds); cost {row.epochs:.0f} epochs x "
              f"{row.cost / row.epochs:.2f} baseline steps a step = {row.cost:.0f}" for name, row in within.iterrows()]
    lines.append(f"Chosen: {chosen}.")
    return chosen, lines


def arm_epochs(name: str) -> int:
    """The epochs an arm's file asks for (0 for a setting that is no longer an arm)."""
    return int(arm_values(name)["epochs"]) if name in ARMS else 0


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
    parser.add_argument("--params", type=Path, default=DEMO, help="the task every arm runs on (its root base)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--chosen", action="store_true", help="run the arm the params file is (the demo's recipe)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draw", type=int, help="another draw of the demo's data (demo_seed), with "
                        f"{DRAW_TEST} test images; rows go to {DRAWS.name}")
    parser.add_argument("--report", action="store_true", help="print the tables from the results file and stop")
    parser.add_argument("--results", type=Path, help="the results file: rows are added to it and --report reads it "
                        f"(default {RESULTS.name}, or {DRAWS.name} with --draw; e.g. kd_study_200_labels.csv)")
    parser.add_argument("--readme", type=Path, nargs="+", help="with --report: write the generated parts into these "
                        "files, between their markers (benchmarks/README.md: the report; README.md: the headline), "
                        "instead of printing them")
    args = parser.parse_args()
    results = args.results or (DRAWS if args.draw is not None else RESULTS)
    if args.report:
        generated = {"report": report_text(results),
                     "headline": headline(done_rows(RESULTS), done_rows(DRAWS), chosen_arm(args.params))}
        for readme in args.readme or []:
            for part in parts_in(readme):
                write_into(readme, generated[part], part)
                print(f"updated the study's {part} in {readme}")
        if not args.readme:
            print(generated["report"])
        return
    arms = [chosen_arm(args.params)] if args.chosen else args.arms
    task = {"demo_seed": args.draw, "demo_test": DRAW_TEST} if args.draw is not None else {}
    base = DistillParams.load(args.params, **task)
    check_same_task(done_rows(results), base, results)
    teacher_row(base, results, args.draw)
    rows = done_rows(results)
    draws = rows["draw"].fillna(0).astype(int) if "draw" in rows else pd.Series(0, index=rows.index)
    done = {(r.setting, int(r.seed), d) for r, d in zip(rows.itertuples(), draws) if r.setting != "teacher"}
    for seed in args.seeds:
        for name in arms:
            if (name, seed, args.draw or 0) not in done:
                run_arm(name, seed, results, args.params, args.draw)
    print(full_report(done_rows(results)))


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
    if COSTS.exists():
        parts += recipe_by_the_rule(rows[~first], pd.read_csv(COSTS))[1]
    return "\n".join(parts)


def report_text(results: Path) -> str:
    """The report of a results file, headed by where, when and on what its runs were made."""
    rows = pd.read_csv(results)
    labeled = ", ".join(str(int(n)) for n in sorted(rows["labeled"].dropna().unique()))
    where = os.path.relpath(results.resolve(), resolve_path("."))
    machines = ", ".join(sorted(set(rows["machine"].dropna()))) if "machine" in rows else ""
    return (f"Study results from {where} ({len(rows)} rows; students on {labeled} labeled images), as of "
            f"{rows['finished'].max()}, on {machines or machine()}:\n\n{full_report(rows)}")


README_START = "<!-- the study's report: python benchmarks/kd_study.py --report --readme benchmarks/README.md -->"
README_END = "<!-- end of the study's report -->"
HEADLINE_START = "<!-- the headline: python benchmarks/kd_study.py --report --readme README.md -->"
HEADLINE_END = "<!-- end of the headline -->"
MARKERS = {"report": (README_START, README_END), "headline": (HEADLINE_START, HEADLINE_END)}


def readme_parts(readme: Path, part: str = "report") -> tuple[str, str, str]:
    """A file around one of its generated parts and the part as it holds it now, split at its two markers."""
    start, end = MARKERS[part]
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no place for the study's {part}: put the two lines {start} and {end} where "
                         "it goes")
    before, rest = text.split(start, 1)
    inside, after = rest.split(end, 1)
    return before, inside.strip("\n"), after


def readme_report(readme: Path, part: str = "report") -> str:
    """A generated part as the file holds it now, between its markers."""
    return readme_parts(readme, part)[1]


def write_into(readme: Path, report: str, part: str = "report") -> None:
    """Replace a generated part between the file's markers (the tables are generated, not typed)."""
    before, _, after = readme_parts(readme, part)  # a clear error, before anything is written, without the markers
    start, end = MARKERS[part]
    readme.write_text(f"{before}{start}\n{report}\n{end}{after}")


def parts_in(readme: Path) -> list[str]:
    """The generated parts a file has a place for."""
    text = readme.read_text()
    return [part for part, (start, end) in MARKERS.items() if start in text and end in text]


def seeds_cell(values: pd.Series) -> str:
    values = values.dropna()
    if not len(values):
        return ""
    spread = f" ± {values.std():.3f}" if len(values) > 1 else ""
    return f"{values.mean():.3f}{spread} ({len(values)})"


def headline(study: pd.DataFrame, draws: pd.DataFrame, chosen: str) -> str:
    """The README's table: teacher, converged baseline and the demo's recipe on test, per draw of the data and over
    the draws (test mAP50-95; mean ± std over seeds, how many in brackets)."""
    frames = [study.assign(draw=0)] + ([draws.assign(draw=draws["draw"].fillna(0).astype(int))] if len(draws) else [])
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["draw"].isna() | (rows["draw"] == rows["draw"])]
    numbers = sorted(int(d) for d in rows["draw"].dropna().unique())
    names = {"teacher": "teacher (scaled-down RT-DETR, 3000 labeled images)",
             "baseline-4x": "student alone, trained until it stops improving (baseline-4x)",
             chosen: f"student distilled: the demo's recipe ({chosen})"}
    if chosen != "u-cwd-teacher+det":
        names["u-cwd-teacher+det"] = "student distilled online (the teacher on every batch: u-cwd-teacher+det)"
    draw_names = [f"draw {d} ({'200' if d == 0 else DRAW_TEST} test images)" for d in numbers]
    lines = ["| model | " + " | ".join(draw_names) + " | mean over draws |", "|---" * (len(numbers) + 2) + "|"]
    gaps = []
    for setting, label in names.items():
        cells, means = [], []
        for d in numbers:
            mine = rows[(rows["setting"] == setting) & (rows["draw"] == d)]["test_map50_95"]
            cells.append(seeds_cell(mine) if setting != "teacher" else (f"{mine.iloc[0]:.3f}" if len(mine) else ""))
            means.append(mine.mean() if len(mine) else math.nan)
        complete = [m for m in means if not math.isnan(m)]
        overall = f"{sum(complete) / len(complete):.3f}" if len(complete) == len(numbers) else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {overall} |")
        gaps.append(means)
    teacher, baseline, recipe = gaps[0], gaps[1], gaps[2]
    closed = [(r - b) / (t - b) for t, b, r in zip(teacher, baseline, recipe)
              if not any(math.isnan(v) for v in (t, b, r)) and t > b]
    if closed:
        lines.append("\nShare of the teacher-baseline gap the recipe closes: "
                     + ", ".join(f"{c:.0%}" for c in closed) + (f" (mean {sum(closed) / len(closed):.0%})"
                                                                  if len(closed) > 1 else "") + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
