"""Compare detectors on one validation set: accuracy (Ultralytics validator), size, compute, speed.

`evaluate` returns one row per model. Accuracy comes from the Ultralytics validator (never our
own mAP); speed is the median of repeated forward passes after warm-up, batch 1, on one device,
so models are timed alike; for students it adds the share of the teacher-baseline gap that
distillation closed, ``(student - baseline) / (teacher - baseline)`` on mAP50-95.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ultralytics.data.utils import check_det_dataset
from ultralytics.nn.tasks import RTDETRDetectionModel
from ultralytics.utils.torch_utils import get_flops, select_device

from distil.engine.teacher import detector
from distil.enhancement.dataset import EnhancedDetectionValidator, EnhancedRTDETRValidator
from distil.eval.timing import interleaved_medians

METRIC_COLUMNS = ["mAP50", "mAP50-95", "precision", "recall"]


def timed_forward_ms(models: Mapping[str, torch.nn.Module], imgsz: int, device: torch.device,
                     reps: int) -> dict[str, float]:
    """Median milliseconds of one forward pass of each model (batch 1, model only, post-processing excluded),
    timed interleaved so that drift on the machine hits them alike (timed one after the other, two students of
    the same architecture came out at 17 and 25 ms)."""
    x = torch.rand(1, 3, imgsz, imgsz, device=device)
    calls = {label: (lambda model=model: model(x)) for label, model in models.items()}
    with torch.inference_mode():
        return {label: 1000 * seconds for label, seconds in interleaved_medians(calls, reps, device=device).items()}


def validate_one(path: Path, data: Path, imgsz: int, batch: int, device: str | None, enhance: str,
                 split: str = "val"):
    """Ultralytics validation of one checkpoint; None when its classes are not the dataset's."""
    wrapper = detector(path)
    if dict(wrapper.names) != check_det_dataset(str(data))["names"]:  # the names as Ultralytics reads them
        return wrapper, None
    is_rtdetr = isinstance(wrapper.model, RTDETRDetectionModel)
    validator = EnhancedRTDETRValidator if is_rtdetr else EnhancedDetectionValidator
    metrics = wrapper.val(data=str(data), imgsz=imgsz, batch=batch, device=device, plots=False, verbose=False,
                          validator=validator, enhance=enhance, split=split, project=str(Path(path).parent),
                          name=f"eval-{split}", exist_ok=True)
    return wrapper, metrics


def evaluate(
    models: Mapping[str, str | Path],
    data: str | Path,
    imgsz: int,
    batch: int = 16,
    device: str | None = None,
    enhance: str = "none",
    speed_reps: int = 20,
    teacher: str = "teacher",
    baseline: str = "baseline",
    split: str = "val",
) -> pd.DataFrame:
    """Evaluate checkpoints on the validation split of ``data``.

    Args:
        models: Label -> checkpoint, in display order, e.g. ``{"teacher": ..., "baseline": ..., "distilled": ...}``.
        data: YOLO ``data.yaml``.
        imgsz: Validation and timing image size.
        batch: Validation batch size.
        device: Ultralytics device string (None: GPU if present).
        enhance: Enhancement pipeline applied to the images (as in training).
        speed_reps: Timed forward passes per model after warm-up (0: not timed).
        teacher: Label of the teacher row (for the gap).
        baseline: Label of the no-distillation student row (for the gap).
        split: Dataset split to validate on (``val``, or ``test`` for numbers reported after tuning).

    Returns:
        One row per model: checkpoint, type, mAP50, mAP50-95, precision, recall, params, GFLOPs,
        ms_per_image, gap_closed (students other than the baseline). ``df.attrs`` holds
        ``per_class`` (a second table: AP50 and AP50-95 per class and model), ``curves``
        (precision-recall curves per model) and ``device``.
        A model whose classes differ from the dataset's (say a COCO teacher) gets no accuracy.
    """
    check_inputs(models, data)
    rows, per_class, curves, networks = [], [], {}, {}
    torch_device = select_device(device or "", verbose=False)
    for label, path in models.items():
        path = Path(path)
        wrapper, metrics = validate_one(path, Path(data), imgsz, batch, device, enhance, split)
        network = wrapper.model.float().eval().to(torch_device)
        row = {"model": label, "checkpoint": str(path), "type": type(network).__name__}
        if metrics is not None:
            box = metrics.box
            row.update({"mAP50": float(box.map50), "mAP50-95": float(box.map), "precision": float(box.mp),
                        "recall": float(box.mr)})
            for i, cls in enumerate(box.ap_class_index):
                per_class.append({"model": label, "class": metrics.names[int(cls)], "AP50": float(box.ap50[i]),
                                  "AP50-95": float(box.ap[i])})
            recall, precision = box.curves_results[0][:2]
            curves[label] = {"recall": np.asarray(recall), "precision": np.asarray(precision).mean(0)}
        else:
            row.update(dict.fromkeys(METRIC_COLUMNS, math.nan))
        row["params"] = sum(p.numel() for p in network.parameters())
        row["GFLOPs"] = round(float(get_flops(network, imgsz)), 3)
        networks[label] = network
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    times = timed_forward_ms(networks, imgsz, torch_device, speed_reps) if speed_reps else {}
    table["ms_per_image"] = [round(times[label], 2) if label in times else math.nan for label in table.index]
    table["gap_closed"] = gap_closed(table, teacher, baseline)
    table.attrs.update({"per_class": pd.DataFrame(per_class), "curves": curves, "device": str(torch_device),
                        "imgsz": imgsz, "enhance": enhance, "split": split})
    return table


