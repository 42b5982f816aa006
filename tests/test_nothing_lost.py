"""Nothing a user had is lost, overwritten or deleted, and no file runs code as it loads: each case a fault and
hostile-input probe found, reproduced at the exact point (a write that fails, a lock held by another process)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import distil
from distil import ParamsError, atomic
from distil.engine.checkpoints import UnsafeCheckpointError, load_checkpoint_dict
from distil.eval.figures import read_results
from distil.runs import RunBusyError, read_checkpoint, run_state

from .test_first_hour import baseline

ROOT = Path(__file__).resolve().parents[1]


class Killed(BaseException):
    """A kill, as the code it interrupts sees it: nothing after it runs, and no ``except Exception`` catches it."""


def kill_at(n: int, writes: list[Path] | None = None):
    """A fault that ends "the process" just before the ``n``-th whole-file write is renamed into place (1-based)."""
    seen = [] if writes is None else writes

    def fault(path: Path) -> None:
        seen.append(path)
        if len(seen) == n:
            raise Killed(path)

    return fault


@pytest.fixture
def faults():
    """Install faults in `distil.atomic.BEFORE_REPLACE` for one test."""
    installed = []
    yield installed
    for fault in installed:
        atomic.BEFORE_REPLACE.remove(fault)


def install(faults, fault) -> None:
    atomic.BEFORE_REPLACE.append(fault)
    faults.append(fault)


# --- 1. a run's name cannot reach outside its folder -------------------------------------------------------------
@pytest.mark.parametrize("key, value", [("run", ".."), ("run", "../outputs"), ("run", "."), ("run", "a/b"),
                                        ("name", ".."), ("baseline_run", "../x"), ("oracle_run", "..")])
def test_a_run_name_that_would_leave_its_folder_is_refused_before_anything_is_touched(tiny_data, tmp_path, key,
                                                                                      value):
    outputs = tmp_path / "out"
    (outputs / "runs" / "kept").mkdir(parents=True)
    (outputs / "teacher.pt").write_text("the user's")
    params_class = distil.EvalParams if key.endswith("_run") and key != "run" else distil.DistillParams
    with pytest.raises(ParamsError, match=f"parameter {key}='{value}' must be a plain folder name"):
        params_class.load(baseline(tiny_data, outputs, **{key: value}))
    if params_class is distil.DistillParams:
        with pytest.raises(ParamsError, match="must be a plain folder name"):
            distil.train(baseline(tiny_data, outputs, **{key: value}))
    assert (outputs / "teacher.pt").read_text() == "the user's" and (outputs / "runs" / "kept").is_dir()


@pytest.mark.slow
def test_papermill_passing_run_dotdot_is_refused_too(tmp_path, capsys):
    from distil.run_notebook import main

    outputs = tmp_path / "outputs"
    (outputs / "teacher").mkdir(parents=True)
    code = main(["03_distill", str(tmp_path / "out.ipynb"), "-f", "params/smoke.yaml", "-p", "run", "..", "-p",
                 "outputs", str(outputs), "-p", "teacher", "none"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and error[-1] == ("ParamsError: parameter run='..' must be a plain folder name (or 'auto'): no "
                                       "'/', no leading '.', not '.' or '..'")
    assert len(error) <= 3 and (outputs / "teacher").is_dir()  # the reason last, no traceback; nothing removed


# --- 2. a folder without last.pt is not deleted ------------------------------------------------------------------
@pytest.mark.slow
def test_a_finished_run_whose_last_pt_was_removed_is_still_finished_and_reused(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path, epochs=1)
    run = distil.train(params)
    (run / "weights" / "last.pt").unlink()  # to save disk
    best = (run / "weights" / "best.pt").read_bytes()
    assert run_state(run) == "finished"
    assert distil.train(params) == run and (run / "weights" / "best.pt").read_bytes() == best
    assert (run / "manifest.json").exists() and (run / "results.csv").exists()


@pytest.mark.slow
def test_a_kill_inside_resume_from_best_leaves_a_run_that_resumes_again(tiny_data, tmp_path, faults):
    from .test_first_hour import interrupted_run

    params = baseline(tiny_data, tmp_path, epochs=3)
    run = interrupted_run(params, tiny_data, epochs=2)
    (run / "weights" / "last.pt").write_bytes(b"half a checkpoint")
    install(faults, lambda path: (_ for _ in ()).throw(Killed(path)) if path.name == "last.pt" else None)
    with pytest.raises(Killed):  # killed after last.pt moved aside, before best.pt was copied in as last.pt
        distil.train({**params, "resume": True})
    atomic.BEFORE_REPLACE.remove(faults.pop())
    assert not (run / "weights" / "last.pt").exists() and run_state(run) == "damaged"  # not "failed": not cleared
    assert distil.train({**params, "resume": True}) == run and run_state(run) == "finished"
    assert list(read_results(run)["epoch"]) == [1, 2, 3]


@pytest.mark.slow
def test_rebuild_moves_the_old_run_to_the_trash_instead_of_deleting_it(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path, epochs=1)
    run = distil.train(params)
    before = (run / "weights" / "best.pt").read_bytes()
    distil.train({**params, "rebuild": True})
    (old,) = (tmp_path / "trash").glob("*/runs/first-baseline")
    assert (old / "weights" / "best.pt").read_bytes() == before and (old / "manifest.json").exists()


# --- 3. one trainer per run folder --------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_training_of_the_same_run_is_refused_and_told_who_holds_it(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path, epochs=1)
    run_dir = tmp_path / "runs" / "first-baseline"
    ready, release = tmp_path / "holding", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from pathlib import Path
from distil.runs import RunFolder
with RunFolder(Path({str(run_dir)!r}), Path({str(tmp_path)!r})).lock.held():
    Path({str(ready)!r}).touch()
    while not Path({str(release)!r}).exists():
        time.sleep(0.05)
"""], cwd=ROOT)
    try:
        while not ready.exists():  # waits for the other process to hold the lock (an event, not a delay)
            assert holder.poll() is None, "the holding process ended early"
        with pytest.raises(RunBusyError, match=f"in use by process {holder.pid} on .*Wait for it to end, or give "
                                               "this one another name"):
            distil.train(params)
        assert not (run_dir / "weights").exists()  # nothing written into the folder the other one holds
    finally:
        release.touch()
        holder.wait(timeout=60)
    assert distil.train(params) == run_dir  # released: it trains


