"""Every key's default and meaning, read from the two files that write them: distil's ``distil/cfg/default.yaml``
and Ultralytics' ``ultralytics/cfg/default.yaml``, both one line a key (``key: default  # (type) meaning``).

Nothing else in distil writes a default or a meaning: the params classes (`distil.params`), the engine's settings
(`distil.engine.settings`), the notebooks' parameters cells and ``docs/settings.md`` all take them from here. Read
without importing Ultralytics (its file is found on disk), so this stays at the bottom of the layers.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DISTIL_FILE = Path(__file__).parent / "cfg" / "default.yaml"
LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<value>[^#]*)(?:#\s*(?:\((?P<type>[^)]*)\))?\s*(?P<help>.*))?$")
SECTION = re.compile(r"^#\s*---\s*(?P<name>[^:]+):\s*(?P<readers>.*)$")


@dataclass(frozen=True)
class Key:
    """One key as its defaults file writes it."""

    name: str
    default: Any
    type: str  # as written, e.g. 'int', 'str | list[int]', 'float, optional'
    help: str
    section: str  # distil's file: the section it is in ('series', 'distillation', ...); Ultralytics': ''


def read_defaults(path: Path) -> dict[str, Key]:
    """The keys of a defaults file, in file order."""
    keys, section = {}, ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        header = SECTION.match(line)
        if header:
            section = header["name"].strip()
            continue
        match = LINE.match(line) if line and not line.startswith("#") else None
        if match is None:
            continue
        value = match["value"].strip()
        keys[match["key"]] = Key(match["key"], yaml.safe_load(value) if value else None, (match["type"] or "").strip(),
                                 (match["help"] or "").strip(), section)
    return keys


@cache
def distil_keys() -> dict[str, Key]:
    """distil's own keys (``distil/cfg/default.yaml``)."""
    return read_defaults(DISTIL_FILE)


@cache
def ultralytics_keys() -> dict[str, Key]:
    """Ultralytics' keys (its ``cfg/default.yaml``, found without importing Ultralytics)."""
    spec = importlib.util.find_spec("ultralytics")
    return read_defaults(Path(spec.origin).parent / "cfg" / "default.yaml")


def key(name: str) -> Key:
    """A key of either file; distil's first (its ``data`` extends Ultralytics' with ``'demo'``).

    Raises:
        KeyError: Neither file has it.
    """
    found = distil_keys().get(name) or ultralytics_keys().get(name)
    if found is None:
        raise KeyError(f"{name!r} is in neither {DISTIL_FILE} nor Ultralytics' cfg/default.yaml")
    return found


def settings_page() -> str:
    """``docs/settings.md``: every distil key, by section, as ``distil/cfg/default.yaml`` writes it (generated:
    ``python tools/write_docs.py``; a test fails when the page is out of step with the file)."""
    lines = ["# Settings", "",
             "Every key distil adds, with its default and meaning, generated from `distil/cfg/default.yaml` (the one",
             "place they are written). Ultralytics' own keys (`epochs`, `batch`, `imgsz`, `device`, `lr0`, `cos_lr`,",
             "`time`, ...) are in [its documentation](https://docs.ultralytics.com/usage/cfg/): any of them in a",
             "params file goes to training as it is. A params file may name a `base:` file it differs from.", ""]
    sections: dict[str, list[Key]] = {}
    for spec in distil_keys().values():
        sections.setdefault(spec.section, []).append(spec)
    headers = {line.split(":", 1)[0].removeprefix("# ---").strip(): line.split(":", 1)[1].strip()
               for line in DISTIL_FILE.read_text(encoding="utf-8").splitlines() if SECTION.match(line.strip())}
    for section, specs in sections.items():
        lines += [f"## {section}", "", f"Read by: {headers.get(section, '')}.", "",
                  "| key | default | type | meaning |", "|---|---|---|---|"]
        for spec in specs:
            default = yaml.safe_dump(spec.default, default_flow_style=True).strip().removesuffix("...").strip()
            meaning = spec.help.replace("|", "\\|")
            lines.append(f"| `{spec.name}` | `{default}` | {spec.type} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
