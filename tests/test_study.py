"""The study's bookkeeping: each arm's params, and the README table computed from the results file."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import distil
from distil.eval.figures import read_results
from distil.params import DistillParams, EvalParams, ParamsError
from distil.runs import differing_params, recorded_params

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("kd_study", Path(__file__).parents[1] / "benchmarks" / "kd_study.py")
kd_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kd_study)


def row(setting: str, seed: int | None, test: float, unlabeled: bool = False) -> dict:
    return {"setting": setting, "seed": seed, "unlabeled": unlabeled, "val_map50_95": test + 0.01,
            "test_map50_95": test, "val_map50": test + 0.2, "test_map50": test + 0.2, "s_per_epoch": 10.0}


def test_arms_change_only_what_teaches():
    base = kd_study.read_params_file(kd_study.DEMO)
    baseline, long = kd_study.arm_params("baseline", 1), kd_study.arm_params("baseline-long", 1)
    recipe = kd_study.arm_params("u-det-offline-long", 1)
    assert baseline["teacher"] == "none" and long["epochs"] == 2 * baseline["epochs"] == base["epochs"]
    assert (long["epochs"], long["batch"]) == (recipe["epochs"], recipe["batch"])  # as many optimizer steps
    assert kd_study.arm_params("oracle", 1)["epochs"] == recipe["epochs"]  # the ceiling of the recipe
    assert base["val_period"] > 1 and baseline["val_period"] == recipe["val_period"] == 1  # whole curves
    offline, oracle = kd_study.arm_params("u-det-offline", 2), kd_study.arm_params("oracle", 2)
    assert offline["distill_det_mode"] == oracle["distill_det_mode"] == "offline"
    assert oracle["distill_det_conf"] == 1.0 and offline["distill_det_conf"] == base.get("distill_det_conf", 0.5)
    assert {k for k in offline if offline[k] != baseline.get(k)} - {"teacher", "run", "seed"} <= {
        "distill_weight", "distill_det", "distill_det_mode", "distill_unlabeled", "distill_loss", "distill_mask",
        "distill_det_targets", "epochs"}
    assert offline["run"] == "study-u-det-offline-s2" and offline["student"] == baseline["student"]
    soft, hard = kd_study.arm_params("u-det-offline-soft", 0), kd_study.arm_params("u-det-offline-long", 0)
    assert {k for k in soft if soft[k] != hard[k]} == {"distill_det_targets", "run"}  # soft targets, nothing else
    every4 = kd_study.arm_params("u-cwd-teacher+det-offline-soft-every4", 0)
    every1 = kd_study.arm_params("u-cwd-teacher+det-offline-soft", 0)
    assert {k for k in every4 if every4[k] != every1[k]} == {"distill_teacher_every", "run"}


def test_an_arm_file_is_a_params_file_whose_bases_resolve_to_what_the_study_trains():
    """Each arm can be run on its own (distil run 03_distill -f params/study/<arm>.yaml): its bases resolve to the
    params the study trains it with, seed and run name aside, also where an arm builds on another arm."""
    for name, path in kd_study.ARMS.items():
        assert distil.params_files.read_params_file(path) == kd_study.arm_values(name), name
    shorter, recipe = (kd_study.arm_values(name) for name in ("u-cwd-teacher+det-offline-every4-300",
                                                               "u-cwd-teacher+det-offline-every4"))
    assert {k for k in shorter if shorter[k] != recipe[k]} == {"epochs"} and shorter["epochs"] < recipe["epochs"]


@pytest.mark.slow
def test_every_arm_loads_as_valid_distillation_params():
    for path in kd_study.ARMS.values():
        standalone = distil.params_files.read_params_file(path)
        DistillParams.load({**standalone, "teacher": "none" if standalone.get("teacher") == "none" else
                            "assets/demo-teacher.pt"})  # every key known, every value valid


def test_an_arm_is_the_same_whatever_recipe_the_params_file_holds(tmp_path):
    """The demo's recipe may move: no other arm may move with it (a study row is reused by its name, so an arm that
    changed would be trained one way and reported as another)."""
    other = tmp_path / "demo.yaml"
    other.write_text((ROOT / "params" / "demo.yaml").read_text().replace("distill_loss: cwd", "distill_loss: pkd")
                     .replace("distill_det_mode: online", "distill_det_mode: offline"))
    assert kd_study.read_params_file(other)["distill_loss"] == "pkd"
    for name in kd_study.ARMS:
        assert kd_study.arm_values(name, other) == kd_study.arm_values(name), name


def test_the_first_schedule_arms_keep_batches_of_16_whatever_the_demo_takes():
    for name, epochs in (("baseline", 300), ("baseline-long", 600), ("u-det-offline", 300), ("oracle", 300)):
        now, first = kd_study.arm_params(name, 0), kd_study.arm_params(f"{name}-b16", 0)
        assert (now["batch"], now["nbs"]) == (8, 8) and (first["batch"], first["nbs"]) == (16, 16)
        assert first["epochs"] == epochs  # the schedule its rows were trained on
        assert {k for k in first if first[k] != now[k]} - {"epochs"} == {"batch", "nbs", "run"}  # an oracle stays one


def test_report_gap_closed_is_measured_from_the_better_baseline():
    rows = pd.DataFrame([row("teacher", None, 0.70), row("baseline", 0, 0.50), row("baseline", 1, 0.52),
                         row("baseline-long", 0, 0.55), row("baseline-long", 1, 0.57),
                         row("u-det", 0, 0.62, True), row("u-det", 1, 0.64, True)])
    table = kd_study.report(rows)
    line = next(line for line in table.splitlines() if line.startswith("| u-det |"))
    assert "0.630 ± 0.014" in line and line.rstrip(" |").endswith("+50%")  # (0.63 - 0.56) / (0.70 - 0.56)
    assert "vs baseline-long" in table and "Largest seed standard deviation among the baselines (test): 0.014" in table


def test_report_lists_the_baselines_shortest_schedule_first_and_the_ceiling_last():
    rows = pd.DataFrame([row("teacher", None, 0.70), row("baseline-4x", 0, 0.60), row("oracle", 0, 0.69, True),
                         row("baseline", 0, 0.46), row("u-det", 0, 0.65, True), row("baseline-long", 0, 0.55)])
    names = [line.split("|")[1].strip() for line in kd_study.report(rows).splitlines()[2:8]]
    assert names == ["teacher", "baseline", "baseline-long", "baseline-4x", "u-det", "oracle"]


def test_report_says_when_there_is_no_seed_spread_yet():
    table = kd_study.report(pd.DataFrame([row("teacher", None, 0.7), row("baseline", 0, 0.5)]))
    assert "one seed each" in table and "nan" not in table


def test_results_of_another_labeled_set_are_refused_not_taken_as_done():
    base = DistillParams.load("params/demo.yaml", teacher="assets/demo-teacher.pt", demo_train=50)
    kd_study.check_same_task(pd.DataFrame([{**row("baseline", 0, 0.5), "labeled": 50}]), base, kd_study.RESULTS)
    for rows in (pd.DataFrame([{**row("baseline", 0, 0.5), "labeled": 200}]), pd.DataFrame([row("baseline", 0, 0.5)])):
        with pytest.raises(SystemExit, match="move it aside"):
            kd_study.check_same_task(rows, base, kd_study.RESULTS)


def test_every_labels_only_reference_can_be_the_better_baseline():
    rows = pd.DataFrame([row("teacher", None, 0.70), row("baseline-long-b16", 0, 0.50), row("baseline-long", 0, 0.60),
                         row("u-det-offline", 0, 0.65, True)])
    table = kd_study.report(rows)
    assert "vs baseline-long) |" in table and "| u-det-offline |" in table and "+50%" in table


def test_images_per_epoch_counts_the_unlabeled_batch_appended_to_every_labeled_batch(tmp_path):
    assert kd_study.images_per_epoch(tmp_path, 50, 600) == 50  # labels only: no distill.json
    (tmp_path / "distill.json").write_text(json.dumps({"steps": 2100, "unlabeled": {"per_batch": 8}}))
    assert kd_study.images_per_epoch(tmp_path, 50, 300) == 50 + 7 * 8  # 50 labeled in 7 batches of 8


def test_the_demo_recipe_is_an_arm_of_the_study():
    """params/demo.yaml equals one arm file (the study's keys aside): the recipe the README reports is one the study
    measured, and make study runs it on three seeds by this same test (kd_study.py --chosen)."""
    chosen = kd_study.chosen_arm()
    demo, arm = kd_study.read_params_file(kd_study.DEMO), kd_study.arm_params(chosen, 0)
    assert all(demo[key] == arm[key] for key in ("epochs", "batch", "nbs", "teacher", "distill_unlabeled"))
    assert "--chosen" in (ROOT / "Makefile").read_text()


def test_the_demo_recipe_is_the_one_the_rule_picks_from_the_committed_results():
    """Section 5's rule, applied to benchmarks/results/: a new row that changes the pick fails here until
    params/demo.yaml (and the demo's timing in docs/demo.md) follows it."""
    picked, lines = kd_study.recipe_by_the_rule(kd_study.done_rows(kd_study.RESULTS), pd.read_csv(kd_study.COSTS))
    assert picked == kd_study.chosen_arm(), "\n".join(lines)


def test_the_rule_takes_the_cheapest_arm_within_a_seed_std_of_the_best_on_val():
    costs = pd.DataFrame({"case": "demo160", "mode": ["baseline", "online", "offline", "every-4"],
                          "ratio_to_baseline": [1.0, 2.0, 1.03, 1.23]})

    def rows(**vals):
        return pd.DataFrame([{"setting": name, "seed": seed, "val_map50_95": v, "epochs": 600}
                             for name, values in vals.items() for seed, v in enumerate(values)])

    online, every4, offline = "u-cwd-teacher+det", "u-cwd-teacher+det-offline-every4", "u-det-offline-soft"
    close = rows(**{online: [0.730, 0.726], every4: [0.728, 0.727], offline: [0.700, 0.702], "oracle": [0.8, 0.8]})
    assert kd_study.recipe_by_the_rule(close, costs)[0] == every4  # within 0.0028 of the best, and cheaper
    apart = rows(**{online: [0.730, 0.729], every4: [0.720, 0.721], offline: [0.700, 0.702]})
    assert kd_study.recipe_by_the_rule(apart, costs)[0] == online  # beyond the best's seed spread: the best wins
    tied = rows(**{online: [0.730, 0.726], every4: [0.727, 0.727], offline: [0.7265, 0.7255]})
    assert kd_study.recipe_by_the_rule(tied, costs)[0] == offline  # the cheapest of those within
    one_seed = rows(**{online: [0.730, 0.726], offline: [0.740]})
    assert kd_study.recipe_by_the_rule(one_seed, costs)[0] == online  # one seed has no spread to be judged by


def test_the_gpu_demo_is_the_demo_drawn_larger_and_capped_in_time():
    """params/demo-gpu.yaml differs from the demo only in size, place and time: its numbers are the same recipe's."""
    demo = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    gpu = yaml.safe_load((ROOT / "params" / "demo-gpu.yaml").read_text())
    changed = {key for key in demo.keys() & gpu.keys() if demo[key] != gpu[key]}
    assert changed == {"name", "imgsz", "demo_imgsz"} and gpu["hours"] > 0 and gpu["outputs"] != "outputs"
    # no shipped teacher at 640 px; the GPU teacher trained in the student's batches of 8 (its record says so)
    # (and a GPU validates every epoch in a fraction of a second: val_period is a CPU's saving)
    assert set(demo) - set(gpu) <= {"teacher_cache", "teacher_batch", "samples", "speed_reps", "val_period"}


def test_the_goal_is_judged_on_three_seeds_against_the_better_baseline():
    rows = [row("teacher", None, 0.70), *(row("baseline", seed, 0.50 + 0.01 * seed) for seed in range(3)),
            *(row("baseline-long", seed, 0.55 + 0.01 * seed) for seed in range(3)),
            *(row("u-det-offline", seed, 0.64 + 0.001 * seed, True) for seed in range(3)),
            *(row("det", seed, 0.58, True) for seed in range(3)), row("cwd-gt", 0, 0.69)]
    table = kd_study.report(pd.DataFrame(rows))
    assert "- u-det-offline (3 seeds): +0.081 over baseline-long = 8.1 x" in table and "+58% of the gap closed" in table
    assert table.count("goal met") == 1 and "goal not met" in table
    assert "- det (3 seeds): +0.020 over baseline-long = 2.0 x" in table
    assert "- cwd-gt" not in table  # one seed: screened, not judged


def test_the_evaluation_adds_the_oracle_once_the_study_trained_it_on_the_same_student(tmp_path):
    overrides = {"teacher": "assets/demo-teacher.pt", "outputs": str(tmp_path)}
    distilled = DistillParams.load("params/demo.yaml", teacher="assets/demo-teacher.pt").run_name
    for run in ("demo-baseline", distilled):
        (tmp_path / "runs" / run / "weights").mkdir(parents=True)
        (tmp_path / "runs" / run / "weights" / "best.pt").touch()
    assert list(EvalParams.load("params/demo.yaml", **overrides).models()) == ["teacher", "baseline", "distilled"]

    oracle = tmp_path / "runs" / "study-oracle-s0"
    (oracle / "weights").mkdir(parents=True)
    (oracle / "weights" / "best.pt").touch()
    assert "oracle" not in EvalParams.load("params/demo.yaml", **overrides).models()  # still training: no manifest
    trained = DistillParams.load("params/demo.yaml", teacher="assets/demo-teacher.pt").as_dict()
    (oracle / "manifest.json").write_text(json.dumps({"params": {**trained, "student": "yolov8s.yaml"}}))
    assert "oracle" not in EvalParams.load("params/demo.yaml", **overrides).models()  # another student
    (oracle / "manifest.json").write_text(json.dumps({"params": trained}))
    assert EvalParams.load("params/demo.yaml", **overrides).models()["oracle"] == oracle / "weights" / "best.pt"
    assert "oracle" not in EvalParams.load("params/demo.yaml", oracle_run="", **overrides).models()
    with pytest.raises(ParamsError, match="the oracle run's .*missing.*not found; train it with benchmarks/kd_study"):
        EvalParams.load("params/demo.yaml", oracle_run="missing", **overrides)


@pytest.mark.slow
def test_the_gpu_demo_script_trains_the_teacher_then_both_students_and_merges_their_rows(tmp_path):
    """benchmarks/gpu_demo.sh end to end on tiny settings (CPU, 64 px, a second or two per training run)."""
    tiny = {**yaml.safe_load((ROOT / "params" / "demo-gpu.yaml").read_text()), "outputs": str(tmp_path / "out"),
            "device": "cpu", "workers": 0, "imgsz": 64, "demo_imgsz": 64, "demo_train": 8, "demo_val": 4,
            "demo_test": 4, "demo_unlabeled": 16, "teacher_train": 16, "hours": 0.0003,
            "teacher_model": "yolov8n.yaml", "teacher_stages": "auto"}  # one stage: the script is under test
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    results = tmp_path / "gpu.csv"
    run = subprocess.run(["bash", "benchmarks/gpu_demo.sh", str(tmp_path / "tiny.yaml"), str(results)], cwd=ROOT,
                         env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = pd.read_csv(results)
    chosen = kd_study.chosen_arm()  # the demo's recipe
    assert sorted(rows["setting"]) == sorted(["baseline-long", "teacher", chosen])
    assert rows.set_index("setting").loc[chosen, "unlabeled"] and rows["machine"].notna().all()
    assert rows["epochs"].dropna().lt(600).all()  # capped by hours, not the 600 epochs
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["gpu.csv"]  # the per-run files were merged


def test_the_demos_baseline_is_the_studys_converged_baseline():
    """The demo's closing table compares against the baseline trained until it stops improving (baseline-4x):
    params/demo-baseline.yaml is that arm, whichever route trains it (make demo, papermill -f, distil run)."""
    baseline = distil.DistillParams.load("params/demo-baseline.yaml")
    converged = distil.DistillParams.load(kd_study.arm_params("baseline-4x", 0))
    assert differing_params(converged.as_dict(), baseline) == []
    recipe = distil.DistillParams.load("params/demo.yaml", teacher="assets/demo-teacher.pt")
    assert baseline.epochs == 2 * recipe.epochs and baseline.patience == 100 and recipe.patience == 0
    commands = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--baseline params/demo-baseline.yaml" in commands


def test_the_shipped_teacher_was_made_with_the_demos_params():
    """make demo copies assets/demo-teacher.pt in only for the params it was made with: a change to params/demo.yaml
    that touches the teacher (its batch once did, when the student's changed) must ship it again."""
    params = distil.TeacherParams.load("params/demo.yaml")
    record = json.loads((ROOT / "assets" / "demo-teacher.json").read_text())
    distil.teacher_training.check_same_teacher(record["params"], params, ROOT / "assets" / "demo-teacher.pt")
    assert record["params"]["batch"] == distil.teacher_training.teacher_defining(params)["batch"] != params.batch


def test_the_shipped_baseline_was_made_with_the_params_of_the_demos_baseline():
    """The baseline in assets/ is the run params/demo-baseline.yaml trains, so copying it in changes nothing but the
    time; a change to params/demo.yaml that reaches the baseline must ship it again (make baseline)."""
    params = DistillParams.load("params/demo-baseline.yaml")
    shipped = ROOT / "assets" / "demo-baseline"
    assert params.run_cache == "assets/demo-baseline" and params.run_name == "demo-baseline"
    assert differing_params(recorded_params(shipped), params) == []
    assert json.loads((shipped / "manifest.json").read_text())["shipped"]["epochs"] == len(read_results(shipped))


def test_the_readmes_hold_the_report_and_headline_of_the_committed_results():
    """The study's tables are generated from benchmarks/results/, never typed: a row added without regenerating
    them fails here (python benchmarks/kd_study.py --report --readme README.md benchmarks/README.md)."""
    fix = "run python benchmarks/kd_study.py --report --readme README.md benchmarks/README.md"
    assert kd_study.readme_report(ROOT / "benchmarks" / "README.md") == kd_study.report_text(kd_study.RESULTS), fix
    headline = kd_study.headline(kd_study.done_rows(kd_study.RESULTS), kd_study.done_rows(kd_study.DRAWS),
                                 kd_study.chosen_arm())
    assert kd_study.readme_report(ROOT / "README.md", "headline") == headline, fix


def test_the_report_goes_between_the_markers_and_nowhere_else(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# before\n\n{kd_study.README_START}\nold table\n{kd_study.README_END}\n\nafter\n")
    kd_study.write_into(readme, "| new | table |")
    start, end = kd_study.README_START, kd_study.README_END
    assert readme.read_text() == f"# before\n\n{start}\n| new | table |\n{end}\n\nafter\n"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no place for the study's report"):
        kd_study.write_into(readme, "| new | table |")
    assert readme.read_text() == "# no markers\n"
