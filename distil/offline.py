"""Keep Ultralytics off the network.

Ultralytics reaches for the internet in several places (an online check on import, fonts for
plots and dataset checks, pip auto-installs, update checks, analytics, weights named by bare
asset name). This project must work where nothing can be downloaded, so this module is run once,
before `ultralytics` is first imported (``distil/__init__.py`` does it), and:

- sets ``YOLO_OFFLINE=1`` (no DNS online check) and ``YOLO_AUTOINSTALL=False`` (no pip runs);
- points ``YOLO_CONFIG_DIR`` at a project-local folder (``outputs/.ultralytics``) unless the user chose
  one, and puts the two TTF fonts Ultralytics asks for there (copies of matplotlib's DejaVu Sans);
- turns off settings-driven network traffic (analytics ``sync``, logger integrations) in this
  process, without writing to the settings file;
- turns on Ultralytics' restricted checkpoint loading (``ULTRALYTICS_SAFE_LOAD``: no code runs while a ``.pt``
  loads, no ``eval`` of model YAMLs) unless ``DISTIL_TRUST_CHECKPOINTS=1`` (`distil.engine.checkpoints`).

Missing weights or datasets named by bare name are not downloaded: `distil.config` resolves
paths first and fails with a message that names the file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
TRUST_ENV = "DISTIL_TRUST_CHECKPOINTS"
_NETWORK_SETTINGS = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "wandb", "hub")


def default_config_dir() -> Path:
    """Return the project-local Ultralytics config dir: ``<repo>/outputs/.ultralytics`` in a checkout (nothing
    distil runs writes outside ``outputs/``).

    Outside a source checkout (a plain ``pip install``) it falls back to ``~/.config/distil``.
    """
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and os.access(repo, os.W_OK):
        return repo / "outputs" / ".ultralytics"
    return Path.home() / ".config" / "distil" / "ultralytics"


def install_fonts(config_dir: Path) -> None:
    """Place the fonts Ultralytics would otherwise download (``check_font``) into ``config_dir``."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        target = config_dir / name
        if not target.exists():
            shutil.copyfile(source, target)


def trusted_checkpoints() -> bool:
    """Whether the user chose to load checkpoints as plain pickles (``DISTIL_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes"}


def set_offline_environment() -> Path:
    """Set the environment variables Ultralytics reads at import time; return the config dir."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "0" if trusted_checkpoints() else "1"
    return Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(default_config_dir())))


def patch_ultralytics_flags() -> None:
    """Apply the offline switches to Ultralytics modules that copied them at import time.

    Needed when Ultralytics was imported before this module ran (``from ultralytics import YOLO``
    then ``from distil import DistillationTrainer``): the environment no longer reaches it.
    """
    import sys

    for name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
        module = sys.modules.get(name)
        for attr in ("ONLINE", "AUTOINSTALL"):
            if module is not None and hasattr(module, attr):
                setattr(module, attr, False)
    for name in ("ultralytics.utils", "ultralytics.nn.tasks"):  # where the restricted-loading flag was copied
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "SAFE_LOAD"):
            module.SAFE_LOAD = not trusted_checkpoints()


def disable_network_settings() -> None:
    """Switch off the Ultralytics settings that send data (analytics, experiment trackers), in memory only.

    ``SETTINGS.update`` would also write them to the settings file, which may be the user's own
    (``YOLO_CONFIG_DIR``): this process must not change what the user chose for other programs.
    """
    from ultralytics.utils import SETTINGS

    dict.update(SETTINGS, {key: False for key in _NETWORK_SETTINGS if key in SETTINGS})


def offline_amp_check() -> None:
    """Keep the CUDA AMP check from downloading ``yolo26n.pt``; ``amp`` stays the user's choice.

    Ultralytics checks AMP by running a small downloaded model. Where that model is not on disk,
    the check is skipped (as Ultralytics itself does when its download fails) without trying.
    """
    import ultralytics.engine.trainer as trainer_module
    from ultralytics.utils import LOGGER, WEIGHTS_DIR

    original = trainer_module.check_amp
    if getattr(original, "distil_offline", False):
        return

    def check_amp(model, *args, **kwargs):
        on_cuda = next(model.parameters()).device.type == "cuda"  # elsewhere Ultralytics decides without a model
        if on_cuda and not (WEIGHTS_DIR / "yolo26n.pt").is_file():
            LOGGER.warning(f"AMP checks skipped offline: {WEIGHTS_DIR / 'yolo26n.pt'} is not on disk")
            return True
        return original(model, *args, **kwargs)

    check_amp.distil_offline = True
    trainer_module.check_amp = check_amp


def sanitize_recorded_git() -> None:
    """The git origin Ultralytics writes into checkpoints, without credentials (`distil.portable`)."""
    from ultralytics.utils import GIT

    from distil.portable import sanitize_git_origin

    sanitize_git_origin(GIT)


def ensure_offline() -> Path:
    """Make every Ultralytics flow in this process offline; safe to call more than once.

    Returns:
        The Ultralytics config dir in use (settings, fonts, DDP temp files).
    """
    set_offline_environment()
    import ultralytics.utils

    patch_ultralytics_flags()
    install_fonts(Path(ultralytics.utils.USER_CONFIG_DIR))
    disable_network_settings()
    offline_amp_check()
    sanitize_recorded_git()
    return Path(ultralytics.utils.USER_CONFIG_DIR)
