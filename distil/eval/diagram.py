"""A diagram of one distillation, drawn from the run's own record (``distill.json``).

Teacher on the left, student on the right; one row per level with the hooked layers and their
shapes, the adapter that maps student channels to teacher channels, and the loss between them. A run
without a feature term (``distill_weight: 0``, e.g. self-training on the teacher's labels) gets the
path its teacher's detections take instead. Drawn from what the run recorded, so it always shows what
really happened.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLOURS = {"teacher": "#f4d6a0", "student": "#b9d7f0", "adapter": "#d5ecc2", "loss": "#f3b6b6", "model": "#eeeeee"}


def read_record(run: str | Path | dict) -> dict:
    """A run's ``distill.json`` (given the run directory, the file, or the dict itself)."""
    if isinstance(run, dict):
        return run
    path = Path(run)
    path = path / "distill.json" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the diagram needs a distillation run directory")
    return json.loads(path.read_text())


def box(ax, x: float, y: float, w: float, h: float, text: str, kind: str) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                facecolor=COLOURS[kind], edgecolor="#555555", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], style: str = "-|>") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=9, lw=0.9, color="#444444"))


def distillation_diagram(run: str | Path | dict) -> Figure:
    """Draw teacher, hooked layers with shapes, adapters, losses and student of a recorded run."""
    record = read_record(run)
    if record.get("settings", {}).get("distill_weight") == 0:
        return detections_diagram(record)
    levels = record["levels"]
    n = len(levels)
    fig = Figure(figsize=(9, 1.3 + 1.05 * n))
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.6, n + 0.9)
    ax.axis("off")
    model_boxes(ax, record, n + 0.35)
    settings = record.get("settings", {})
    loss, weight = settings.get("distill_loss", "?"), settings.get("distill_weight", "?")
    mask = settings.get("distill_mask", "none")
    loss_text = f"{loss} loss\nx {weight}" + (
        f"\nmask {mask}" if mask and mask != "none" else "")
    for row, level in enumerate(levels):
        y = n - 1 - row
        t, s, a = level["teacher"], level["student"], level["adapter"]
        box(ax, 1.6, y, 2.6, 0.6, f"layer {t['index']} {t['module']}\n{t['channels']}x{t['height']}x{t['width']}"
            f"  (stride {t['stride']})", "teacher")
        box(ax, 8.4, y, 2.6, 0.6, f"layer {s['index']} {s['module']}\n{s['channels']}x{s['height']}x{s['width']}"
            f"  (stride {s['stride']})", "student")
        box(ax, 6.15, y, 1.5, 0.6, f"adapter 1x1 conv\n{a['in_channels']} -> {a['out_channels']}", "adapter")
        box(ax, 4.1, y, 1.4, 0.6, f"{level['level'].upper()}\n{loss_text}", "loss")
        arrow(ax, (2.9, y), (3.4, y))
        arrow(ax, (7.1, y), (6.9, y))
        arrow(ax, (5.4, y), (4.8, y))
    arrow(ax, (1.0, n + 0.07), (1.0, n - 0.68), "-")
    arrow(ax, (9.0, n + 0.07), (9.0, n - 0.68), "-")
    ax.set_title(f"Distillation: {loss} on {n} level(s) at imgsz {record.get('imgsz', '?')}"
                 " - gradients flow into the student and the adapters only", fontsize=9)
    ax.text(5.0, -0.45, beyond_features(settings, record.get("unlabeled")), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def model_boxes(ax, record: dict, y: float) -> None:
    """The teacher's box on the left and the student's on the right, at height ``y``."""
    teacher_name = Path(str(record.get("teacher", "teacher"))).name
    box(ax, 1.0, y, 1.9, 0.55, f"teacher (frozen)\n{record.get('teacher_type', '')}\n{teacher_name}", "model")
    params = record.get("student_parameters")
    box(ax, 9.0, y, 1.9, 0.55,
        f"student (trained)\n{record.get('student_type', '')}" + (f"\n{params / 1e6:.2f} M params" if params else ""),
        "model")


def detections_diagram(record: dict) -> Figure:
    """A run taught by the teacher's detections alone: no hooked layers, adapters or feature loss to draw."""
    settings = record.get("settings", {})
    fig = Figure(figsize=(9, 2.4))
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.6, 1.0)
    ax.axis("off")
    model_boxes(ax, record, 0.35)
    conf, weight = settings.get("distill_det_conf", "?"), settings.get("distill_det", "?")
    when = ("labels each unlabeled image once,\nbefore training (label files)"
            if settings.get("distill_det_mode") == "offline" else "detects on every augmented batch")
    box(ax, 3.6, 0.35, 2.6, 0.55, f"{when}\nboxes from score {conf}", "teacher")
    loss = f"targets through the student's\nassigner: detection loss\n(box, cls, DFL) x {weight}"
    box(ax, 6.5, 0.35, 2.6, 0.55, loss, "loss")
    arrow(ax, (1.95, 0.35), (2.3, 0.35))
    arrow(ax, (4.9, 0.35), (5.2, 0.35))
    arrow(ax, (7.8, 0.35), (8.05, 0.35))
    ax.set_title(f"Distillation through the teacher's detections at imgsz {record.get('imgsz', '?')}: no feature term "
                 "(distill_weight 0)", fontsize=9)
    ax.text(5.0, -0.45, beyond_features(settings, record.get("unlabeled")), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def beyond_features(settings: dict, unlabeled: dict | None) -> str:
    """One line on what teaches besides the features: the teacher's detections and the unlabeled images."""
    parts = []
    if settings.get("distill_det", 0) > 0:
        parts.append(f"the teacher's detections from score {settings.get('distill_det_conf')} as targets "
                     f"({settings.get('distill_det_mode', 'online')}) x {settings['distill_det']}")
    if unlabeled:
        parts.append(f"{unlabeled.get('images', '?')} unlabeled images")
    return "; ".join(parts) if parts else "labeled images only; no detection targets from the teacher"
