"""Capture intermediate feature maps of Ultralytics models by layer index.

Ultralytics models are a flat ``model.model`` list of layers, each with an index ``i`` and the
indices ``f`` it reads from, so "layer 21" names the same place in the YAML, the printed model
summary and here. `FeatureTap` puts forward hooks on chosen layers; `forward_until` runs a model
only as far as the deepest layer needed (the teacher's decoder is never run for feature
distillation); `layer_table` lists every layer that yields a feature map, with its shape and stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.nn.distill_model import FeatureHook  # stores a layer's output in a shared dict; picklable

CaptureHook = FeatureHook  # the name checkpoints of earlier versions pickled their hooks under


class FeatureTap:
    """Forward hooks on ``model.model[i]`` for each chosen index ``i``.

    The tap does not hold the model (a wrapper that drops its teacher, like Ultralytics' EMA does,
    must really free it); `attach` is given the model. Captured tensors live only until `take`,
    which hands them over and forgets them, so no activation outlives its training step.

    Example:
        >>> tap = FeatureTap([15, 18, 21]).attach(model)
        >>> model(images)
        >>> p3, p4, p5 = tap.take()
        >>> tap.remove()
    """

    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)
        self.features: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def attach(self, model: nn.Module) -> FeatureTap:
        """Hook the chosen layers of ``model``, replacing stale hooks of ours (left by a deep copy)."""
        self.remove()
        for index in self.indices:
            layer = model.model[index]
            for handle_id, hook in list(layer._forward_hooks.items()):
                if isinstance(hook, FeatureHook):
                    del layer._forward_hooks[handle_id]
            self._handles.append(layer.register_forward_hook(FeatureHook(self.features, index)))
        return self

    def remove(self) -> None:
        """Remove the hooks and forget captured tensors."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()

    def take(self) -> list[torch.Tensor]:
        """Return the captured maps in index order and forget them.

        Raises:
            RuntimeError: A chosen layer did not run since the last `take`.
        """
        missing = [i for i in self.indices if i not in self.features]
        if missing:
            raise RuntimeError(f"FeatureTap: layers {missing} produced no output in the last forward pass")
        maps = [self.features[i] for i in self.indices]
        self.features.clear()
        return maps

    def __getstate__(self) -> dict:
        """Pickle without hook handles or tensors; the owner re-attaches after unpickling."""
        self.features.clear()  # in place: the registered hooks share this dict
        return {"indices": self.indices, "features": {}, "_handles": []}

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def forward_layers(model: nn.Module, x: torch.Tensor, last_index: int) -> tuple[torch.Tensor, list]:
    """Run an Ultralytics model layer by layer up to layer ``last_index``: its output, and every output a later
    layer reads (``model.save``), by index.

    Mirrors ``BaseModel._predict_once`` (routing by each layer's ``f``), so hooks fire exactly as in a full forward.
    """
    outputs: list[torch.Tensor | None] = []
    for layer in model.model[: last_index + 1]:
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
        x = layer(x)
        outputs.append(x if layer.i in model.save or layer.i == last_index else None)
    return x, outputs


def forward_until(model: nn.Module, x: torch.Tensor, last_index: int) -> torch.Tensor:
    """Run an Ultralytics model only as far as layer ``last_index``: layers past it (for a teacher: the rest of its
    neck and its decoder) are never computed."""
    return forward_layers(model, x, last_index)[0]


def forward_with_head_in_fp32(model: nn.Module, x: torch.Tensor, autocast: torch.autocast):
    """A full forward with every layer before the head under ``autocast`` and the head in fp32, on fp32 inputs.

    Why: RT-DETR's decoder under CPU bf16 autocast ran 3.5 times slower than in fp32 (its attention, layer norms
    and sampling are cast back and forth at every op), while its backbone and encoder ran 1.8 times faster.
    """
    with autocast:
        last, outputs = forward_layers(model, x, len(model.model) - 2)
    head = model.model[-1]
    sources = head.f if isinstance(head.f, (list, tuple)) else [head.f]
    return head([(last if j == -1 else outputs[j]).float() for j in sources])


def head_inputs(model: nn.Module) -> list[int]:
    """Indices of the layers that feed the model's head (Detect, RTDETRDecoder, ...)."""
    head = model.model[-1]
    sources = head.f if isinstance(head.f, (list, tuple)) else [head.f]
    return [len(model.model) - 1 + j if j < 0 else j for j in sources]


@dataclass(frozen=True)
class LayerInfo:
    """One layer that yields a feature map: index, module type, output shape (C, H, W) and stride."""

    index: int
    module: str
    channels: int
    height: int
    width: int
    stride: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width

    def describe(self) -> str:
        shape = f"{self.channels}x{self.height}x{self.width}"
        return f"{self.index:>3}  {self.module:<14} {shape:<13} stride {self.stride}"


@torch.no_grad()
def layer_table(model: nn.Module, imgsz: int = 640) -> list[LayerInfo]:
    """Every layer before the head whose output is a 4-D map, measured by one forward pass.

    The model runs in eval mode (so no BatchNorm statistic moves) and is put back in the mode
    it was in.
    """
    indices = list(range(len(model.model) - 1))
    was_training = model.training
    parameter = next(model.parameters())
    x = torch.zeros(1, 3, imgsz, imgsz, device=parameter.device, dtype=parameter.dtype)
    tap = FeatureTap(indices).attach(model)
    try:
        model.eval()
        forward_until(model, x, indices[-1])
        outputs = dict(tap.features)
    finally:
        tap.remove()
        model.train(was_training)
    table = []
    for index in indices:
        out = outputs.get(index)
        if isinstance(out, torch.Tensor) and out.ndim == 4:
            _, c, h, w = out.shape
            table.append(LayerInfo(index, type(model.model[index]).__name__, c, h, w, imgsz // h))
    return table
