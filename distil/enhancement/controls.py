"""ipywidgets controls for the enhancement pipeline: a toggle and the main settings of each step.

Used by ``01_preprocessing`` (live tuning on one image) and by the dashboard. The controls turn
into a `distil.preprocess.Pipeline` (in canonical order) whenever they change.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import ipywidgets as widgets
import numpy as np

from distil.enhancement.pipeline import STEP_ORDER, Pipeline

# step -> {setting: widget factory taking the current value (None: the step's default)}
SETTINGS: dict[str, dict[str, Callable[[object], widgets.Widget]]] = {
    "white_balance": {"method": lambda v: widgets.Dropdown(options=["gray_world", "white_patch"],
                                                           value=v or "gray_world", description="method")},
    "denoise": {"strength": lambda v: widgets.FloatSlider(value=v or 40.0, min=5, max=120, step=5,
                                                          description="strength")},
    "auto_contrast": {"clip": lambda v: widgets.FloatSlider(value=v or 1.0, min=0, max=5, step=0.25,
                                                            description="clip %")},
    "gamma": {"gamma": lambda v: widgets.FloatSlider(value=1.0 if v in (None, "auto") else float(v), min=0.3,
                                                     max=3.0, step=0.05, description="gamma")},
    "clahe": {"clip_limit": lambda v: widgets.FloatSlider(value=v or 2.0, min=0.5, max=8, step=0.25,
                                                          description="clip limit"),
              "tile_grid": lambda v: widgets.IntSlider(value=v or 8, min=2, max=16, description="tiles")},
    "sharpen": {"amount": lambda v: widgets.FloatSlider(value=v or 0.8, min=0, max=3, step=0.1,
                                                        description="amount")},
}


class EnhancementControls:
    """One row per step: an on/off toggle and its settings (gamma also has 'auto')."""

    def __init__(self, initial: Pipeline | None = None) -> None:
        chosen = (initial if initial is not None else Pipeline.default()).as_dict()
        self.toggles: dict[str, widgets.ToggleButton] = {}
        self.settings: dict[str, dict[str, widgets.Widget]] = {}
        rows = []
        for step in STEP_ORDER:
            current = chosen.get(step, {})
            self.toggles[step] = widgets.ToggleButton(value=step in chosen, description=step.replace("_", " "),
                                                      layout=widgets.Layout(width="130px"))
            self.settings[step] = {name: make(current.get(name)) for name, make in SETTINGS[step].items()}
            row = [self.toggles[step], *self.settings[step].values()]
            if step == "gamma":
                self.auto_gamma = widgets.Checkbox(value=current.get("gamma", "auto") == "auto", description="auto",
                                                   indent=False, layout=widgets.Layout(width="70px"))
                row.insert(1, self.auto_gamma)
            rows.append(widgets.HBox(row))
        self.widget = widgets.VBox(rows)

    def all_widgets(self) -> list[widgets.Widget]:
        return [*self.toggles.values(), self.auto_gamma, *(w for s in self.settings.values() for w in s.values())]

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline the controls describe."""
        steps = {}
        for step in STEP_ORDER:
            if self.toggles[step].value:
                values = {name: w.value for name, w in self.settings[step].items()}
                if step == "gamma" and self.auto_gamma.value:
                    values["gamma"] = "auto"
                steps[step] = values
        return Pipeline.from_dict(steps, canonical_order=True)

    def observe(self, callback: Callable[[Pipeline], None]) -> None:
        """Call ``callback(pipeline)`` whenever any control changes."""
        for w in self.all_widgets():
            w.observe(lambda _change: callback(self.pipeline), names="value")


def png_bytes(image_bgr: np.ndarray, max_side: int = 480) -> bytes:
    """A BGR image as PNG bytes, downsized for display only."""
    scale = max_side / max(image_bgr.shape[:2])
    if scale < 1:
        image_bgr = cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", image_bgr)
    return encoded.tobytes()


def pipeline_explorer(image_bgr: np.ndarray, initial: Pipeline | None = None) -> widgets.Widget:
    """Original and enhanced image side by side, the enhanced one redrawn as the controls move."""
    controls = EnhancementControls(initial)
    original = widgets.Image(value=png_bytes(image_bgr), format="png")
    enhanced = widgets.Image(value=png_bytes(controls.pipeline(image_bgr)), format="png")
    description = widgets.HTML(f"<pre>{controls.pipeline.describe()}</pre>")

    def redraw(pipeline: Pipeline) -> None:
        enhanced.value = png_bytes(pipeline(image_bgr))
        description.value = f"<pre>{pipeline.describe()}</pre>"

    controls.observe(redraw)
    return widgets.VBox([controls.widget, widgets.HBox([original, enhanced]), description])
