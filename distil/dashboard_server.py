"""Serving the dashboard with Voila: local only, kernels reclaimed, uploads bounded.

What ``distil dashboard`` (and ``make dashboard``) start, and why each setting:

- **Local host names only.** Standalone Voila answers any ``Host`` header (it sets ``allow_remote_access``), so a
  web page the user visits could reach it by DNS rebinding. Its ``tornado_settings`` put the Jupyter server's own
  check back: only ``localhost`` / loopback addresses are served, anything else gets 403.
- **Kernels reclaimed.** Every page load starts a kernel (about 0.8 GB with torch and the models); a closed tab left
  it running until the server stopped. Jupyter's culler ends kernels idle with no page connected
  (``cull_idle_timeout``, checked every ``cull_interval``), and `distil.dashboard_kernels.CappedKernelManager`
  refuses a kernel beyond ``max_kernels`` with a message instead of running the machine out of memory.
- **Uploads bounded.** An upload travels as one websocket message: over tornado's limit (10 MiB) the connection
  died silently. The page's template refuses a file over `MAX_UPLOAD_BYTES` before sending it, saying so; the
  websocket limit sits above it, and the app checks the size again (`distil.dashboard.decode_upload`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import distil.atomic as atomic
from distil.paths import project_root

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
WEBSOCKET_LIMIT = 64 * 1024 * 1024  # above MAX_UPLOAD_BYTES: an upload's message carries the file and some framing
LOCAL_HOSTNAMES = ["localhost", "127.0.0.1", "::1"]
CULL_IDLE_S, CULL_INTERVAL_S, MAX_KERNELS = 300, 60, 8


def voila_command(port: int, cull_idle_s: int = CULL_IDLE_S, cull_interval_s: int = CULL_INTERVAL_S,
                  max_kernels: int = MAX_KERNELS, config_dir: Path | None = None) -> list[str]:
    """The Voila command line serving ``notebooks/05_dashboard.ipynb`` with the settings of the module docstring.

    The tornado settings (a dict, which Voila's command line cannot take typed) go in a ``voila.json`` it reads, in
    ``config_dir`` (``outputs/.dashboard`` by default).
    """
    config_dir = config_dir or project_root() / "outputs" / ".dashboard"
    tornado = {"allow_remote_access": False, "local_hostnames": LOCAL_HOSTNAMES,
               "websocket_max_message_size": WEBSOCKET_LIMIT}
    atomic.write_json(config_dir / "voila.json", {"Voila": {"tornado_settings": tornado}})
    return [sys.executable, "-m", "voila", str(project_root() / "notebooks" / "05_dashboard.ipynb"),
            f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1", "--template=distil",
            f"--Voila.config_file_paths={config_dir}",
            "--VoilaConfiguration.multi_kernel_manager_class=distil.dashboard_kernels.CappedKernelManager",
            f"--CappedKernelManager.max_kernels={max_kernels}",
            f"--MappingKernelManager.cull_idle_timeout={cull_idle_s}",
            f"--MappingKernelManager.cull_interval={cull_interval_s}"]


def voila_environment(models: str = "", params_file: str = "", cwd: str | Path | None = None) -> dict[str, str]:
    """The environment the dashboard's kernel reads: the models to compare, the params of the series it shows, the
    user's working directory (relative paths are the user's, not the notebook folder's), and the page template."""
    return {**os.environ, "DISTIL_MODELS": models, "DISTIL_PARAMS": params_file,
            "DISTIL_CWD": str(Path(cwd or os.getcwd()).resolve()),
            "DISTIL_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "JUPYTER_PATH": os.pathsep.join(filter(None, [str(project_root() / "share" / "jupyter"),
                                                          os.environ.get("JUPYTER_PATH", "")]))}