def check_inputs(models: Mapping[str, str | Path], data: str | Path) -> None:
    """Every checkpoint and the dataset exist, checked all at once before any model is validated.

    Raises:
        FileNotFoundError: Naming every missing file, with its label.
    """
    missing = [f"{label}: {path}" for label, path in models.items() if not Path(path).exists()]
    if not Path(data).exists():
        missing.append(f"data: {data}")
    if missing:
        raise FileNotFoundError(f"evaluate: not found: {'; '.join(missing)}. Train the runs first (03_distill), or "
                                "give the paths of existing checkpoints")


def save_evaluation(table: pd.DataFrame, folder: str | Path) -> dict[str, Path]:
    """Write the comparison (CSV and JSON) and the per-class table (CSV) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "comparison.csv", "json": folder / "comparison.json",
             "per_class": folder / "per_class.csv"}
    table.to_csv(paths["csv"])
    paths["json"].write_text(table.reset_index().to_json(orient="records", indent=2))
    table.attrs.get("per_class", pd.DataFrame()).to_csv(paths["per_class"], index=False)
    return paths


def gap_note(table: pd.DataFrame, teacher: str = "teacher", baseline: str = "baseline",
             metric: str = "mAP50-95") -> str | None:
    """Why ``gap_closed`` is empty, in words (None when it is not): there is no gap where the teacher is not better."""
    if teacher not in table.index or baseline not in table.index:
        return None
    gap = table.loc[teacher, metric] - table.loc[baseline, metric]
    if np.isfinite(gap) and gap > 1e-9:
        return None
    return (f"gap_closed is empty: the teacher ({table.loc[teacher, metric]:.3f} {metric}) is not better than the "
            f"baseline ({table.loc[baseline, metric]:.3f}) here, so there is no gap to close. A teacher that knows "
            "less than the student alone cannot teach it: train it longer or on more images (00_teacher)")


def gap_closed(table: pd.DataFrame, teacher: str, baseline: str, metric: str = "mAP50-95") -> pd.Series:
    """``(student - baseline) / (teacher - baseline)`` per student row; NaN elsewhere or without a gap (a teacher not
    better than the baseline: `gap_note` says why)."""
    result = pd.Series(math.nan, index=table.index)
    if teacher not in table.index or baseline not in table.index:
        return result
    gap = table.loc[teacher, metric] - table.loc[baseline, metric]
    if not np.isfinite(gap) or gap <= 1e-9:
        return result
    for label in table.index:
        if label not in {teacher, baseline}:
            result[label] = (table.loc[label, metric] - table.loc[baseline, metric]) / gap
    return result
