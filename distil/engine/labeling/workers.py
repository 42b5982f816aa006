"""Where the shards are labeled: in this process, in worker processes on this machine, or on a Ray cluster.

Each runner takes the shards still to do and yields ``(shard, labels)`` as they finish; the caller writes them
(`LabelStore.write_shard`), so workers never write into the label folder and need no shared file system with
it. A shard is the unit of work and of retry: a runner that loses a worker loses at most the shards in flight.

- `InProcess`: one teacher here (what training runs when it labels for itself).
- `LocalProcesses`: one process per device (``devices: 0,1,2,3``), or ``workers`` CPU processes, each with its
  share of the cores as threads (``OMP_NUM_THREADS`` or every core, divided), so they do not oversubscribe them.
- `RayActors`: one Ray actor per GPU (or CPU worker) of an existing cluster (``ray_address``), fed shards by
  Ray's own `ActorPool`; the teacher travels through Ray's object store, and Ray restarts an actor whose process
  died and retries its shard.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from distil.engine.labeling.store import ShardLabels
from distil.engine.labeling.teacher_pass import TeacherLabeler

Work = tuple[int, list[str]]  # a shard and its images


class LabelingError(RuntimeError):
    """A labeling worker failed; finished shards are kept, and the same command goes on where it stopped."""


@dataclass(frozen=True)
class LabelerConfig:
    """What every worker needs to build its `TeacherLabeler` (plain values: it travels to other processes)."""

    teacher: str
    imgsz: int
    conf: float
    half: bool
    batch: int
    decode_threads: int

    def build(self, device: str, teacher: str | None = None) -> TeacherLabeler:
        return TeacherLabeler(teacher or self.teacher, self.imgsz, self.conf, device, self.half, self.batch,
                              self.decode_threads)


def cpu_threads(workers: int) -> int:
    """Each CPU worker's share of the cores this process may use (``OMP_NUM_THREADS``, else all of them)."""
    total = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    return max(1, total // max(1, workers))


class InProcess:
    """One teacher in this process."""

    def __init__(self, config: LabelerConfig, device: str) -> None:
        self.labeler = config.build(device)

    def run(self, work: Sequence[Work]) -> Iterator[tuple[int, ShardLabels]]:
        for shard, files in work:
            yield shard, self.labeler(files)


_LABELER: TeacherLabeler | None = None  # the labeler of a worker process


def _start_worker(config: LabelerConfig, devices, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    global _LABELER
    _LABELER = config.build(devices.get())


def _label(shard: int, files: list[str]) -> tuple[int, ShardLabels]:
    return shard, _LABELER(files)


class LocalProcesses:
    """Worker processes on this machine, one per device (each CPU worker with its share of the cores)."""

    def __init__(self, config: LabelerConfig, devices: Sequence[str]) -> None:
        self.config, self.devices = config, list(devices)

    def run(self, work: Sequence[Work]) -> Iterator[tuple[int, ShardLabels]]:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or CUDA state
        queue = context.Manager().Queue()
        for device in self.devices:
            queue.put(device)
        threads = cpu_threads(len(self.devices)) if self.devices[0] == "cpu" else 1
        with ProcessPoolExecutor(len(self.devices), mp_context=context, initializer=_start_worker,
                                 initargs=(self.config, queue, threads)) as pool:
            futures = [pool.submit(_label, shard, files) for shard, files in work]
            try:
                for future in as_completed(futures):
                    yield future.result()
            except BrokenProcessPool as error:
                for future in futures:
                    future.cancel()
                raise LabelingError(f"a labeling worker process died ({error}); the shards written so far are kept: "
                                    "run the same command again to label the rest") from None


class ShardWorker:
    """A Ray actor's state: the teacher, written from the object store to a file of the actor's own."""

    def __init__(self, config: LabelerConfig, teacher_bytes: bytes, device: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.folder = tempfile.TemporaryDirectory(prefix="distil-teacher-")
        path = Path(self.folder.name) / Path(config.teacher).name
        path.write_bytes(teacher_bytes)
        self.labeler = config.build(device, str(path))

    def label(self, shard: int, files: list[str]) -> tuple[int, ShardLabels]:
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            host = self.labeler.worker()["host"]
            raise FileNotFoundError(f"{len(missing)} image(s) of shard {shard} are not on {host}, e.g. {missing[0]}: "
                                    "on a cluster every node must see the images at the same paths (a shared or "
                                    "copied dataset)")
        return shard, self.labeler(files)


class RayActors:
    """Ray actors on a cluster, one per GPU or CPU worker.

    Args:
        config: The labeler every actor builds.
        address: The cluster (``auto``, or ``host:port``); connected to unless Ray is already initialised.
        workers: Actors; 0: one per GPU of the cluster (or per CPU where it has none).
        gpu: Give each actor a GPU (and run the teacher on it).
        threads: Threads (and CPUs reserved) per CPU actor.
        retries: Restarts of a dead actor, and retries of its shard.
    """

    def __init__(self, config: LabelerConfig, address: str, workers: int = 0, gpu: bool | None = None,
                 threads: int = 1, retries: int = 3) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        resources = ray.cluster_resources()
        self.gpu = bool(resources.get("GPU", 0)) if gpu is None else gpu
        self.workers = workers or int(resources.get("GPU" if self.gpu else "CPU", 1) // (1 if self.gpu else threads))
        self.config, self.threads, self.retries = config, threads, retries

    def run(self, work: Sequence[Work]) -> Iterator[tuple[int, ShardLabels]]:
        import ray
        from ray.util import ActorPool

        teacher = ray.put(Path(self.config.teacher).read_bytes())
        actor = ray.remote(ShardWorker).options(num_gpus=1 if self.gpu else 0, num_cpus=0 if self.gpu else self.threads,
                                                max_restarts=self.retries, max_task_retries=self.retries)
        device = "cuda" if self.gpu else "cpu"
        actors = [actor.remote(self.config, teacher, device, self.threads) for _ in range(self.workers)]
        try:
            pool = ActorPool(actors)
            yield from pool.map_unordered(lambda worker, job: worker.label.remote(*job), list(work))
        finally:
            for worker in actors:
                ray.kill(worker)
