"""The teacher labels once: the same labels however many workers (processes, Ray nodes) make them, a killed job
that goes on where it stopped, and a label folder that refuses to be mixed."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from distil import atomic
from distil.engine.labeling import LabelStore, LabelStoreError, label

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every Ray node on 127.0.0.1 (read when Ray loads)

SMALL = {"imgsz": 64, "conf": 0.05, "shard_size": 5, "batch": 4, "progress": False}  # 16 images: 4 shards


class Killed(BaseException):
    """What a kill looks like to the code it interrupts: nothing after it runs (not an Exception to catch)."""


def unlabeled(tiny_data):
    return tiny_data.parent / "images" / "unlabeled"


@pytest.fixture(scope="module")
def reference(tiny_data, rtdetr_teacher, tmp_path_factory) -> LabelStore:
    """The labels of one process, labeling alone."""
    return label(rtdetr_teacher, unlabeled(tiny_data), tmp_path_factory.mktemp("labels") / "one", **SMALL)


def assert_same_labels(a: LabelStore, b: LabelStore) -> None:
    assert a.images == b.images and a.shards == b.shards == 4
    for shard in range(a.shards):
        x, y = a.read_shard(shard), b.read_shard(shard)
        assert np.array_equal(x.image, y.image) and np.array_equal(x.cls, y.cls), shard
        for name in ("boxes", "scores", "probs"):
            assert np.allclose(getattr(x, name), getattr(y, name), atol=1e-5), (shard, name)


@pytest.mark.slow
def test_the_labels_hold_each_box_with_its_score_and_the_teachers_score_of_every_class(reference, tiny_data):
    labels = reference.per_image()
    assert sorted(labels) == reference.images and len(labels) == 16
    found = next(v for v in labels.values() if len(v.scores))
    assert found.probs.shape == (len(found.scores), 6) and (found.boxes >= 0).all() and (found.boxes <= 1).all()
    rows = np.arange(len(found.scores))
    assert np.allclose(found.probs[rows, found.cls], found.scores)  # a box's score is its class's entry
    assert (found.scores >= SMALL["conf"]).all()
    cut = float(np.median(np.concatenate([v.scores for v in labels.values()])))
    fewer = reference.per_image(conf=cut)  # a higher threshold at training reads a subset
    assert all((v.scores >= cut).all() for v in fewer.values())
    assert 0 < sum(len(v.scores) for v in fewer.values()) < sum(len(v.scores) for v in labels.values())
    with pytest.raises(LabelStoreError, match="below the score 0.05"):
        reference.per_image(conf=0.01)


@pytest.mark.slow
def test_two_worker_processes_label_exactly_as_one_process(reference, tiny_data, rtdetr_teacher, tmp_path):
    two = label(rtdetr_teacher, unlabeled(tiny_data), tmp_path / "two", workers=2, **SMALL)
    assert_same_labels(reference, two)
    assert {two.read_shard(k).worker["pid"] for k in range(two.shards)} != {os.getpid()}  # made elsewhere


@pytest.mark.slow
def test_a_job_killed_at_its_third_shard_goes_on_where_it_stopped(reference, tiny_data, rtdetr_teacher, tmp_path):
    out = tmp_path / "killed"
    writes = []

    def kill_at_third_shard(path):
        writes.append(path)
        if path.parent.name == "shards" and sum(p.parent.name == "shards" for p in writes) == 3:
            raise Killed  # the process dies just before the third shard's rename

    atomic.BEFORE_REPLACE.append(kill_at_third_shard)
    try:
        with pytest.raises(Killed):
            label(rtdetr_teacher, unlabeled(tiny_data), out, **SMALL)
    finally:
        atomic.BEFORE_REPLACE.remove(kill_at_third_shard)
    store = LabelStore(out)
    assert store.pending() == [2, 3]  # the shard being written when it died was never seen half-written
    assert not list((out / "shards").glob("*.npz.tmp*")) and not (out / "shards" / "00002.npz").exists()
    kept = {k: store.shard_path(k).stat().st_mtime_ns for k in (0, 1)}
    labeled_again = []
    again = label(rtdetr_teacher, unlabeled(tiny_data), out, on_shard=lambda k, _: labeled_again.append(k), **SMALL)
    assert sorted(labeled_again) == [2, 3]
    assert {k: again.shard_path(k).stat().st_mtime_ns for k in (0, 1)} == kept  # finished shards untouched
    assert_same_labels(reference, again)
    labeled_again.clear()
    label(rtdetr_teacher, unlabeled(tiny_data), out, on_shard=lambda k, _: labeled_again.append(k), **SMALL)
    assert labeled_again == []  # finished: nothing to do


@pytest.mark.slow
def test_a_label_folder_refuses_other_settings_or_other_images(reference, tiny_data, rtdetr_teacher, yolo_teacher):
    folder = reference.folder
    with pytest.raises(LabelStoreError, match=r"imgsz: 64 here, 96 asked"):
        label(rtdetr_teacher, unlabeled(tiny_data), folder, **{**SMALL, "imgsz": 96})
    with pytest.raises(LabelStoreError, match="teacher_sha1"):
        label(yolo_teacher, unlabeled(tiny_data), folder, **SMALL)
    fewer = sorted(str(p) for p in unlabeled(tiny_data).glob("*.jpg"))[:6]
    with pytest.raises(LabelStoreError, match="count: 16 here, 6 asked"):
        label(rtdetr_teacher, fewer, folder, **SMALL)
    assert reference.pending() == [] and len(LabelStore(folder).images) == 16  # nothing changed


def test_a_yolo_teachers_boxes_are_stored_in_each_images_own_frame(yolo_teacher):
    """A YOLO teacher reads a letterboxed image (a 64 x 96 image at 96: 16 rows of padding above and below); its
    boxes are stored normalised to the original image, so they do not depend on the size it was labeled at."""
    from distil.engine.labeling.teacher_pass import TeacherLabeler

    labeler = TeacherLabeler(yolo_teacher, imgsz=96, conf=0.5)
    in_input = np.array([[0.5, 0.5, 0.25, 0.25], [0.25, 0.75, 0.1, 0.1]], np.float32)  # of the 96 x 96 input
    stored = labeler.unletterbox(in_input, np.array([0, 0]), [(64, 96)])
    assert np.allclose(stored[0], [0.5, 0.5, 0.25, 0.375], atol=1e-6)  # cy (48 - 16) / 64, h 24 / 64
    assert np.allclose(stored[1], [0.25, (72 - 16) / 64, 0.1, 9.6 / 64], atol=1e-6)
    assert not labeler.rtdetr and labeler.frame.scale_fill is False  # RT-DETR's is a stretch, which keeps coordinates


@pytest.mark.slow
def test_a_two_node_ray_cluster_labels_as_one_process_and_loses_nothing_when_a_worker_is_killed(
        reference, tiny_data, rtdetr_teacher, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is the dev extra's (pip install -e '.[dev]'): the cluster path")
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 200 * 1024 ** 2, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        killed, written = [], []

        def kill_the_first_worker_after_its_shard(shard, labels):
            written.append(shard)
            if not killed:  # its next shard is in flight or about to be: Ray restarts it and retries that shard
                killed.append(labels.worker["pid"])
                os.kill(labels.worker["pid"], signal.SIGKILL)

        store = label(rtdetr_teacher, unlabeled(tiny_data), tmp_path / "ray", workers=2,
                      ray_address=cluster.address, on_shard=kill_the_first_worker_after_its_shard, **SMALL)
        assert sorted(written) == [0, 1, 2, 3]  # every shard written once: none lost, none labeled twice
        workers = {store.read_shard(k).worker["pid"] for k in range(store.shards)}
        assert killed and len(workers - set(killed)) >= 1 and os.getpid() not in workers
        assert_same_labels(reference, store)
    finally:
        ray.shutdown()
        cluster.shutdown()
