"""The teacher's stages (``teacher_stages``): an RT-DETR from scratch as encoder, decoder and refine stage, trained
in one go or the last added to a teacher made without it (how the demo's shipped teacher got its refine stage); the
list checked before anything trains; the per-stage keys of earlier versions read as the list they meant."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import distil
from distil import ParamsError
from distil.eval.figures import read_results
from distil.teacher_training import refine

ENCODER = {"name": "encoder", "epochs": 1, "head": "dense"}
DECODER = {"name": "decoder", "epochs": 1, "lr0": 0.001, "optimizer": "AdamW", "mosaic": 0.0, "freeze": "encoder"}
REFINE = {**DECODER, "name": "refine", "lr0": 0.0003}
TINY = {"teacher_model": "rtdetr-demo.yaml", "teacher_stages": [ENCODER, DECODER], "demo_train": 4,
        "demo_val": 2, "demo_test": 0, "demo_imgsz": 64, "teacher_train": 6, "imgsz": 64, "batch": 4,
        "device": "cpu", "plots": False}


# --- the list, checked before anything trains ------------------------------------------------------------------
@pytest.mark.parametrize(("stages", "message"), [
    ([{"name": "decoder", "epochs": 1, "lr0": "fast"}], r"teacher_stages\[0\] \(decoder\): 'lr0=fast' is of invalid "
                                                        "type str"),
    ([{"name": "decoder", "epochs": 1, "mosaik": 0.0}], r"mosaik cannot be set per stage"),
    ([{"name": "decoder", "epochs": 1, "data": "x.yaml"}], r"data cannot be set per stage"),
    ([ENCODER, {**DECODER, "name": "encoder"}], r"name 'encoder' must be a plain folder name, not 'val', once"),
    ([{"name": "decoder", "epochs": 0}], r"epochs=0 must be a whole number >= 1"),
    ([ENCODER], r"the last stage \(encoder\) is the dense-head encoder stage"),
    ([DECODER], r"freeze: encoder keeps the encoder an earlier stage of an RT-DETR from scratch trained"),
    ([{"name": "direct", "epochs": 1}, ENCODER], r"only the first stage of an RT-DETR trained from scratch "
                                                 r"\(teacher_model\) may be head"),
    ("fast", r"teacher_stages='fast' must be 'auto' or a list"),
])
def test_a_stage_that_cannot_train_is_refused_when_the_params_load(tmp_path, stages, message):
    with pytest.raises(ParamsError, match=message):
        distil.TeacherParams.load({**TINY, "outputs": str(tmp_path), "teacher_stages": stages})


def test_a_yolo_teacher_takes_no_dense_head_and_auto_gives_each_kind_its_stages(tmp_path):
    with pytest.raises(ParamsError, match="only the first stage of an RT-DETR trained from scratch"):
        distil.TeacherParams.load({**TINY, "outputs": str(tmp_path), "teacher_model": "yolov8n.yaml"})
    auto = {**TINY, "outputs": str(tmp_path), "teacher_stages": "auto"}
    assert [s["name"] for s in distil.TeacherParams.load(auto).stages] == ["encoder", "decoder"]
    assert distil.TeacherParams.load({**auto, "teacher_model": "yolov8n.yaml"}).stages == [
        {"name": "direct", "epochs": 15}]
    with pytest.raises(ParamsError, match="teacher_stages is empty, which trains nothing"):
        distil.TeacherParams.load({**auto, "teacher_stages": []})


def test_the_per_stage_keys_of_earlier_versions_are_read_as_the_list_they_meant_with_one_line(tmp_path, caplog):
    legacy = {k: v for k, v in TINY.items() if k != "teacher_stages"}
    with caplog.at_level(logging.INFO):
        params = distil.TeacherParams.load({**legacy, "outputs": str(tmp_path), "teacher_encoder_epochs": 1,
                                            "teacher_epochs": 1, "teacher_refine_epochs": 1})
    assert params.stages == [ENCODER, DECODER, REFINE]
    said = [r.getMessage() for r in caplog.records if "are one list now" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("distil: teacher_encoder_epochs, teacher_epochs, "
                                                 "teacher_refine_epochs are one list now, teacher_stages")
    with pytest.raises(ParamsError, match="teacher_epochs and teacher_stages say the same"):
        distil.TeacherParams.load({**TINY, "outputs": str(tmp_path), "teacher_epochs": 3})
    with pytest.raises(ParamsError, match="teacher_refine_epochs=1 refines an RT-DETR trained from scratch"):
        distil.TeacherParams.load({**legacy, "outputs": str(tmp_path), "teacher_weights": "x.pt",
                                   "teacher_refine_epochs": 1})
    # the other notebooks ignore them, as every teacher key
    assert "teacher_epochs" not in distil.DistillParams.load({"teacher": "none", "teacher_epochs": 3}).as_dict()


def test_a_record_from_before_the_list_is_the_teacher_its_list_makes(tmp_path):
    params = distil.TeacherParams.load({**TINY, "outputs": str(tmp_path), "teacher_stages": [
        {**ENCODER, "epochs": 20}, {**DECODER, "epochs": 15}]})
    record = {**{k: v for k, v in distil.teacher_training.teacher_defining(params).items() if k != "teacher_stages"},
              "teacher_encoder_epochs": 20, "teacher_epochs": 15, "teacher_freeze_encoder": True}
    distil.teacher_training.check_same_teacher(record, params, tmp_path)  # the old defaults fill in the rest
    with pytest.raises(ParamsError, match=r"\(teacher_stages decoder epochs: 16 -> 15\): set rebuild: true"):
        distil.teacher_training.check_same_teacher({**record, "teacher_epochs": 16}, params, tmp_path)




# --- training (each stage from the one before) -------------------------------------------------------------------
def weights(checkpoint) -> dict[str, torch.Tensor]:
    """The trained parameters (not the batch-norm statistics, which move in train mode even where frozen)."""
    model = torch.load(checkpoint, weights_only=False)["model"]
    return {k: v.detach().float() for k, v in model.named_parameters()}


def changed_layers(before: dict, after: dict) -> set[str]:
    """The top-level layer indices (``model.<i>``) whose weights differ."""
    return {".".join(k.split(".")[:2]) for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.slow  # trains a teacher
def test_the_refine_stage_trains_only_the_decoder_from_the_decoder_stages_best(tmp_path):
    params = distil.TeacherParams.load({**TINY, "name": "t3", "outputs": str(tmp_path),
                                        "teacher_stages": [ENCODER, DECODER, REFINE]})
    report = distil.prepare_teacher(params)
    assert [stage.name for stage in report.stages] == ["encoder", "decoder", "refine"]
    decoder, refined = (params.teacher_dir / stage / "weights" / "best.pt" for stage in ("decoder", "refine"))
    assert len(read_results(params.teacher_dir / "refine")) == 1
    changed = changed_layers(weights(decoder), weights(refined))
    assert changed and changed <= {"model.28"}, changed  # the decoder (layer 28) alone: the encoder stays frozen
    assert torch.equal(torch.cat([v.flatten() for v in weights(params.teacher_path).values()]),
                       torch.cat([v.flatten() for v in weights(refined).values()]))
    assert json.loads((params.teacher_dir / "teacher.json").read_text())["params"]["teacher_stages"][2] == REFINE


@pytest.mark.slow  # trains a teacher
def test_a_teacher_made_without_the_refine_stage_gets_it_in_place_and_is_then_the_refined_teacher(tmp_path):
    two_stages = distil.TeacherParams.load({**TINY, "name": "t", "outputs": str(tmp_path)})
    distil.prepare_teacher(two_stages)
    with pytest.raises(ParamsError, match="add no stage after them: there is nothing to refine"):
        refine(two_stages)
    three_stages = distil.TeacherParams.load({**two_stages.as_dict(), "teacher_stages": [ENCODER, DECODER, REFINE]})
    with pytest.raises(ParamsError, match=r"\(teacher_stages: encoder 1 .*; decoder 1 .* -> .*; refine 1 .*\).*or "
                                          "train only the stages these params add: distil teacher refine -f"):
        distil.prepare_teacher(three_stages)  # the two-stage teacher is not taken for the refined one
    encoder_time = json.loads((two_stages.teacher_dir / "teacher.json").read_text())["stages"][0]["wall_time_s"]

    report = refine(three_stages)
    assert [stage.name for stage in report.stages] == ["encoder", "decoder", "refine"]
    assert report.stages[0].wall_time_s == encoder_time  # stages 1 and 2 reused, not trained again
    assert all(stage.device.startswith("cpu") for stage in report.stages)
    assert (three_stages.teacher_dir / "unrefined.pt").exists()
    assert distil.prepare_teacher(three_stages).source == "reused"  # now it is the teacher these params make
    with pytest.raises(ParamsError, match="add no stage after them"):
        refine(three_stages)
