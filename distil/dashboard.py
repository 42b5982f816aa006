"""The dashboard: upload an image, enhance it, compare detectors side by side (ipywidgets, for Voila).

`Dashboard` is the whole app, testable without a browser: tests set the upload value, toggle
steps and move thresholds, then read `Dashboard.results` and the rendered widgets.
``notebooks/05_dashboard.ipynb`` only builds one and shows `Dashboard.widget`; ``make dashboard``
serves that notebook with Voila on 127.0.0.1.

What it opens on is what the last series made: the params file ``distil dashboard`` (``make dashboard``) passes in
``DISTIL_PARAMS`` names the runs (its baseline and distilled runs, its teacher when there is one), the enhancement
the distilled run trained with, and its dataset's validation images as samples. ``DISTIL_MODELS`` (``label=path.pt``
pairs, comma-separated, in display order), else the notebook's ``models``, picks other models; relative paths are
the user's working directory's (``DISTIL_CWD``), not the notebook folder's.
"""

from __future__ import annotations

import html
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd
from PIL import Image
from ultralytics.utils.plotting import Annotator, colors

from distil.dashboard_server import MAX_UPLOAD_BYTES
from distil.engine.teacher import detector
from distil.enhancement.controls import EnhancementControls, png_bytes
from distil.enhancement.pipeline import Pipeline
from distil.eval.diagram import distillation_diagram
from distil.params import DashboardParams

MAX_PIXELS = 40_000_000  # larger uploads are refused (decoding them could exhaust memory)
DISPLAY_SIDE = 480  # pixels of the longest side of images in the page (png_bytes shrinks larger ones to it)


class UploadError(ValueError):
    """An upload that is not a usable image; the message is shown in the page."""