# --- 4. a kill in the last fraction of a second ---------------------------------------------------------------
def count_writes(params: dict) -> list[Path]:
    writes: list[Path] = []
    atomic.BEFORE_REPLACE.append(writes.append)
    try:
        distil.train(params)
    finally:
        atomic.BEFORE_REPLACE.remove(writes.append)
    return writes


@pytest.mark.slow
@pytest.mark.parametrize("from_the_end", [1, 2, 3, 4, 5, 6])
def test_a_kill_at_any_of_the_last_writes_leaves_a_run_that_finishes_with_whole_files(tiny_data, tmp_path, faults,
                                                                                   from_the_end):
    """The last six writes of a run: the last results.csv row, last.pt, best.pt, the final strip of each, the
    manifest. Killed before any of them lands, the run goes on to a whole, finished run when started again."""
    writes = count_writes(baseline(tiny_data, tmp_path / "reference", epochs=2))
    assert [p.name for p in writes[-6:]] == ["results.csv", "last.pt", "best.pt", "last.pt", "best.pt",
                                             "manifest.json"]
    params = baseline(tiny_data, tmp_path / "killed", epochs=2)
    install(faults, kill_at(len(writes) - from_the_end + 1))
    with pytest.raises(Killed):
        distil.train(params)
    atomic.BEFORE_REPLACE.remove(faults.pop())
    run = tmp_path / "killed" / "runs" / "first-baseline"
    state = run_state(run)
    assert state in {"interrupted", "finished"}, state
    for name in ("last.pt", "best.pt"):  # every checkpoint there is whole
        assert not (run / "weights" / name).exists() or read_checkpoint(run / "weights" / name) is not None
    distil.train({**params, "resume": state == "interrupted" and from_the_end >= 5})
    assert run_state(run) == "finished" and read_checkpoint(run / "weights" / "best.pt") is not None
    assert list(read_results(run)["epoch"]) == [1, 2] and (run / "manifest.json").exists()
    assert not list(run.rglob(".*.tmp-*"))  # no temporary file left to be mistaken for anything


