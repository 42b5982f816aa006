"""The teacher's training stages: one list in the params (``teacher_stages``), trained in order, each from the
one before.

A stage is a mapping: its ``name`` (its folder under ``outputs/teacher/<name>/``), its ``epochs``, and any
Ultralytics training key (``lr0``, ``optimizer``, ``mosaic``, ...), plus two of distil's own:

- ``head: dense``: the first stage of an RT-DETR from scratch trains its backbone and hybrid encoder with a YOLO
  ``Detect`` head in place of the decoder (a dense head learns fast; one-to-one matching slowly), and the next
  stage warm-starts the RT-DETR from it, weights matched by layer name;
- ``freeze: encoder``: every layer before the head stays as the stage before left it (Ultralytics' ``freeze``
  with that count), so the features a student learns from are the ones the dense stage made.

``teacher_stages: auto`` is what a teacher of that kind needs (`auto_stages`); ``[]`` trains nothing (the
teacher is used as it is). The per-stage keys of earlier versions (``teacher_epochs``, ``teacher_lr0``, ...) are
read as the list they meant (`legacy_stages`), in a params file with one line that says so, and in the record of
a teacher made with them, so a shipped teacher stays the teacher these params make.
"""

from __future__ import annotations

from typing import Any

from ultralytics.nn.tasks import yaml_model_load

from distil.engine.teacher import is_rtdetr_yaml
from distil.paths import resolve_model_file

DENSE, ENCODER = "dense", "encoder"
DISTIL_STAGE_KEYS = ("name", "epochs", "head", "freeze")
# what distil sets for every stage (where it trains, from what, under which name): never a stage's own
SET_FOR_EVERY_STAGE = {"data", "model", "project", "name", "exist_ok", "resume", "task", "mode", "save_dir"}
# The decoder without mosaic, which shrinks objects four-fold: on the demo the decoder on the frozen encoder
# learned faster without it at lr 1e-3 than with it at 2e-4 (mAP50-95 0.36 against 0.28 in 10 epochs).
DECODER_RECIPE = {"optimizer": "AdamW", "mosaic": 0.0}
# the per-stage keys of earlier versions, with the defaults they had
LEGACY_KEYS = {"teacher_encoder_epochs": 20, "teacher_epochs": 15, "teacher_freeze_encoder": True,
               "teacher_lr0": 0.001, "teacher_refine_epochs": 0, "teacher_refine_lr0": 0.0003}


class StagesError(ValueError):
    """The stages cannot train this teacher (raised as a `distil.params.ParamsError` by the params)."""


def teacher_kind(weights: str, model: str) -> str:
    """What is trained: ``'finetune'`` (given weights), ``'rtdetr'`` or ``'yolo'`` (a model YAML), ``'given'``
    (neither: the teacher is used as it is)."""
    if weights:
        return "finetune"
    if not model:
        return "given"
    try:
        cfg = yaml_model_load(resolve_model_file(model, "teacher architecture (parameter teacher_model)"))
    except (FileNotFoundError, ValueError) as error:
        raise StagesError(str(error)) from None
    return "rtdetr" if is_rtdetr_yaml(cfg) else "yolo"


def legacy_stages(kind: str, teacher_encoder_epochs: int = 20, teacher_epochs: int = 15,
                  teacher_freeze_encoder: bool = True, teacher_lr0: float = 0.001, teacher_refine_epochs: int = 0,
                  teacher_refine_lr0: float = 0.0003) -> list[dict[str, Any]]:
    """The stages the per-stage keys of earlier versions trained (``teacher_epochs: 0``: none)."""
    if teacher_refine_epochs and kind != "rtdetr":
        raise StagesError(f"teacher_refine_epochs={teacher_refine_epochs} refines an RT-DETR trained from scratch "
                          "(teacher_model: an RT-DETR YAML); this teacher trains in one stage: drop it")
    if not teacher_epochs or kind == "given":
        return []
    if kind == "finetune":
        return [{"name": "finetune", "epochs": teacher_epochs, "lr0": teacher_lr0, "optimizer": "AdamW"}]
    if kind == "yolo":
        return [{"name": "direct", "epochs": teacher_epochs}]
    stages = [{"name": "encoder", "epochs": teacher_encoder_epochs, "head": DENSE}] if teacher_encoder_epochs else []
    frozen = {"freeze": ENCODER} if teacher_encoder_epochs and teacher_freeze_encoder else {}
    stages.append({"name": "decoder", "epochs": teacher_epochs, "lr0": teacher_lr0, **DECODER_RECIPE, **frozen})
    if teacher_refine_epochs:
        stages.append({"name": "refine", "epochs": teacher_refine_epochs, "lr0": teacher_refine_lr0,
                       **DECODER_RECIPE, **frozen})
    return stages


