"""Ultralytics makes no network attempt in this project's flows (a socket guard counts attempts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

GUARDED_RUN = textwrap.dedent("""
    import json, socket, sys
    attempts = []

    def blocked(kind):
        def guard(*args, **kwargs):
            attempts.append([kind, repr(args[:2])[:120]])
            raise OSError("network blocked by the test's socket guard")
        return guard

    socket.socket.connect = blocked("connect")
    socket.socket.connect_ex = blocked("connect_ex")
    socket.getaddrinfo = blocked("getaddrinfo")
    socket.create_connection = blocked("create_connection")

    import distil  # the first import: nothing of Ultralytics is loaded before the guard
    from ultralytics import YOLO

    data, teacher, project = sys.argv[1:4]
    common = dict(data=data, imgsz=64, batch=8, epochs=1, device="cpu", workers=0, project=project, exist_ok=True)
    run = distil.train({"name": "guard", "data": data, "teacher": teacher, "student": "yolov8n.yaml",
                        "loss": "cwd", "distill_mask": "gt", "epochs": 1, "imgsz": 64, "batch": 8,
                        "device": "cpu", "outputs": project, "plots": True})
    baseline = YOLO("yolov8n.yaml")
    baseline.train(name="plain", plots=True, **common)  # plots: fonts, labels, results
    best = YOLO(str(run / "weights" / "best.pt"))
    best.val(data=data, imgsz=64, device="cpu", plots=True, project=project, name="val")
    best.predict(data.replace("data.yaml", "images/val"), imgsz=64, device="cpu", save=True, project=project,
                 name="predict")
    print("ATTEMPTS=" + json.dumps(attempts))
""")


@pytest.mark.slow
def test_training_validation_and_prediction_make_no_network_attempt(tiny_data, rtdetr_teacher, tmp_path):
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh-config")}  # no fonts there yet
    env.pop("YOLO_OFFLINE", None)
    out = subprocess.run([sys.executable, "-c", GUARDED_RUN, str(tiny_data), str(rtdetr_teacher), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(line for line in out.stdout.splitlines() if line.startswith("ATTEMPTS="))
    assert json.loads(line.removeprefix("ATTEMPTS=")) == []
    # the font Ultralytics would have downloaded
    assert (tmp_path / "fresh-config" / "Ultralytics" / "Arial.ttf").exists()
    assert (tmp_path / "runs" / "guard-cwd" / "weights" / "best.pt").exists()
    assert any((tmp_path / "plain").glob("*.png")) or any((tmp_path / "plain").glob("*.jpg"))


@pytest.mark.slow
def test_importing_distil_leaves_the_users_settings_file_as_it_was(tmp_path):
    """Offline switches live in memory: a user's own YOLO_CONFIG_DIR keeps the settings they chose."""
    config = tmp_path / "my-config"
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from ultralytics.utils import SETTINGS
        SETTINGS.update({"sync": True})  # the user's own choice, saved by Ultralytics
        before = Path(sys.argv[1]).read_text()
        import distil
        from ultralytics.utils import SETTINGS
        print(json.dumps({"same": Path(sys.argv[1]).read_text() == before, "sync_now": SETTINGS["sync"],
                          "saved_sync": json.loads(before)["sync"]}))
    """)
    env = {**os.environ, "YOLO_CONFIG_DIR": str(config), "YOLO_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script, str(config / "Ultralytics" / "settings.json")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"same": True, "sync_now": False, "saved_sync": True}
