"""Layer tables, hooks and automatic pairing on the real RT-DETR and YOLO model YAMLs."""

from __future__ import annotations

import re

import pytest
import torch

from distil.engine.hooks import FeatureTap, forward_until, head_inputs, layer_table
from distil.engine.pairing import PairingError, pair_layers
from distil.engine.teacher import build_from_yaml

IMGSZ = 64


@pytest.fixture(scope="module")
def models():
    return {name: build_from_yaml(f"{name}.yaml").eval()
            for name in ("rtdetr-x", "rtdetr-l", "rtdetr-resnet50", "yolov8s", "yolov8n")}


@pytest.mark.parametrize("name, heads, channels", [
    ("rtdetr-x", [25, 28, 31], [384, 384, 384]),
    ("rtdetr-l", [21, 24, 27], [256, 256, 256]),
    ("rtdetr-resnet50", [16, 19, 22], [256, 256, 256]),
    ("yolov8s", [15, 18, 21], [128, 256, 512]),
    ("yolov8n", [15, 18, 21], [64, 128, 256]),
])
@pytest.mark.slow
def test_head_inputs_have_expected_channels_and_strides(models, name, heads, channels):
    model = models[name]
    assert head_inputs(model) == heads
    table = {info.index: info for info in layer_table(model, IMGSZ)}
    assert [table[i].channels for i in heads] == channels
    assert [table[i].stride for i in heads] == [8, 16, 32]
    assert [table[i].height for i in heads] == [IMGSZ // 8, IMGSZ // 16, IMGSZ // 32]


@pytest.mark.parametrize("teacher", ["rtdetr-x", "rtdetr-l", "rtdetr-resnet50", "yolov8s"])
@pytest.mark.parametrize("student", ["yolov8s", "yolov8n"])
def test_auto_pairing_matches_levels_by_stride(models, teacher, student):
    pairs = pair_layers(models[teacher], models[student], IMGSZ)
    assert [p.teacher.index for p in pairs] == head_inputs(models[teacher])
    assert [p.student.index for p in pairs] == [15, 18, 21]
    assert [p.name for p in pairs] == ["p3", "p4", "p5"]
    assert all(p.teacher.stride == p.student.stride for p in pairs)


def test_explicit_layers_are_used(models):
    pairs = pair_layers(models["rtdetr-l"], models["yolov8n"], IMGSZ, [24, 27], [18, 21])
    assert [(p.teacher.index, p.student.index, p.stride) for p in pairs] == [(24, 18, 16), (27, 21, 32)]


def test_student_subset_pairs_with_teacher_head_inputs_by_stride(models):
    pairs = pair_layers(models["rtdetr-x"], models["yolov8s"], IMGSZ, "auto", [21])
    assert [(p.teacher.index, p.student.index) for p in pairs] == [(31, 21)]


@pytest.mark.parametrize("teacher_layers, student_layers, message", [
    ([21, 24], [15, 18, 21], "2 teacher levels"),
    ([21, 24, 99], [15, 18, 21], "teacher layer 99 is out of range"),
    ([21, 24, 28], [15, 18, 21], "teacher layer 28 is out of range"),  # 28 is the decoder itself
    ([24, 21, 27], [15, 18, 21], "teacher layer 24 has stride 16 but student layer 15 has stride 8"),
    ("auto", [15, 15, 21], "repeat an index"),
])
def test_bad_pairings_stop_with_the_candidates_listed(models, teacher_layers, student_layers, message):
    with pytest.raises(PairingError) as error:
        pair_layers(models["rtdetr-l"], models["yolov8n"], IMGSZ, teacher_layers, student_layers)
    text = str(error.value)
    assert message in text
    assert "Teacher layers" in text and "Student layers" in text
    # candidates with their shapes, head inputs starred
    assert re.search(r"\*\s+21\s+RepC3\s+256x8x8\s+stride 8", text)
    assert re.search(r"\*\s+15\s+C2f\s+64x8x8\s+stride 8", text)


def test_forward_until_skips_the_rest_and_matches_full_forward(models):
    model = models["rtdetr-l"]
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad(), FeatureTap([21, 24, 27]).attach(model) as tap:
        model.predict(x)
        full = tap.take()
        ran = []
        hook = model.model[28].register_forward_hook(lambda *a: ran.append(True))
        forward_until(model, x, 27)
        partial = tap.take()
        hook.remove()
    assert not ran, "the decoder must not run"
    for a, b in zip(full, partial):
        assert torch.equal(a, b)


def test_tap_removes_hooks_and_keeps_no_tensor(models):
    model = models["yolov8n"]
    before = [len(model.model[i]._forward_hooks) for i in (15, 18, 21)]
    tap = FeatureTap([15, 18, 21]).attach(model)
    assert [len(model.model[i]._forward_hooks) for i in (15, 18, 21)] == [b + 1 for b in before]
    with torch.no_grad():
        model.predict(torch.rand(1, 3, IMGSZ, IMGSZ))
    maps = tap.take()
    assert [m.shape[1] for m in maps] == [64, 128, 256]
    assert tap.features == {}
    tap.remove()
    assert [len(model.model[i]._forward_hooks) for i in (15, 18, 21)] == before
    with pytest.raises(RuntimeError, match="produced no output"):
        tap.take()


def test_layer_table_leaves_batchnorm_statistics_alone(models):
    model = models["yolov8n"].train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_table(model, IMGSZ)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