def user_path(text: str | Path) -> Path:
    """A path as the user wrote it: relative ones from the directory they started the dashboard in."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(os.environ.get("DISTIL_CWD") or os.getcwd()) / path


def parse_models(spec: str) -> dict[str, Path]:
    """``"baseline=a.pt,distilled=b.pt"`` -> ``{"baseline": Path("a.pt"), ...}`` (order kept; relative paths from
    the user's working directory).

    Raises:
        ValueError: An entry is not ``label=path``.
    """
    models = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        label, sep, path = entry.partition("=")
        if not sep or not label.strip() or not path.strip():
            raise ValueError(f"model entry {entry!r} is not label=path.pt "
                             "(e.g. distilled=outputs/runs/demo-cwd-det-u/weights/best.pt)")
        models[label.strip()] = user_path(path.strip())
    return models


def dashboard_params(params: DashboardParams) -> DashboardParams:
    """The params of the series the dashboard shows: ``DISTIL_PARAMS`` (the file ``distil dashboard -f`` names), else
    the notebook's own."""
    source = os.environ.get("DISTIL_PARAMS", "").strip()
    return DashboardParams.load(user_path(source)) if source else params


def choose_models(params: DashboardParams) -> dict[str, Path]:
    """``DISTIL_MODELS``, else the notebook's ``models``, else this project's baseline and distilled runs."""
    spec = os.environ.get("DISTIL_MODELS", "").strip() or params.models.strip()
    if spec:
        return parse_models(spec)
    return {"baseline": params.run_dir("auto", baseline=True) / "weights" / "best.pt",
            "distilled": params.run_dir("auto") / "weights" / "best.pt"}


def sniff_format(content: bytes) -> str | None:
    """The image format from the file's first bytes (JPEG, PNG, BMP, WEBP), or None."""
    if content[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if content[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if content[:2] == b"BM":
        return "BMP"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_upload(content: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Bytes of an uploaded file -> BGR image, or an `UploadError` that says what is wrong."""
    if not content:
        raise UploadError(f"{name} is empty (0 bytes)")
    if len(content) > max_bytes:
        raise UploadError(f"{name} is too large ({len(content) / 2 ** 20:.1f} MB, at most {max_bytes / 2 ** 20:.0f} "
                          "MB): choose a smaller image")
    kind = sniff_format(content)
    if kind is None:
        raise UploadError(f"{name} is not an image this app can read (JPEG, PNG, BMP or WebP)")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # the size is checked below, from the header, with a message that says so
        with Image.open(io.BytesIO(content), formats=[kind]) as probe:  # reads the header only
            width, height = probe.size
    except Exception:  # any failure to parse the header means a damaged file
        raise UploadError(f"{name} looks like a {kind} file but is damaged and cannot be read") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if width * height > max_pixels:
        raise UploadError(f"{name} is too large: {width}x{height} ({width * height / 1e6:.0f} MP, at most "
                          f"{max_pixels / 1e6:.0f} MP)")
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UploadError(f"{name} looks like a {kind} file but is damaged and cannot be decoded")
    return image


def sample_choices(data_yaml: Path | None, count: int = 6) -> dict[str, Path]:
    """Images to pick from, by label: the first of the dataset's validation images (Ultralytics' own two photos where
    there is no dataset yet)."""
    images: list[Path] = []
    if data_yaml is not None and data_yaml.exists():
        from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

        try:
            val = check_det_dataset(str(data_yaml)).get("val") or []  # Ultralytics' own reading of the dataset
        except Exception:  # a dataset Ultralytics cannot read offers no samples; the app still runs
            val = []
        for entry in val if isinstance(val, list) else [val]:
            folder = Path(str(entry))
            if folder.is_dir():
                images += sorted(p for p in folder.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    if images:
        return {f"validation: {path.name}": path for path in images[:count]}
    import ultralytics

    return {f"ultralytics: {path.name}": path for path in sorted((Path(ultralytics.__file__).parent / "assets")
                                                                  .glob("*.jpg"))}


@dataclass
class ModelResult:
    """One model's detections on the current image."""

    label: str
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    ms: float = 0.0
    error: str = ""

    @property
    def count(self) -> int:
        return len(self.table)


class LoadedModel:
    """A detector loaded once, with the image size it was trained at."""

    def __init__(self, label: str, path: Path) -> None:
        self.label, self.path = label, path
        self.model = detector(path)
        self.imgsz = int((getattr(self.model, "ckpt", None) or {}).get("train_args", {}).get("imgsz") or 640)

    def detect(self, image: np.ndarray, conf: float, iou: float) -> tuple[ModelResult, np.ndarray]:
        start = time.perf_counter()
        result = self.model.predict(image, imgsz=self.imgsz, conf=conf, iou=iou, verbose=False)[0]
        wall = 1000 * (time.perf_counter() - start)
        boxes = result.boxes
        table = pd.DataFrame({
            "class": [result.names[int(c)] for c in boxes.cls.tolist()],
            "confidence": [round(float(c), 3) for c in boxes.conf.tolist()],
            **{k: [round(float(v), 1) for v in col] for k, col in zip(("x1", "y1", "x2", "y2"), boxes.xyxy.T.tolist())},
        })
        ms = float(result.speed.get("inference", wall)) if result.speed else wall
        return ModelResult(self.label, table, ms), draw_detections(image, result)


def draw_detections(image: np.ndarray, result, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The image at the size it is shown (longest side ``side``), with the detections drawn at that size.

    Drawing on the image's own pixels and then enlarging it would enlarge the labels too: on a 160-px
    image they would cover the objects.
    """
    scale = side / max(image.shape[:2])
    shown = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    annotator = Annotator(shown, line_width=2, font_size=max(10, side // 40))
    for box, cls, conf in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist()):
        label = f"{result.names[int(cls)]} {conf:.2f}"
        annotator.box_label([v * scale for v in box], label, color=colors(int(cls), True))
    return annotator.result()


class Dashboard:
    """The app: image source, enhancement, thresholds, and one result panel per model."""

    def __init__(self, models: dict[str, Path], samples: dict[str, Path] | None = None, teacher: Path | None = None,
                 run_dir: Path | None = None, max_pixels: int = MAX_PIXELS, enhance: Pipeline | None = None) -> None:
        self.model_paths = dict(models)
        self.teacher_path = teacher
        self.max_pixels = max_pixels
        self.samples = samples or {}
        self.loaded: dict[str, LoadedModel] = {}
        self.load_errors: dict[str, str] = {}
        self.image: np.ndarray | None = None
        self.enhanced: np.ndarray | None = None
        self.results: dict[str, ModelResult] = {}

        self.upload = widgets.FileUpload(accept=".jpg,.jpeg,.png,.bmp,.webp", multiple=False, icon="",
                                         description="Upload image")
        self.sample = widgets.Dropdown(options=["(choose a sample)", *self.samples], description="or sample")
        self.controls = EnhancementControls(enhance if enhance is not None else Pipeline.default())
        self.conf = widgets.FloatSlider(value=0.25, min=0.01, max=0.95, step=0.01, description="confidence")
        self.iou = widgets.FloatSlider(value=0.7, min=0.1, max=0.95, step=0.05, description="NMS IoU")
        self.show_teacher = widgets.Checkbox(value=False, description="also run the teacher", indent=False,
                                             disabled=teacher is None)
        self.status = widgets.HTML()
        self.loading = widgets.HTML()
        self.progress = widgets.IntProgress(min=0, max=max(1, len(models)), layout=widgets.Layout(display="none"))
        self.original_view = widgets.Image(format="png", layout=widgets.Layout(width="360px"))
        self.enhanced_view = widgets.Image(format="png", layout=widgets.Layout(width="360px"))
        self.panels = widgets.HBox()
        self.diagram = widgets.Image(format="png")
        self.diagram_note = widgets.HTML()

        self.upload.observe(self.on_upload, names="value")
        self.sample.observe(self.on_sample, names="value")
        self.controls.observe(lambda _pipeline: self.refresh())
        for control in (self.conf, self.iou, self.show_teacher):
            control.observe(lambda _change: self.detect_all(), names="value")
        self.widget = widgets.VBox([
            widgets.HTML("<h2>distil: baseline and distilled detectors side by side</h2>"),
            widgets.HBox([self.upload, self.sample]),
            self.status, widgets.HBox([self.loading, self.progress]),
            widgets.HTML("<b>Enhancement</b>"), self.controls.widget,
            widgets.HBox([self.conf, self.iou, self.show_teacher]),
            widgets.HBox([self.titled("original", self.original_view), self.titled("enhanced", self.enhanced_view)]),
            self.panels,
            widgets.HTML("<b>How the distilled model was trained</b>"), self.diagram_note, self.diagram,
        ])
        self.show_diagram(run_dir)

    @staticmethod
    def titled(title: str, child: widgets.Widget) -> widgets.VBox:
        return widgets.VBox([widgets.HTML(f"<b>{html.escape(title)}</b>"), child])

    # models --------------------------------------------------------------------------------
    def active_models(self) -> dict[str, Path]:
        models = dict(self.model_paths)
        if self.show_teacher.value and self.teacher_path is not None:
            models["teacher"] = self.teacher_path
        return models

    def ensure_loaded(self) -> None:
        """Load models not loaded yet, showing progress; a missing or broken file becomes a message."""
        pending = [(label, path) for label, path in self.active_models().items()
                   if label not in self.loaded and label not in self.load_errors]
        if not pending:
            return
        self.progress.layout.display = ""
        self.progress.max, self.progress.value = len(pending), 0
        for label, path in pending:
            self.loading.value = f"Loading {html.escape(label)} from {html.escape(str(path))} ..."
            if not Path(path).exists():
                self.load_errors[label] = (f"Model file not found: {path}. Train it with 03_distill, or name "
                                           "another file in DISTIL_MODELS (label=path.pt,...).")
            else:
                try:
                    self.loaded[label] = LoadedModel(label, Path(path))
                except Exception as error:  # a damaged or foreign checkpoint must not take the page down
                    self.load_errors[label] = f"Could not load {path}: {type(error).__name__}: {error}"
            self.progress.value += 1
        self.progress.layout.display = "none"
        self.loading.value = ""

    # image sources -------------------------------------------------------------------------
    def on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[0]
        self.set_image_bytes(bytes(upload["content"]), upload.get("name", "upload"))

    def on_sample(self, change) -> None:
        path = self.samples.get(change["new"])
        if path is not None:
            self.set_image_bytes(Path(path).read_bytes(), Path(path).name)

    def set_image_bytes(self, content: bytes, name: str) -> None:
        """Decode and show a new image, then detect; a bad file leaves a message and the app as it was."""
        try:
            image = decode_upload(content, name, self.max_pixels)
        except UploadError as error:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"
            return
        self.image = image
        self.status.value = f"{html.escape(name)}: {image.shape[1]}x{image.shape[0]}"
        self.original_view.value = png_bytes(image)
        self.refresh()

    # processing ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-enhance the current image and detect again."""
        if self.image is None:
            return
        self.enhanced = self.controls.pipeline(self.image)
        self.enhanced_view.value = png_bytes(self.enhanced)
        self.detect_all()

    def detect_all(self) -> None:
        """Run every active model on the enhanced image and rebuild the result panels."""
        if self.enhanced is None:
            return
        self.ensure_loaded()
        panels, self.results = [], {}
        for label in self.active_models():
            if label in self.load_errors:
                self.results[label] = ModelResult(label, error=self.load_errors[label])
                panels.append(self.panel(self.results[label], None))
                continue
            result, drawn = self.loaded[label].detect(self.enhanced, self.conf.value, self.iou.value)
            self.results[label] = result
            panels.append(self.panel(result, drawn))
        self.panels.children = panels

    def panel(self, result: ModelResult, drawn: np.ndarray | None) -> widgets.VBox:
        """One model's column: drawn detections, count and time, and the table."""
        title = widgets.HTML(f"<h3>{html.escape(result.label)}</h3>")
        if result.error:
            return widgets.VBox([title, widgets.HTML(f"<p class='model-error' style='color:#b00'>"
                                                     f"{html.escape(result.error)}</p>")])
        summary = widgets.HTML(f"<p class='detection-summary'>{result.count} objects, {result.ms:.1f} ms "
                               "inference</p>")
        table = result.table.to_html(index=False, classes="detections", border=0) if result.count else \
            "<p class='detections'>no detections above the confidence threshold</p>"
        return widgets.VBox([title, widgets.Image(value=png_bytes(drawn), format="png"), summary,
                             widgets.HTML(table)], layout=widgets.Layout(margin="0 12px 0 0"))

    def show_diagram(self, run_dir: Path | None) -> None:
        """The distillation diagram from the distilled run's own record, when there is one."""
        record = Path(run_dir) / "distill.json" if run_dir else None
        if record is None or not record.exists():
            self.diagram_note.value = "No distillation record (distill.json) beside the distilled model."
            self.diagram.layout.display = "none"
            return
        buffer = io.BytesIO()
        distillation_diagram(json.loads(record.read_text())).savefig(buffer, format="png", dpi=90,
                                                                     bbox_inches="tight")
        self.diagram.value = buffer.getvalue()


def build_dashboard(params: DashboardParams) -> Dashboard:
    """The dashboard of a series (`dashboard_params`): its models (`choose_models`), its validation images as samples,
    its teacher when it has one, the enhancement and diagram of its distilled run."""
    params = dashboard_params(params)
    chosen = choose_models(params)
    distilled = next((p for label, p in chosen.items() if "distil" in label), list(chosen.values())[-1])
    run_dir = distilled.parent.parent if distilled.parent.name == "weights" else None
    data_yaml = params.demo_data_dir() / "data.yaml" if params.data == "demo" else user_path(params.data)
    teacher = params.teacher_path if params.teacher not in ("none", "") and params.teacher_path.exists() else None
    return Dashboard(chosen, sample_choices(data_yaml), teacher, run_dir, enhance=trained_enhancement(run_dir, params))


def trained_enhancement(run_dir: Path | None, params: DashboardParams) -> Pipeline:
    """The enhancement the distilled run trained with (its ``args.yaml``), else the params': the models are compared
    on images like the ones they learned from."""
    args = run_dir / "args.yaml" if run_dir else None
    if args is not None and args.exists():
        import yaml

        spec = (yaml.safe_load(args.read_text()) or {}).get("enhance") or "none"
    else:
        spec = params.enhance
    try:
        return Pipeline.from_spec(spec)
    except (FileNotFoundError, ValueError):
        return Pipeline()
