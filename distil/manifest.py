"""Run manifests: what produced a result (params, code version, packages, device, seed, time)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import distil.atomic as atomic
from distil.paths import project_root, resolve_path

PACKAGES = ("distil", "ultralytics", "torch", "torchvision", "opencv-python", "numpy", "papermill", "onnxruntime")


def git_commit(root: Path) -> str | None:
    """The commit of the checkout at ``root`` (with ``+dirty`` if tracked files changed), or None.

    Ultralytics' ``GitRepo`` reads the commit from the repository's files; whether files changed since (which
    decides whether the run can be reproduced from the commit) needs git itself, and is left out without it.
    """
    from ultralytics.utils.git import GitRepo

    commit = GitRepo(Path(root)).commit
    if commit is None:
        return None
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return commit
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: Any = None) -> str:
    """'cpu (<processor>, N cores)' or the CUDA device name.

    Cores, not torch's thread count: Ultralytics resets that after training, so it would misreport the run.
    """
    import torch

    if device is not None and str(device).startswith("cuda") or (device is None and torch.cuda.is_available()):
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` (relative paths from the project root), whole (`distil.atomic`)."""
    return atomic.write_json(resolve_path(path), data)


def write_manifest(path: Path, params: dict[str, Any], started: float, **extra: Any) -> Path:
    """Write ``manifest.json`` describing a finished step; returns its path."""
    record = {
        "params": params,
        "git_commit": git_commit(project_root()),
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": device_description(extra.pop("device", None)),
        "seed": params.get("seed"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 2),
        **extra,
    }
    return write_json(path, record)


def record_notebook(params: Any, notebook: str, started: float, **extra: Any) -> Path:
    """Write ``outputs/notebooks/<name>/<notebook>.manifest.json`` at the end of a notebook run.

    A notebook that trains a run (03, run twice by ``make demo``) writes ``<notebook>-<run>.manifest.json``
    so the baseline's record is not overwritten by the distilled one's.
    """
    folder = params.outputs_dir / "notebooks" / params.name
    stem = f"{notebook}-{Path(extra['run_dir']).name}" if extra.get("run_dir") else notebook
    return write_manifest(folder / f"{stem}.manifest.json", params.as_dict(), started, notebook=notebook, **extra)
