"""Where files are: the project root, paths given relative to it, and model files found without downloading.

The bottom layer: the engine, the data generator and the notebooks' params all resolve paths here,
so none of them needs to import another to find a file.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """Where relative paths in params resolve: ``$DISTIL_ROOT``, else this source checkout, else cwd."""
    if os.environ.get("DISTIL_ROOT"):
        return Path(os.environ["DISTIL_ROOT"]).resolve()
    repo = Path(__file__).resolve().parents[1]
    return repo if (repo / "pyproject.toml").exists() and (repo / "params").is_dir() else Path.cwd()


def resolve_path(value: str | Path) -> Path:
    """An absolute path; relative ones are taken from the project root (notebooks run elsewhere)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_root() / path


def resolve_model_file(spec: str | Path, role: str) -> Path:
    """Find a model checkpoint or YAML on disk, never downloading it.

    A ``.pt`` must exist (relative paths: from the cwd, then the project root). A ``.yaml`` may
    also be a name that ships with this package (``distil/cfg``) or with Ultralytics
    (``yolov8s.yaml``, ``rtdetr-l.yaml``).

    Raises:
        FileNotFoundError: Nothing is found; the message says where it looked and what to do.
        ValueError: The suffix is neither ``.pt`` nor ``.yaml``/``.yml``.
    """
    path = Path(spec).expanduser()
    if path.suffix not in {".pt", ".yaml", ".yml"}:
        raise ValueError(f"{role} {str(spec)!r} must be a .pt checkpoint or a model .yaml file")
    candidates = list(dict.fromkeys([path.resolve(), resolve_path(path)]))  # the cwd, then the project root
    for candidate in candidates:
        if candidate.exists():
            return candidate
    if path.suffix == ".pt":
        raise FileNotFoundError(
            f"{role} checkpoint {str(spec)!r} not found (looked at {' and '.join(map(str, candidates))}). "
            "distil never downloads weights: copy the checkpoint to this machine and give its path."
        )
    shipped = Path(__file__).parent / "cfg" / path.name
    if path.parent == Path(".") and shipped.exists():
        return shipped
    from ultralytics.nn.tasks import yaml_model_load

    try:  # Ultralytics' own model YAMLs, including scaled names such as yolov8s.yaml
        yaml_model_load(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{role} model YAML {str(spec)!r} not found: not on disk, not in distil/cfg, not an Ultralytics model YAML"
        ) from None
    return path
