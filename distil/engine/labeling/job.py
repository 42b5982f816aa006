"""``distil.label``: the teacher labels a set of images once, as a resumable job, on one machine or a cluster.

The images (a folder, a ``.txt`` list or a glob) are sorted and cut in shards (`store`); the shards not yet in
the output folder are labeled by a runner (`workers`) and written whole as they come. So a job killed at any
point, run again with the same arguments, labels only what is missing; run with other settings into the same
folder, it is refused before any work. What a run of the same images gives does not depend on the runner or
the number of workers: each shard depends on its own images alone.
"""

from __future__ import annotations

import glob
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from ultralytics.utils import LOGGER, TQDM

from distil.engine.labeling.store import (
    LabelSettings,
    LabelStore,
    LabelStoreError,
    ShardLabels,
    file_sha1,
    images_digest,
)
from distil.engine.labeling.workers import InProcess, LabelerConfig, LocalProcesses, RayActors, cpu_threads
from distil.engine.teacher import teacher_names
from distil.engine.unlabeled import UnlabeledImagesError, unlabeled_images
from distil.paths import resolve_model_file

OnShard = Callable[[int, ShardLabels], None]


def image_list(images: str | Path | Sequence[str]) -> list[str]:
    """The image files named by a folder, a ``.txt`` list, a glob pattern or a list of paths, sorted.

    Raises:
        UnlabeledImagesError: Nothing readable is named (the message says what was looked at).
    """
    if isinstance(images, (list, tuple)):
        return sorted(str(Path(p).resolve()) for p in images)
    text = str(images)
    if any(ch in text for ch in "*?["):
        found = sorted(str(Path(p).resolve()) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            raise UnlabeledImagesError(f"images {text!r}: the pattern matches no file")
        return found
    return sorted(str(Path(p).resolve()) for p in unlabeled_images(text, key="images"))


def devices_for(workers: int, devices: str | Sequence[str] | None) -> list[str]:
    """One entry per worker: the GPUs named (``'0,1'``), else every visible GPU, else ``workers`` CPU workers."""
    if devices not in (None, "", "auto"):
        names = devices.split(",") if isinstance(devices, str) else [str(d) for d in devices]
        return [d.strip() if d.strip() == "cpu" or d.strip().startswith("cuda") else f"cuda:{d.strip()}"
                for d in names if d.strip()] or ["cpu"]
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * max(1, workers)


def label(teacher: str | Path, images: str | Path | Sequence[str], out: str | Path, *, imgsz: int = 640,
          conf: float = 0.25, workers: int = 1, devices: str | Sequence[str] | None = None,
          ray_address: str | None = None, batch: int = 16, shard_size: int = 256, half: bool = False,
          decode_threads: int = 2, progress: bool = True, on_shard: OnShard | None = None) -> LabelStore:
    """Label ``images`` with ``teacher`` into the folder ``out`` (made once; reused, or finished, when run again).

    Args:
        teacher: The teacher checkpoint (.pt): RT-DETR or YOLO.
        images: A folder (searched recursively), a ``.txt`` list of paths, a glob pattern, or a list of paths.
        out: The label folder (see `distil.engine.labeling.store`).
        imgsz: The size the teacher reads the images at (square).
        conf: Boxes from this score up are stored (training may keep a higher threshold, not a lower one).
        workers: CPU worker processes on this machine (where it has no GPU and ``devices`` is not given), or Ray
            actors with ``ray_address`` (0: one per GPU of the cluster).
        devices: GPUs on this machine, one worker each (``'0,1,2,3'``); default: every visible GPU, else the CPU.
        ray_address: Run on this Ray cluster (``'auto'``, or ``'host:port'``) instead of this machine.
        batch: Images per teacher pass.
        shard_size: Images per shard: the unit of work, of resuming and of retrying.
        half: fp16 on a GPU (bf16 on a CPU with bf16 units) instead of fp32.
        decode_threads: Threads per worker decoding images ahead of the teacher.
        progress: Show images per second and the time left.
        on_shard: Called with each shard after it is written.

    Returns:
        The finished label folder.

    Raises:
        LabelStoreError: ``out`` holds labels made with other settings or images.
        UnlabeledImagesError: ``images`` names no image.
        FileNotFoundError: The teacher is missing.
    """
    teacher_path = resolve_model_file(teacher, "teacher")
    if teacher_path.suffix != ".pt":
        raise LabelStoreError(f"teacher {teacher}: labels come from a trained checkpoint (.pt), not a model YAML")
    files = image_list(images)
    settings = LabelSettings(str(teacher_path), file_sha1(teacher_path), int(imgsz), float(conf), bool(half),
                             teacher_names(teacher_path))
    store = LabelStore.create(out, settings, files, shard_size)
    pending = store.pending()
    if not pending:
        LOGGER.info(f"distil: {store.folder} already holds the teacher's labels of these {len(files)} images")
        return store
    config = LabelerConfig(str(teacher_path), int(imgsz), float(conf), bool(half), batch, decode_threads)
    places = devices_for(workers, devices)
    if ray_address:
        runner = RayActors(config, ray_address, workers=workers if devices in (None, "", "auto") else len(places),
                           gpu=None if devices in (None, "", "auto") else places[0] != "cpu")
    elif len(places) == 1:
        runner = InProcess(config, places[0])
    else:
        runner = LocalProcesses(config, places)
    where = f"Ray cluster {ray_address}" if ray_address else \
        f"{len(places)} worker(s) on {', '.join(sorted(set(places)))}"
    todo = sum(len(store.shard_images(k)) for k in pending)
    LOGGER.info(f"distil: the teacher labels {todo} of {len(files)} images ({len(pending)} of {store.shards} shards) "
                f"into {store.folder}, on {where}" + (f", {cpu_threads(len(places))} thread(s) each" if
                                                     places[0] == "cpu" and not ray_address else ""))
    started = time.time()
    bar = TQDM(total=todo, desc="labeling", unit="img", disable=not progress)
    try:
        for shard, labels in runner.run([(k, store.shard_images(k)) for k in pending]):
            store.write_shard(shard, labels)
            bar.update(len(store.shard_images(shard)))
            if on_shard is not None:
                on_shard(shard, labels)
    finally:
        bar.close()
    seconds = time.time() - started
    LOGGER.info(f"distil: {todo} images labeled in {seconds:.1f} s ({todo / max(seconds, 1e-9):.1f} images/s)")
    return store


def training_labels(teacher: str | Path, images: Sequence[str], imgsz: int, conf: float, root: Path,
                    given: str = "", device: str = "cpu", progress: bool = True) -> LabelStore:
    """The label folder an offline distillation learns from: the one given (``distill_det_labels``), checked
    against this run, or one the teacher makes now under ``root`` (kept by key and reused by every run that would
    make the same labels, e.g. the seeds of a study).

    Raises:
        LabelStoreError: The given folder is unfinished, made by another teacher, or lacks some of the images.
    """
    teacher_path = resolve_model_file(teacher, "teacher")
    files = sorted(str(Path(p).resolve()) for p in images)
    if given:
        store = LabelStore(given)
        if not store.complete:
            raise LabelStoreError(f"distill_det_labels={given!r} is unfinished ({len(store.pending())} of "
                                  f"{store.shards} shards missing): run its distil label command again to finish it")
        sha1 = file_sha1(teacher_path)
        if store.settings.made_by == "teacher" and store.settings.teacher_sha1 != sha1:
            raise LabelStoreError(f"distill_det_labels={given!r} was made by the teacher {store.settings.teacher} "
                                  f"(sha1 {store.settings.teacher_sha1[:12]}), and this run's teacher {teacher_path} "
                                  f"is another (sha1 {sha1[:12]}): label with this teacher, or teach with that one")
        missing = sorted(set(files) - set(store.images))
        if missing:
            raise LabelStoreError(f"distill_det_labels={given!r} has no labels for {len(missing)} of the "
                                  f"{len(files)} unlabeled images, e.g. {missing[0]}: label them with distil label, "
                                  "or give distill_unlabeled the images it labeled")
        return store
    settings = LabelSettings(str(teacher_path), file_sha1(teacher_path), int(imgsz), float(conf), False,
                             teacher_names(teacher_path))
    key = hashlib.sha1(json.dumps({**settings.as_dict(), "teacher": "", "images": images_digest(files)},
                                  sort_keys=True).encode()).hexdigest()[:16]
    return label(teacher_path, files, root / key, imgsz=imgsz, conf=conf, devices=[device], progress=progress)
