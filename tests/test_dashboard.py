"""The dashboard: driven from Python through its widgets, and in a real browser through Voila."""

from __future__ import annotations

import datetime
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import distil
from distil import DashboardParams
from distil.dashboard import Dashboard, UploadError, choose_models, decode_upload, parse_models

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def jpeg_bytes(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def upload(app: Dashboard, content: bytes, name: str) -> None:
    """What the browser does: set the FileUpload value (ipywidgets 8 format)."""
    app.upload.value = ({"name": name, "type": "image/jpeg", "size": len(content), "content": memoryview(content),
                         "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


@pytest.fixture(scope="module")
def models(distilled_run, rtdetr_teacher) -> dict:
    weights = Path(distilled_run.wdir)
    return {"baseline": weights / "last.pt", "distilled": weights / "best.pt", "teacher": rtdetr_teacher,
            "run_dir": Path(distilled_run.save_dir)}


@pytest.fixture
def app(models) -> Dashboard:
    return Dashboard({"baseline": models["baseline"], "distilled": models["distilled"]}, teacher=models["teacher"],
                     run_dir=models["run_dir"])


@pytest.fixture(scope="module")
def image(tiny_data) -> np.ndarray:
    return cv2.imread(str(next((tiny_data.parent / "images" / "val").glob("*.jpg"))))


@pytest.mark.slow
def test_upload_runs_every_model_and_fills_the_panels(app, image):
    upload(app, jpeg_bytes(image), "scene.jpg")
    assert list(app.results) == ["baseline", "distilled"]
    assert len(app.panels.children) == 2
    for result, panel in zip(app.results.values(), app.panels.children):
        assert list(result.table.columns) == ["class", "confidence", "x1", "y1", "x2", "y2"]
        assert result.ms > 0 and not result.error
        drawn = panel.children[1].value
        assert drawn[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{result.count} objects" in panel.children[2].value
    assert app.original_view.value and app.enhanced_view.value
    assert "scene.jpg: 64x64" in app.status.value


@pytest.mark.slow
def test_enhancement_toggles_change_the_image_models_see(app, image):
    upload(app, jpeg_bytes(image), "scene.jpg")
    with_defaults = app.enhanced.copy()
    for toggle in app.controls.toggles.values():
        toggle.value = False
    assert np.array_equal(app.enhanced, cv2.imdecode(np.frombuffer(jpeg_bytes(image), np.uint8), cv2.IMREAD_COLOR))
    assert not np.array_equal(app.enhanced, with_defaults)
    app.controls.toggles["gamma"].value = True
    app.controls.auto_gamma.value = False
    app.controls.settings["gamma"]["gamma"].value = 2.5
    assert app.controls.pipeline.as_dict() == {"gamma": {"gamma": 2.5}}
    assert np.array_equal(app.enhanced, distil.enhancement.pipeline.gamma(app.image, gamma=2.5))


@pytest.mark.slow
def test_thresholds_rerun_detection(app, image):
    upload(app, jpeg_bytes(image), "scene.jpg")
    app.conf.value = 0.01
    many = {label: r.count for label, r in app.results.items()}
    app.conf.value = 0.9
    few = {label: r.count for label, r in app.results.items()}
    assert all(few[label] <= many[label] for label in many)
    assert all((r.table["confidence"] >= 0.9).all() for r in app.results.values())
    app.iou.value = 0.3  # also re-runs
    assert set(app.results) == {"baseline", "distilled"}


@pytest.mark.slow
def test_teacher_is_an_option(app, image):
    upload(app, jpeg_bytes(image), "scene.jpg")
    app.show_teacher.value = True
    assert list(app.results) == ["baseline", "distilled", "teacher"]
    assert not app.results["teacher"].error


def test_missing_model_is_a_message_in_the_page(models, image):
    app = Dashboard({"baseline": models["baseline"], "distilled": Path("nowhere/best.pt")})
    upload(app, jpeg_bytes(image), "scene.jpg")
    assert app.results["distilled"].error.startswith("Model file not found: nowhere/best.pt")
    assert "model-error" in app.panels.children[1].children[1].value
    assert not app.results["baseline"].error


def test_bad_uploads_give_a_message_and_the_app_keeps_working(models, image):
    app = Dashboard({"distilled": models["distilled"]}, max_pixels=100 * 100)
    big = io.BytesIO()
    Image.new("RGB", (200, 150)).save(big, format="PNG")
    broken = jpeg_bytes(image)[:200]
    for content, name, message in [(b"", "empty.jpg", "is empty"), (b"hello, not an image", "notes.jpg",
                                   "not an image this app can read"), (broken, "broken.jpg", "damaged"),
                                   (big.getvalue(), "huge.png", "too large: 200x150 \\(0 MP, at most 0 MP\\)")]:
        upload(app, content, name)
        assert re.search(message, app.status.value), app.status.value
        assert app.image is None and app.results == {}
    upload(app, jpeg_bytes(image), "good.jpg")
    assert app.results["distilled"].ms > 0


def test_decode_upload_reads_every_accepted_format(image):
    for extension in (".jpg", ".png", ".bmp", ".webp"):
        decoded = decode_upload(cv2.imencode(extension, image)[1].tobytes(), f"x{extension}")
        assert decoded.shape == image.shape
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(UploadError, match="not an image this app can read \\(JPEG, PNG, BMP or WebP\\)"):
        decode_upload(gif.getvalue(), "x.gif")


def test_models_come_from_the_environment_then_the_notebook_then_the_demo(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTIL_CWD", str(tmp_path))  # where the user started the dashboard
    assert parse_models("a=x.pt, b = y/z.pt") == {"a": tmp_path / "x.pt", "b": tmp_path / "y/z.pt"}
    assert parse_models("a=/abs/x.pt") == {"a": Path("/abs/x.pt")}
    with pytest.raises(ValueError, match="is not label=path.pt"):
        parse_models("x.pt")
    monkeypatch.delenv("DISTIL_MODELS", raising=False)
    params = DashboardParams.load({"outputs": str(tmp_path), "distill_loss": "cwd"})
    assert choose_models(params) == {
        "baseline": tmp_path / "runs" / "demo-baseline" / "weights" / "best.pt",
        "distilled": tmp_path / "runs" / "demo-cwd" / "weights" / "best.pt"}
    given = DashboardParams.load({"outputs": str(tmp_path), "models": "n=yolov8n.pt"})
    assert choose_models(given) == {"n": tmp_path / "yolov8n.pt"}
    monkeypatch.setenv("DISTIL_MODELS", "small=s.pt,big=b.pt")
    assert list(choose_models(given)) == ["small", "big"]


def test_the_distillation_diagram_is_drawn_from_the_run(app):
    assert app.diagram.value[:8] == b"\x89PNG\r\n\x1a\n" and not app.diagram_note.value
    bare = Dashboard({"x": Path("x.pt")}, run_dir=None)
    assert "No distillation record" in bare.diagram_note.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found: install Debian's chromium package "
                                                           "(apt-get install chromium) to run the browser tests")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def wait_for_server(port: int, server: subprocess.Popen, deadline_s: float = 120) -> None:
    """Until the server answers on its port (it starts a kernel's worth of imports first)."""
    deadline = time.time() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                said = server.stdout.read().decode()[-3000:] if server.poll() is not None else "timeout"
                raise RuntimeError(f"the dashboard did not start: {said}") from None
            time.sleep(0.5)


def http_status(port: int, host: str) -> int:
    """The status the server answers a request naming ``host`` in its Host header (as a DNS-rebound page would)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/", headers={"Host": host})
    return connection.getresponse().status


def kernels_of(server_pid: int) -> list[int]:
    """The kernel processes under the server (read from /proc: the server has no kernel API of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ipykernel" in cmdline and _descends_from(int(stat.parent.name), server_pid):
            found.append(int(stat.parent.name))
    return found


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def open_page(playwright, port: int, external: list):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})

    def offline(route):  # this machine has no internet: make that explicit and record it
        if not route.request.url.startswith(f"http://127.0.0.1:{port}"):
            external.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", offline)
    page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
    return browser, page


def choose_file(page, path: Path) -> None:
    button = page.get_by_text("Upload image")
    button.wait_for(timeout=120_000)
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(str(path))


@pytest.mark.slow
@needs_chromium
def test_make_dashboard_in_a_real_browser_with_paths_from_where_the_user_stands(models, image, tmp_path):
    """As a user runs it: make dashboard MODELS=<paths relative to the clone>, from the clone; only local host names
    answered; an upload over the limit refused in the page, and the page still works after it."""
    from playwright.sync_api import sync_playwright

    from distil.dashboard_server import MAX_UPLOAD_BYTES

    port = free_port()
    picture = tmp_path / "upload.jpg"
    cv2.imwrite(str(picture), image)
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(b"\xff\xd8\xff" + os.urandom(MAX_UPLOAD_BYTES + 1024))
    mine = ARTIFACTS / "dashboard-models"  # under the clone: the relative paths a user would write
    mine.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(models["baseline"], mine / "baseline.pt")
    shutil.copyfile(models["distilled"], mine / "distilled.pt")
    relative = f"baseline={mine.relative_to(ROOT)}/baseline.pt,distilled={mine.relative_to(ROOT)}/distilled.pt"
    server = subprocess.Popen(["make", "dashboard", f"PORT={port}", f"MODELS={relative}", "PARAMS=params/smoke.yaml"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    external = []
    try:
        wait_for_server(port, server)
        assert http_status(port, "evil.example") == 403  # a page elsewhere, rebound to 127.0.0.1, gets nothing
        assert http_status(port, f"127.0.0.1:{port}") == 200 and http_status(port, f"localhost:{port}") == 200
        with sync_playwright() as playwright:
            browser, page = open_page(playwright, port, external)
            choose_file(page, huge)
            page.wait_for_selector("#distil-upload-refused", timeout=60_000)
            refused = page.locator("#distil-upload-refused").inner_text()
            assert f"too large ({(MAX_UPLOAD_BYTES + 1027) / 2 ** 20:.1f} MB, at most 20 MB)" in refused
            choose_file(page, picture)  # the session is alive: the next upload is answered
            page.wait_for_function("document.querySelectorAll('.detection-summary').length >= 2", timeout=120_000)
            summaries = page.locator(".detection-summary").all_inner_texts()
            assert len(summaries) == 2 and all("objects" in s and "ms inference" in s for s in summaries)
            assert page.locator(".model-error").count() == 0  # both models found from the relative paths
            assert page.get_by_text("upload.jpg: 64x64").count() == 1
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    # Everything the page needs comes from this machine (Voila's lab template would ask a CDN for Font Awesome).
    assert external == []
    template = (ROOT / "share" / "jupyter" / "voila" / "templates" / "distil" / "index.html.j2").read_text()
    assert f"var limit = {MAX_UPLOAD_BYTES // 2 ** 20} * 1024 * 1024;" in template  # the page's limit is the app's


@pytest.mark.slow
@needs_chromium
def test_closed_pages_give_their_kernels_back_and_a_cap_refuses_more(models, tmp_path):
    """Every page load starts a kernel; closed, it is culled once idle, and beyond the cap a page is refused."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "distil", "dashboard", f"--port={port}",
                               f"--models=distilled={models['distilled']}", "--cull-idle-timeout=2",
                               "--cull-interval=1", "--max-kernels=2"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    external = []
    try:
        wait_for_server(port, server)
        with sync_playwright() as playwright:
            opened = [open_page(playwright, port, external) for _ in range(2)]
            for _, page in opened:
                page.get_by_text("Upload image").wait_for(timeout=120_000)
            assert len(kernels_of(server.pid)) == 2
            third = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS).new_page()
            response = third.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
            assert response.status == 503 or "dashboards are open already" in third.content()
            for browser, _ in opened:
                browser.close()
        deadline = time.time() + 60
        while kernels_of(server.pid) and time.time() < deadline:  # the culler's event: the kernels end
            time.sleep(0.5)
        assert kernels_of(server.pid) == []
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_detections_are_drawn_at_the_size_they_are_shown(models, image):
    """A 64-px image is shown 480 px wide: its labels are drawn at that size, not drawn small and enlarged."""
    from distil.dashboard import DISPLAY_SIDE, LoadedModel, draw_detections

    model = LoadedModel("distilled", models["distilled"])
    result = model.model.predict(image, imgsz=64, conf=0.0001, verbose=False)[0]
    assert len(result.boxes)
    drawn = draw_detections(image, result)
    assert drawn.shape[:2] == (DISPLAY_SIDE, DISPLAY_SIDE)
    plain = cv2.resize(image, (DISPLAY_SIDE, DISPLAY_SIDE))
    changed = (np.abs(drawn.astype(int) - plain.astype(int)).sum(2) > 30).mean()
    enlarged = cv2.resize(result.plot(line_width=2), (DISPLAY_SIDE, DISPLAY_SIDE), interpolation=cv2.INTER_NEAREST)
    covered = (np.abs(enlarged.astype(int) - plain.astype(int)).sum(2) > 30).mean()
    assert changed < covered  # boxes and labels cover less of the picture than the enlarged plot did


def test_the_dashboard_opens_on_what_the_series_made(models, tiny_data, tmp_path, monkeypatch):
    """Its runs (named by the params file), its validation images as samples, its teacher, the enhancement the
    distilled run trained with; relative paths from where the user started it."""
    import yaml

    from distil.dashboard import build_dashboard

    outputs = tmp_path / "outputs"
    params = {"name": "mine", "data": str(tiny_data), "outputs": str(outputs), "teacher": str(models["teacher"]),
              "distill_loss": "cwd", "distill_det": 1.0}
    for run in ("mine-baseline", "mine-cwd-det"):
        shutil.copytree(models["run_dir"], outputs / "runs" / run)
    args = outputs / "runs" / "mine-cwd-det" / "args.yaml"
    args.write_text(yaml.safe_dump({**yaml.safe_load(args.read_text()), "enhance": "none"}))
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("DISTIL_CWD", str(tmp_path))
    monkeypatch.setenv("DISTIL_PARAMS", "mine.yaml")  # relative: from where the user started the dashboard
    monkeypatch.delenv("DISTIL_MODELS", raising=False)
    app = build_dashboard(DashboardParams())
    assert app.model_paths == {"baseline": outputs / "runs" / "mine-baseline" / "weights" / "best.pt",
                               "distilled": outputs / "runs" / "mine-cwd-det" / "weights" / "best.pt"}
    assert app.teacher_path == models["teacher"] and not app.show_teacher.disabled
    assert app.samples and all(label.startswith("validation: ") for label in app.samples)
    assert all(path.parent == tiny_data.parent / "images" / "val" for path in app.samples.values())
    assert app.controls.pipeline.as_dict() == {}  # trained with enhance: none, shown without it
    assert not app.diagram_note.value  # the distilled run's own diagram