def auto_stages(kind: str) -> list[dict[str, Any]]:
    """``teacher_stages: auto``: an RT-DETR's encoder and decoder stages, else one stage (as before the list)."""
    return legacy_stages(kind)


def stages_from_legacy_keys(values: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The list that the per-stage keys in ``values`` mean (missing ones at their old defaults)."""
    return legacy_stages(kind, **{key: values.get(key, default) for key, default in LEGACY_KEYS.items()})


def checked_stages(stages: list, kind: str, training_keys: set[str]) -> list[dict[str, Any]]:
    """The stages as plain dicts, checked before anything trains.

    Args:
        training_keys: Ultralytics' training keys (a stage may set any of them but `SET_FOR_EVERY_STAGE`).

    Raises:
        StagesError: A stage is not a mapping, lacks a name or epochs, repeats a name, sets a key Ultralytics does
            not have, or asks what this kind of teacher cannot do.
    """
    from ultralytics.cfg import check_cfg  # Ultralytics' own type and range checks of its keys

    if not isinstance(stages, list):
        raise StagesError(f"teacher_stages={stages!r} must be 'auto' or a list of stages ({{name, epochs, ...}})")
    if stages and kind == "given":
        raise StagesError("teacher_stages train a teacher, but there is nothing to train: set teacher_model "
                          "(from scratch) or teacher_weights (to fine-tune), or teacher_stages: []")
    out, names = [], set()
    for index, stage in enumerate(stages):
        where = f"teacher_stages[{index}]"
        if not isinstance(stage, dict) or not isinstance(stage.get("name"), str) or not stage["name"]:
            raise StagesError(f"{where}={stage!r} must be a mapping with a name, e.g. {{name: decoder, epochs: 20}}")
        name = stage["name"]
        if name in names or name == "val" or "/" in name or name.startswith("."):
            raise StagesError(f"{where}: name {name!r} must be a plain folder name, not 'val', once in the list")
        names.add(name)
        epochs = stage.get("epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise StagesError(f"{where} ({name}): epochs={epochs!r} must be a whole number >= 1")
        extra = {k: v for k, v in stage.items() if k not in DISTIL_STAGE_KEYS}
        foreign = sorted(k for k in extra if k not in training_keys or k in SET_FOR_EVERY_STAGE)
        if foreign:
            raise StagesError(f"{where} ({name}): {', '.join(foreign)} cannot be set per stage: a stage takes name, "
                              "epochs, head, freeze and Ultralytics' training keys (lr0, optimizer, mosaic, ...)")
        try:
            check_cfg({k: v for k, v in extra.items()})
        except (TypeError, ValueError) as error:
            raise StagesError(f"{where} ({name}): {error}") from None
        head, freeze = stage.get("head"), stage.get("freeze")
        if head is not None and (head != DENSE or index > 0 or kind != "rtdetr"):
            raise StagesError(f"{where} ({name}): head={head!r}: only the first stage of an RT-DETR trained from "
                              "scratch (teacher_model) may be head: dense")
        if freeze == ENCODER and (index == 0 or kind != "rtdetr"):
            raise StagesError(f"{where} ({name}): freeze: encoder keeps the encoder an earlier stage of an RT-DETR "
                              "from scratch trained; give freeze: <number of layers> to freeze others")
        out.append(dict(stage))
    if out and out[-1].get("head") == DENSE:
        raise StagesError(f"teacher_stages: the last stage ({out[-1]['name']}) is the dense-head encoder stage, which "
                          "only prepares the encoder: add the decoder stage after it")
    return out


def summary(stages: list[dict[str, Any]]) -> str:
    """The stages in one line, e.g. ``encoder 15, decoder 20 (lr0 0.001, ...)``."""
    def one(stage: dict) -> str:
        rest = ", ".join(f"{k} {v}" for k, v in stage.items() if k not in ("name", "epochs"))
        return f"{stage['name']} {stage['epochs']}" + (f" ({rest})" if rest else "")
    return "; ".join(one(stage) for stage in stages) or "none"


def changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str:
    """What differs between two lists of stages, stage by stage where they have the same names."""
    if [s["name"] for s in old] != [s["name"] for s in new]:
        return f"teacher_stages: {summary(old)} -> {summary(new)}"
    said = []
    for before, after in zip(old, new):
        said += [f"teacher_stages {after['name']} {k}: {before.get(k)!r} -> {after.get(k)!r}"
                 for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    return ", ".join(said)


def is_prefix(first: list[dict[str, Any]], longer: list[dict[str, Any]]) -> bool:
    """Whether ``longer`` is ``first`` with stages added after it (a teacher made with ``first`` can be extended)."""
    return len(first) < len(longer) and longer[:len(first)] == first