# --- 5. records and copies written whole -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_kill_while_the_teacher_is_copied_in_leaves_no_empty_teacher(tmp_path, faults, rtdetr_teacher):
    import shutil

    params = distil.TeacherParams.load("params/smoke.yaml", outputs=str(tmp_path / "outputs"), demo_train=4,
                                       demo_val=2, demo_test=2, teacher_train=4, teacher_cache=str(tmp_path / "t.pt"))
    shutil.copyfile(rtdetr_teacher, tmp_path / "t.pt")  # a teacher made elsewhere with these params, and its record
    (tmp_path / "t.json").write_text(json.dumps({"params": distil.teacher_training.teacher_defining(params)}))
    install(faults, lambda path: (_ for _ in ()).throw(Killed(path)) if path.name == "teacher.pt" else None)
    with pytest.raises(Killed):
        distil.prepare_teacher(params)
    assert not params.teacher_path.exists()  # absent, not 0 bytes: the next run copies it again
    atomic.BEFORE_REPLACE.remove(faults.pop())
    assert distil.prepare_teacher(params).source == "shipped"
    assert params.teacher_path.read_bytes() == (tmp_path / "t.pt").read_bytes()


@pytest.mark.slow
def test_a_failed_rerun_of_a_notebook_keeps_the_good_executed_one(tmp_path):
    from distil.run_notebook import NotebookFailed, run

    out = tmp_path / "01.ipynb"
    smoke = {"outputs": str(tmp_path / "outputs"), "demo_train": 4, "demo_val": 2, "demo_test": 2, "demo_imgsz": 64,
             "imgsz": 64, "samples": 1}
    run("01_preprocessing", str(out), "params/smoke.yaml", smoke)
    good = out.read_bytes()
    with pytest.raises(NotebookFailed):
        run("01_preprocessing", str(out), "params/smoke.yaml", {**smoke, "explore_pipeline": "missing.yaml"})
    assert out.read_bytes() == good and (tmp_path / "01.failed.ipynb").exists()


