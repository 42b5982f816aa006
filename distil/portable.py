"""Records fit to share: no credentials, no paths of the machine that made them.

Ultralytics copies the git remote URL into every checkpoint (``ckpt["git"]["origin"]``), token included when the
clone was made with one, and records absolute paths (``train_args``, ``args.yaml``). What distil ships in the
repository (``assets/``) or hands to others is written through `portable`: URLs lose their user and password,
and paths under the project become relative to it (where a record is compared with params, e.g. a shipped run's,
relative paths are read from the project root: `distil.runs.comparable`). A path outside the project is kept as
it is: it cannot be made portable without losing what it names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def strip_credentials(text: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x`` (every URL in ``text``)."""
    return CREDENTIALS.sub(r"\g<scheme>", text)


def portable_path(text: str, root: Path) -> str:
    """An absolute path as a path relative to ``root`` when it is under it (else as it is)."""
    try:
        return str(Path(text).resolve().relative_to(root.resolve()))
    except ValueError:
        return text


def portable(value: Any, root: Path) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) without credentials or absolute paths."""
    if isinstance(value, dict):
        return {key: portable(item, root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(item, root) for item in value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        value = strip_credentials(value)
        return portable_path(value, root) if value.startswith("/") and "\n" not in value else value
    return value


def sanitize_git_origin(git) -> None:
    """Strip credentials from the origin URL Ultralytics' ``GIT`` puts into every checkpoint (in memory only)."""
    try:
        origin = git.origin
    except Exception:  # no repository, unreadable config: nothing is recorded
        return
    if origin:
        git.__dict__["origin"] = strip_credentials(origin)  # GitRepo.origin is a cached_property
