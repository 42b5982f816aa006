"""Params files: flat YAML mappings, read strictly, that may build on another (``base: demo.yaml``).

What a file may hold is plain data: PyYAML's safe loader already refuses tags that build objects
(``!!python/...``); this reader also refuses what makes a small file large or ambiguous, each with the line:

- a key written twice (YAML keeps the last one silently; an uncommented block would win without a word);
- anchors and aliases (``&a`` / ``*a``: a few hundred bytes can expand to gigabytes);
- a file over `MAX_BYTES`.

``base: <file>`` names a params file this one differs from (a path relative to the file's own folder, or to the
project root, which is how papermill's ``-f`` reads it too): its keys come first, this file's replace them
(torchdistill / mmrazor style), and a base may have a base of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20
BASE_KEY = "base"


class ParamsFileError(ValueError):
    """A params file cannot be read as flat, plain params; the message names the file, the line and the fix."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases, and without a key given twice in one mapping."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise ParamsFileError(f"line {event.start_mark.line + 1}: YAML anchors and aliases ({mark}{event.anchor}) "
                                  "are not accepted in params files: write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise ParamsFileError(f"key {key!r} is given twice, on lines {lines[key]} and {line}: keep one")
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str, where: str) -> Any:
    """Plain data from YAML text, strictly (see the module docstring)."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise ParamsFileError(f"{where} is {len(text) / 1e6:.1f} MB; params files are at most {MAX_BYTES // 1024} KB "
                              "(keep long lists, e.g. of images, in a file of their own and give its path)")
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ParamsFileError as error:
        raise ParamsFileError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        raise ParamsFileError(f"{where} is not valid YAML: {error}") from None


def read_params_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The flat params of a file, its ``base`` (and the base's base) resolved under it.

    Raises:
        ParamsFileError: The file is missing, not a flat mapping, refused (see the module docstring), or its bases
            go round in a circle.
    """
    path = Path(path).resolve()
    if path in _chain:
        raise ParamsFileError(f"params file {path} is its own base (through {' -> '.join(p.name for p in _chain)})")
    if not path.is_file():
        where = f" (the base of {_chain[-1]})" if _chain else ""
        raise ParamsFileError(f"params file {path}{where} not found")
    if path.stat().st_size > MAX_BYTES:
        raise ParamsFileError(f"{path} is {path.stat().st_size / 1e6:.1f} MB; params files are at most "
                              f"{MAX_BYTES // 1024} KB")
    values = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ParamsFileError(f"params file {path} must hold a mapping of flat keys (key: value, one per line)")
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    if not isinstance(base, str) or not base:
        raise ParamsFileError(f"{path}: base={base!r} must name a params file (relative to {path.parent})")
    return {**read_params_file(base_path(path, base), (*_chain, path)), **values}


def base_path(path: Path, base: str) -> Path:
    """Where the ``base`` named in params file ``path`` is: beside it, else relative to the project root."""
    from distil.paths import resolve_path

    beside = path.parent / base
    return (beside if beside.exists() else resolve_path(base)).resolve()
