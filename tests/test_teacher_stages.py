"""The RT-DETR teacher's stages from scratch, on tiny settings: encoder, decoder, and the refine stage, trained
in one go or added to a teacher made without it (how the demo's shipped teacher got its refine stage)."""

from __future__ import annotations

import json

import pytest
import torch

import distil
from distil import ParamsError
from distil.eval.figures import read_results
from distil.teacher_training import refine

TINY = {"teacher_model": "rtdetr-demo.yaml", "teacher_encoder_epochs": 1, "teacher_epochs": 1, "demo_train": 4,
        "demo_val": 2, "demo_test": 0, "demo_imgsz": 64, "teacher_train": 6, "imgsz": 64, "batch": 4,
        "device": "cpu", "plots": False}

pytestmark = pytest.mark.slow  # trains models or runs notebooks



def weights(checkpoint) -> dict[str, torch.Tensor]:
    """The trained parameters (not the batch-norm statistics, which move in train mode even where frozen)."""
    model = torch.load(checkpoint, weights_only=False)["model"]
    return {k: v.detach().float() for k, v in model.named_parameters()}


def changed_layers(before: dict, after: dict) -> set[str]:
    """The top-level layer indices (``model.<i>``) whose weights differ."""
    return {".".join(k.split(".")[:2]) for k in before if not torch.equal(before[k], after[k])}


def test_the_refine_stage_trains_only_the_decoder_from_the_decoder_stages_best(tmp_path):
    params = distil.TeacherParams.load({**TINY, "name": "t3", "outputs": str(tmp_path), "teacher_refine_epochs": 1})
    report = distil.prepare_teacher(params)
    assert [stage.name for stage in report.stages] == ["encoder", "decoder", "refine"]
    decoder, refined = (params.teacher_dir / stage / "weights" / "best.pt" for stage in ("decoder", "refine"))
    assert len(read_results(params.teacher_dir / "refine")) == 1
    changed = changed_layers(weights(decoder), weights(refined))
    assert changed and changed <= {"model.28"}, changed  # the decoder (layer 28) alone: the encoder stays frozen
    assert torch.equal(torch.cat([v.flatten() for v in weights(params.teacher_path).values()]),
                       torch.cat([v.flatten() for v in weights(refined).values()]))
    assert json.loads((params.teacher_dir / "teacher.json").read_text())["params"]["teacher_refine_epochs"] == 1


def test_a_teacher_made_without_the_refine_stage_gets_it_in_place_and_is_then_the_refined_teacher(tmp_path):
    two_stages = distil.TeacherParams.load({**TINY, "name": "t", "outputs": str(tmp_path)})
    distil.prepare_teacher(two_stages)
    with pytest.raises(ParamsError, match="teacher_refine_epochs is 0: there is no refine stage to add"):
        refine(two_stages)
    three_stages = distil.TeacherParams.load({**two_stages.as_dict(), "teacher_refine_epochs": 1})
    with pytest.raises(ParamsError, match=r"\(teacher_refine_epochs: 0 -> 1\).*or add only its refine stage: "
                                          "distil teacher refine -f"):
        distil.prepare_teacher(three_stages)  # the two-stage teacher is not taken for the refined one
    encoder_time = json.loads((two_stages.teacher_dir / "teacher.json").read_text())["stages"][0]["wall_time_s"]

    report = refine(three_stages)
    assert [stage.name for stage in report.stages] == ["encoder", "decoder", "refine"]
    assert report.stages[0].wall_time_s == encoder_time  # stages 1 and 2 reused, not trained again
    assert all(stage.device.startswith("cpu") for stage in report.stages)
    assert (three_stages.teacher_dir / "unrefined.pt").exists()
    assert distil.prepare_teacher(three_stages).source == "reused"  # now it is the teacher these params make
    with pytest.raises(ParamsError, match="made in stages \\['encoder', 'decoder', 'refine'\\]; the refine stage "
                                          "follows an RT-DETR's encoder and decoder stages only, once"):
        refine(three_stages)


def test_a_refine_stage_asked_of_a_teacher_without_a_decoder_is_refused_before_training(tmp_path):
    with pytest.raises(ParamsError, match="refines an RT-DETR trained from scratch"):
        distil.TeacherParams.load({**TINY, "outputs": str(tmp_path), "teacher_weights": "x.pt",
                                   "teacher_refine_epochs": 1})
    yolo = distil.TeacherParams.load({**TINY, "outputs": str(tmp_path), "teacher_model": "yolov8n.yaml",
                                      "teacher_refine_epochs": 1})
    with pytest.raises(ParamsError, match="yolov8n.yaml is a YOLO model, trained in one stage: set "
                                          "teacher_refine_epochs: 0"):
        distil.prepare_teacher(yolo)
    assert not yolo.teacher_path.exists()