# --- 6-7. files that would run code -------------------------------------------------------------------------------
class Payload:
    """What a hostile checkpoint carries: unpickling it runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_checkpoint(tmp_path: Path, rtdetr_teacher: Path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    checkpoint = torch.load(rtdetr_teacher, weights_only=False)
    checkpoint["extra"] = Payload(marker)
    path = tmp_path / "hostile.pt"
    torch.save(checkpoint, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    return path, marker


def test_a_checkpoint_of_an_earlier_version_with_its_capture_hooks_still_loads_safely(tmp_path):
    """Interrupted runs pickled distil's own capture hook (``distil.engine.hooks.CaptureHook``, and
    ``distil.hooks.CaptureHook`` before the move); Ultralytics' FeatureHook replaced it, and those files must still
    load under restricted loading."""
    import zipfile

    from ultralytics.nn.distill_model import FeatureHook

    torch.save({"hook": FeatureHook({}, 3)}, tmp_path / "new.pt", pickle_protocol=2)
    for old in ("distil.engine.hooks", "distil.hooks"):
        path = tmp_path / f"{old}.pt"
        with zipfile.ZipFile(tmp_path / "new.pt") as source, zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                data = source.read(item)
                if item.filename.endswith("data.pkl"):  # the class as the earlier version named it
                    now, before = b"cultralytics.nn.distill_model\nFeatureHook\n", f"c{old}\nCaptureHook\n".encode()
                    data = data.replace(now, before)
                    assert old.encode() in data
                target.writestr(item, data)
        assert isinstance(load_checkpoint_dict(path)["hook"], FeatureHook)


@pytest.mark.slow
def test_a_checkpoint_carrying_a_payload_is_refused_before_the_payload_runs(tmp_path, rtdetr_teacher, tiny_data):
    path, marker = hostile_checkpoint(tmp_path, rtdetr_teacher)
    with pytest.raises(UnsafeCheckpointError, match="hostile.pt holds objects other .* DISTIL_TRUST_CHECKPOINTS=1"):
        load_checkpoint_dict(path)
    with pytest.raises(UnsafeCheckpointError):
        distil.train(baseline(tiny_data, tmp_path, teacher=str(path), distill_weight=1.0))
    from distil.dashboard import LoadedModel

    with pytest.raises(UnsafeCheckpointError):
        LoadedModel("teacher", path)  # the dashboard's model loading
    assert not marker.exists()
    assert load_checkpoint_dict(rtdetr_teacher)["model"] is not None  # a plain checkpoint still loads


def test_a_student_yaml_whose_activation_is_code_is_refused_while_the_params_are_checked(tmp_path, tiny_data):
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    marker = tmp_path / "activation-ran"
    spec = {k: v for k, v in yaml_model_load("yolov8n.yaml").items() if k != "yaml_file"}
    spec["activation"] = f"__import__('os').system('touch {marker}')"
    student = tmp_path / "evil-yolov8n.yaml"
    student.write_text(yaml.safe_dump(spec))
    with pytest.raises(ParamsError, match="unsupported activation"):
        distil.DistillParams.load(baseline(tiny_data, tmp_path, student=str(student)))
    assert not marker.exists()


# --- 8-9. params that are too large, or not numbers ---------------------------------------------------------------
def test_a_yaml_alias_bomb_and_a_huge_params_file_are_refused_at_once(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                                                     for p, c in zip("abcdefgh", "bcdefghi")]
    bomb.write_text("\n".join(levels) + "\ndistill_loss_args: {tau: *i}\n")
    with pytest.raises(ParamsError, match="line 1: YAML anchors and aliases .* are not accepted"):
        distil.DistillParams.load(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("distill_unlabeled: demo\nnote: [" + ", ".join(["1"] * 600_000) + "]\n")
    with pytest.raises(ParamsError, match="params files are at most 1024 KB"):
        distil.DistillParams.load(huge)
    twice = tmp_path / "twice.yaml"
    twice.write_text("distill_loss: cwd\nepochs: 3\ndistill_loss: mse\n")
    with pytest.raises(ParamsError, match="key 'distill_loss' is given twice, on lines 1 and 3: keep one"):
        distil.DistillParams.load(twice)


@pytest.mark.parametrize("key, value", [("hours", float("nan")), ("distill_weight", float("nan")),
                                        ("distill_weight", float("inf")), ("lr0", float("inf")),
                                        ("distill_loss_args", {"tau": float("nan")})])
def test_numbers_that_are_not_finite_are_refused(tiny_data, tmp_path, key, value):
    with pytest.raises(ParamsError, match="must be a finite number|'lr0=inf' is an invalid value"):
        distil.DistillParams.load(baseline(tiny_data, tmp_path, distill_loss="cwd", **{key: value}))


# --- 13. nothing shipped holds a secret or a machine's path --------------------------------------------------
def test_the_shipped_assets_hold_no_credential_and_no_absolute_path():
    from distil.portable import CREDENTIALS

    found = []
    for path in sorted((ROOT / "assets").rglob("*")):
        if path.suffix in {".json", ".yaml", ".csv"}:
            text = path.read_text()
        elif path.suffix == ".pt":
            checkpoint = load_checkpoint_dict(path)
            model = checkpoint.get("model")
            text = json.dumps({"train_args": checkpoint.get("train_args"), "git": checkpoint.get("git"),
                               "args": dict(getattr(model, "args", {}) or {})}, default=str)
        else:
            continue
        if CREDENTIALS.search(text):
            found.append(f"{path}: a URL with credentials")
        for absolute in ("/work/", "/home/", "/root/", "/tmp/", "/Users/"):
            if absolute in text:
                found.append(f"{path}: an absolute path ({absolute}...)")
    assert found == []


def test_credentials_are_stripped_from_what_ultralytics_records_and_from_shipped_records(tmp_path):
    from distil.portable import portable, sanitize_git_origin, strip_credentials

    assert strip_credentials("https://user:ghp_secret@github.com/o/r.git") == "https://github.com/o/r.git"

    class Git:
        origin = "https://x-access-token:ghs_abc@github.com/o/r.git"

    git = Git()
    sanitize_git_origin(git)
    assert git.origin == "https://github.com/o/r.git"
    record = {"data": str(ROOT / "outputs" / "data" / "x" / "data.yaml"), "url": "git://u:p@host/r", "n": 3}
    assert portable(record, ROOT) == {"data": "outputs/data/x/data.yaml", "url": "git://host/r", "n": 3}
    from ultralytics.utils import GIT

    assert GIT.origin is None or strip_credentials(GIT.origin) == GIT.origin  # what checkpoints get here
