"""Figures for the notebooks and the dashboard: images, features, losses, metrics, detections.

Every function returns a matplotlib Figure (or an image array) and draws nothing globally, so
notebooks display them and scripts save them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure


def rgb(image_bgr: np.ndarray) -> np.ndarray:
    """BGR (OpenCV) -> RGB (matplotlib); grayscale passes through."""
    return image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def image_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]] | None = None,
               row_labels: Sequence[str] | None = None, size: float = 2.4) -> Figure:
    """A grid of BGR images, ``rows[r][c]``, with optional titles and row labels."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(size * n_cols, size * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                ax.imshow(rgb(row[c]), cmap="gray" if row[c].ndim == 2 else None)
                if titles:
                    ax.set_title(titles[r][c], fontsize=8)
        if row_labels:
            axes[r][0].text(-0.05, 0.5, row_labels[r], transform=axes[r][0].transAxes, ha="right", va="center",
                            fontsize=9, rotation=90)
    fig.tight_layout()
    return fig


def channel_histograms(images: Mapping[str, np.ndarray]) -> Figure:
    """Per-channel (B, G, R) histograms of several images side by side."""
    fig = Figure(figsize=(3.2 * len(images), 2.4))
    axes = fig.subplots(1, len(images), squeeze=False)
    for ax, (title, image) in zip(axes[0], images.items()):
        channels = [image] if image.ndim == 2 else cv2.split(image[:, :, :3])
        for channel, colour in zip(channels, ("tab:blue", "tab:green", "tab:red") if len(channels) == 3 else ("k",)):
            ax.plot(cv2.calcHist([channel], [0], None, [64], [0, 256]).ravel(), color=colour, lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([0, 32, 63], ["0", "128", "255"])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# --- features ---------------------------------------------------------------------------------------
def channel_energy(feature: torch.Tensor) -> np.ndarray:
    """Mean squared activation over channels, (C, H, W) -> (H, W) in [0, 1]: where a level responds."""
    energy = feature.float().pow(2).mean(0)
    energy = energy - energy.min()
    return (energy / energy.max().clamp_min(1e-12)).cpu().numpy()


def pca_rgb(feature: torch.Tensor) -> np.ndarray:
    """The three main directions of the channels as RGB, (C, H, W) -> (H, W, 3) uint8.

    Positions that the map encodes alike get alike colours, whatever the channel count.
    """
    c, h, w = feature.shape
    x = feature.float().reshape(c, -1).T
    x = x - x.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(x, q=min(3, c), center=False)
    projected = x @ v[:, :3]
    if projected.shape[1] < 3:
        projected = torch.cat([projected, projected.new_zeros(len(projected), 3 - projected.shape[1])], 1)
    low, high = projected.quantile(0.02, dim=0), projected.quantile(0.98, dim=0)
    scaled = ((projected - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)
    return (scaled.reshape(h, w, 3).cpu().numpy() * 255).astype(np.uint8)


def heat_overlay(image_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """A [0, 1] heat map resized over a BGR image (JET colours)."""
    heat = cv2.resize(heat.astype(np.float32), (image_bgr.shape[1], image_bgr.shape[0]),
                      interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image_bgr, 1 - alpha, colour, alpha, 0)


def feature_panel(image_bgr: np.ndarray, maps: Mapping[str, Sequence[torch.Tensor]],
                  level_names: Sequence[str]) -> Figure:
    """For each model (row) and level (column pair): channel-energy heat map and PCA-to-RGB view."""
    rows, titles = [], []
    for label, levels in maps.items():
        row, names = [], []
        for name, feature in zip(level_names, levels):
            feature = feature[0] if feature.ndim == 4 else feature
            row.append(heat_overlay(image_bgr, channel_energy(feature)))
            pca = cv2.resize(pca_rgb(feature), (image_bgr.shape[1], image_bgr.shape[0]),
                             interpolation=cv2.INTER_NEAREST)
            row.append(cv2.cvtColor(pca, cv2.COLOR_RGB2BGR))
            names += [f"{label} {name} energy", f"{label} {name} PCA"]
        rows.append(row)
        titles.append(names)
    return image_grid(rows, titles, size=2.0)


# --- training and evaluation ------------------------------------------------------------------------
def read_results(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``results.csv`` with clean column names."""
    table = pd.read_csv(Path(run_dir) / "results.csv")
    table.columns = table.columns.str.strip()
    return table


def training_seconds(results: pd.DataFrame) -> float:
    """A run's training time from its ``results.csv``, resumes included.

    Ultralytics' ``time`` column counts from the start of the current process, so it starts again from
    zero when a run is resumed: the total is the sum of each segment's last value.
    """
    times = results["time"].astype(float).reset_index(drop=True)
    segment_ends = times[times.shift(-1, fill_value=0.0) < times]  # the last epoch before each restart, and the end
    return float(segment_ends.sum())


def loss_curves(runs: Mapping[str, str | Path]) -> Figure:
    """Detection losses, distillation losses (per level; the response term) and validation mAP50-95 of runs."""
    tables = {label: read_results(path) for label, path in runs.items()}
    distill_columns = sorted({c for t in tables.values() for c in t.columns
                              if c.startswith("train/dis_") or c == "train/det_loss"})
    panels = ["train/box_loss", "train/cls_loss", "train/dfl_loss", *distill_columns, "metrics/mAP50-95(B)"]
    cols = min(4, len(panels))
    n_rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.3 * cols, 2.6 * n_rows))
    axes = fig.subplots(n_rows, cols, squeeze=False)
    for ax, column in zip(axes.flat, panels):
        for label, table in tables.items():
            if column in table.columns:  # epochs that were not validated (val_period) have no mAP: join the others
                points = table[["epoch", column]].dropna()
                ax.plot(points["epoch"], points[column], marker=".", label=label)
        ax.set_title(column.replace("train/", "").replace("metrics/", ""), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def gradient_balance(run_dir: str | Path) -> pd.DataFrame:
    """The gradient norm each loss term sent into the student's neck, at the steps the run recorded.

    One row per recorded step (epoch, step, schedule factor) and one column per term: ``detection``
    (ground truth), ``dis_p3``... (feature loss per level), ``det_loss`` (the teacher's detections).
    Terms of very different size are the first suspect when distillation hurts.
    """
    import json

    record = json.loads((Path(run_dir) / "distill.json").read_text())
    rows = [{"epoch": r["epoch"], "step": r["step"], "factor": r["factor"], **r["grad_norm"]}
            for r in record.get("gradient_balance", [])]
    return pd.DataFrame(rows).set_index(["epoch", "step"]) if rows else pd.DataFrame()


def saliency_panel(images: Sequence[np.ndarray], saliency: Sequence[Mapping[int, torch.Tensor]]) -> Figure:
    """Where the teacher sees objects: each image, then its objectness per stride as a heat map over it."""
    rows, titles = [], []
    for image, maps in zip(images, saliency):
        strides = sorted(maps)
        rows.append([image, *(heat_overlay(image, maps[s][0, 0].float().cpu().numpy()) for s in strides)])
        titles.append(["image", *(f"teacher objectness, stride {s}" for s in strides)])
    return image_grid(rows, titles, size=2.2)


def metric_bars(table: pd.DataFrame, metrics: Sequence[str] = ("mAP50", "mAP50-95")) -> Figure:
    """Grouped bars of accuracy metrics per model (rows of `distil.evaluate`)."""
    fig = Figure(figsize=(1.6 + 1.4 * len(table), 3))
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    x = np.arange(len(table))
    for i, metric in enumerate(metrics):
        bars = ax.bar(x + i * width, table[metric].fillna(0), width, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, table.index)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pr_curves(table: pd.DataFrame) -> Figure:
    """Precision-recall curves (mean over classes, IoU 0.5) per model."""
    fig = Figure(figsize=(4, 3.2))
    ax = fig.subplots()
    for label, curve in table.attrs.get("curves", {}).items():
        ax.plot(curve["recall"], curve["precision"], label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def detections(models: Mapping[str, object], images: Sequence[np.ndarray], imgsz: int, conf: float = 0.25,
               device: str | None = None) -> Figure:
    """Each model's detections (Ultralytics predictions, drawn) on the same images: models as rows."""
    rows, titles = [], []
    for label, model in models.items():
        results = [model.predict(image, imgsz=imgsz, conf=conf, device=device, verbose=False)[0] for image in images]
        rows.append([result.plot(line_width=1, font_size=8) for result in results])
        titles.append([f"{label}: {len(result.boxes)} objects" for result in results])
    return image_grid(rows, titles, size=2.6)


def before_after(images_by_fault: Mapping[str, Sequence[np.ndarray]], transform, per_fault: int = 3) -> Figure:
    """One row per fault: original and transformed images, alternating."""
    rows, titles = [], []
    for fault, images in images_by_fault.items():
        row, names = [], []
        for image in images[:per_fault]:
            row += [image, transform(image)]
            names += [f"{fault}", "enhanced"]
        rows.append(row)
        titles.append(names)
    return image_grid(rows, titles, size=2.0)


def step_effects(images: Mapping[str, np.ndarray], transforms: Mapping[str, object]) -> Figure:
    """Rows: images (by label); columns: the original, then each transform alone."""
    rows = [[image, *(transform(image) for transform in transforms.values())] for image in images.values()]
    titles = [[label, *transforms] for label in images]
    return image_grid(rows, titles, size=1.9)
