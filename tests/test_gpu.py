"""On a real GPU: the teacher in fp16 under AMP, a distillation step under AMP, the labeler in fp16. Skipped (saying
why) where there is no CUDA device: the CPU suite covers the same code in fp32 and bf16."""

from __future__ import annotations

import pytest
import torch

from distil.engine import DistillSettings, FeatureDistillationModel, load_teacher
from distil.engine.labeling.teacher_pass import TeacherLabeler
from distil.engine.teacher import ready_for_inference
from distil.engine.teacher_signals import TeacherReader

from .test_teaching import real_batch, student

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device: the GPU tests run where one is")]


def test_the_teachers_fp16_pass_under_amp_says_what_its_fp32_pass_says(tiny_data, rtdetr_teacher):
    teacher = ready_for_inference(load_teacher(rtdetr_teacher).cuda())
    images = real_batch(tiny_data, "val")["img"].cuda()
    reader = TeacherReader(teacher, [21, 24, 27], saliency=True)
    full = reader(teacher, images)
    with torch.autocast("cuda", dtype=torch.float16):
        half = reader(teacher, images)
    for low, high in zip(half.maps, full.maps):
        assert low.dtype == torch.float32 and torch.allclose(low, high, atol=0.05 * float(high.abs().max()))


def test_a_distillation_step_under_amp_trains_the_student_and_leaves_the_teacher(tiny_data, rtdetr_teacher):
    settings = DistillSettings(distill_model=str(rtdetr_teacher), distill_det=1.0, distill_mask="teacher",
                               distill_loss="cwd")
    model = FeatureDistillationModel(load_teacher(rtdetr_teacher).cuda(), student().cuda(), settings, imgsz=64)
    model = model.cuda().train()
    teacher_before = {k: v.clone() for k, v in model.teacher_model.state_dict().items()}
    batch = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in real_batch(tiny_data, "train").items()}
    scaler = torch.amp.GradScaler("cuda")
    optimizer = torch.optim.SGD(model.student_model.parameters(), lr=1e-3)
    with torch.autocast("cuda", dtype=torch.float16):
        loss, items = model.loss(batch)
    scaler.scale(loss.sum()).backward()
    scaler.step(optimizer)
    assert torch.isfinite(loss).all() and items["dis_loss"] > 0 and items["det_loss"] >= 0
    assert all(torch.equal(v, model.teacher_model.state_dict()[k]) for k, v in teacher_before.items())


def test_the_labeler_in_fp16_on_the_gpu_labels_as_in_fp32(tiny_data, rtdetr_teacher):
    files = sorted(str(p) for p in (tiny_data.parent / "images" / "unlabeled").glob("*.jpg"))[:8]
    full = TeacherLabeler(rtdetr_teacher, 64, 0.05, device="cuda:0")(files)
    half = TeacherLabeler(rtdetr_teacher, 64, 0.05, device="cuda:0", half=True)(files)
    assert len(full.scores) and abs(len(half.scores) - len(full.scores)) <= 0.1 * len(full.scores)
