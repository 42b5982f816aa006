"""``val_period``: validating (and writing checkpoints) on fewer epochs, for the student alone and distilled."""

from __future__ import annotations

import pytest
from ultralytics.utils.callbacks import base

import distil
from distil.engine.periodic_validation import validated_epoch
from distil.eval.figures import loss_curves, read_results

from .test_first_hour import baseline, interrupted_run

MAP = "metrics/mAP50-95(B)"

pytestmark = pytest.mark.slow  # trains models or runs notebooks



@pytest.fixture
def saved_epochs(monkeypatch) -> list[int]:
    """The 1-based epochs whose checkpoints the trainer wrote (Ultralytics' on_model_save), in this test."""
    saved: list[int] = []
    hooks = [*base.default_callbacks["on_model_save"], lambda trainer: saved.append(trainer.epoch + 1)]
    monkeypatch.setitem(base.default_callbacks, "on_model_save", hooks)  # what every new model starts from
    return saved


def test_the_validated_epochs_are_the_first_every_nth_and_the_last_n():
    assert [e + 1 for e in range(20) if validated_epoch(e, 20, 5)] == [1, 5, 10, 15, 16, 17, 18, 19, 20]
    assert all(validated_epoch(e, 20, 1) for e in range(20))


def test_skipped_epochs_have_empty_metrics_and_no_checkpoint(tiny_data, tmp_path, saved_epochs):
    run = distil.train(baseline(tiny_data, tmp_path, epochs=7, val_period=3, plots=True, run="sparse"))
    results = read_results(run)
    assert len(results) == 7
    assert results.loc[results[MAP].notna(), "epoch"].tolist() == [1, 3, 5, 6, 7]
    assert results["train/box_loss"].notna().all()  # training itself is logged every epoch
    assert saved_epochs == [1, 3, 5, 6, 7]  # best.pt is always an epoch that was validated
    assert (run / "weights" / "best.pt").exists() and (run / "results.png").exists()  # Ultralytics' plots cope
    curves = loss_curves({"sparse": run})
    [line] = [ax for ax in curves.axes if ax.get_title() == "mAP50-95(B)"][0].get_lines()
    assert len(line.get_xdata()) == 5  # the validated epochs, joined


def test_the_distilled_student_validates_on_the_same_epochs(tiny_data, rtdetr_teacher, tmp_path, saved_epochs):
    params = baseline(tiny_data, tmp_path, teacher=str(rtdetr_teacher), distill_weight=1.0, epochs=5, val_period=2)
    run = distil.train(params)
    assert read_results(run).loc[lambda t: t[MAP].notna(), "epoch"].tolist() == [1, 2, 4, 5]
    assert saved_epochs == [1, 2, 4, 5]
    assert (run / "weights" / "adapters_best.pt").exists()


def test_a_resumed_run_trains_the_unsaved_epochs_again_and_logs_each_epoch_once(tiny_data, tmp_path):
    params = baseline(tiny_data, tmp_path / "outputs", epochs=7, val_period=3, run="resumed")
    run = interrupted_run(params, tiny_data, epochs=2)  # stopped after epoch 2, which was not validated
    assert read_results(run)["epoch"].tolist() == [1, 2]
    assert distil.train({**params, "resume": True}) == run  # from epoch 1's last.pt
    assert read_results(run)["epoch"].tolist() == [1, 2, 3, 4, 5, 6, 7]
