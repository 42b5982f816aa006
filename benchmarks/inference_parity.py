"""Distillation costs nothing at inference: same parameters, same time, PyTorch and ONNX.

Loads the baseline and the distilled student, checks they have the same parameter count, and
times them side by side (interleaved, median of repeated batch-1 forward passes after warm-up),
in PyTorch and, after an Ultralytics ONNX export, in onnxruntime. Prints the ratios
(distilled / baseline; 1.00 means no cost) and the PyTorch-ONNX detection parity of the
distilled model on validation images.

    python benchmarks/inference_parity.py                     # the demo's runs
    python benchmarks/inference_parity.py --baseline a.pt --distilled b.pt --imgsz 640 --data coco.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from ultralytics import YOLO

import distil  # noqa: F401  (offline Ultralytics)
from distil.data import load_images
from distil.eval.deploy import compare_detections, export_onnx
from distil.eval.timing import interleaved_medians
from distil.manifest import write_json
from distil.params import EvalParams
from distil.paths import resolve_path


def milliseconds(functions: dict, reps: int) -> dict[str, float]:
    return {label: 1000 * seconds for label, seconds in interleaved_medians(functions, reps).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params/demo.yaml", help="whose baseline and distilled runs (default)")
    parser.add_argument("--baseline", help="baseline checkpoint (default: the params' baseline run)")
    parser.add_argument("--distilled", help="distilled checkpoint (default: the params' distilled run)")
    parser.add_argument("--data", default="", help="data.yaml for the detection parity (default: the run's)")
    parser.add_argument("--imgsz", type=int, default=0, help="default: the size the distilled run trained at")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="outputs/bench/inference_parity.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = EvalParams.load(args.params).models() if not (args.baseline and args.distilled) else {}
    paths = {label: resolve_path(given) if given else runs[label]
             for label, given in (("baseline", args.baseline), ("distilled", args.distilled))}
    for label, path in paths.items():
        if not path.exists():
            raise SystemExit(f"{label} checkpoint {path} not found: train it first (make demo) or pass --{label}")
    wrappers = {label: YOLO(str(path)) for label, path in paths.items()}
    train_args = wrappers["distilled"].ckpt.get("train_args", {})
    imgsz = args.imgsz or int(train_args.get("imgsz", 640))
    params = {label: sum(p.numel() for p in w.model.parameters()) for label, w in wrappers.items()}

    x = torch.rand(1, 3, imgsz, imgsz)
    nets = {label: w.model.float().fuse(verbose=False).eval() for label, w in wrappers.items()}
    with torch.inference_mode():
        torch_ms = milliseconds({label: (lambda n=n: n(x)) for label, n in nets.items()}, args.reps)

    onnx_paths = {label: export_onnx(path, imgsz) for label, path in paths.items()}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {label: onnxruntime.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for label, p in onnx_paths.items()}
    feed = x.numpy().astype(np.float32)
    onnx_ms = milliseconds({label: (lambda s=s: s.run(None, {s.get_inputs()[0].name: feed}))
                                   for label, s in sessions.items()}, args.reps)

    data = resolve_path(args.data) if args.data else Path(train_args["data"])
    images = load_images(data, 20)
    parity = compare_detections(YOLO(str(paths["distilled"])), YOLO(str(onnx_paths["distilled"])), images, imgsz)

    row = {"imgsz": imgsz, "threads": args.threads, "reps": args.reps, "params": params,
           "torch_ms": {k: round(v, 3) for k, v in torch_ms.items()},
           "onnx_ms": {k: round(v, 3) for k, v in onnx_ms.items()},
           "torch_ratio": round(torch_ms["distilled"] / torch_ms["baseline"], 3),
           "onnx_ratio": round(onnx_ms["distilled"] / onnx_ms["baseline"], 3),
           "parity": vars(parity)}
    print(f"parameters: baseline {params['baseline']:,}  distilled {params['distilled']:,}  "
          f"({'identical' if params['baseline'] == params['distilled'] else 'DIFFERENT'})")
    print(f"PyTorch  @ {imgsz}, batch 1, {args.threads} threads: baseline {torch_ms['baseline']:.2f} ms, distilled "
          f"{torch_ms['distilled']:.2f} ms -> ratio {row['torch_ratio']:.3f}")
    print(f"ONNX Runtime: baseline {onnx_ms['baseline']:.2f} ms, distilled {onnx_ms['distilled']:.2f} ms -> ratio "
          f"{row['onnx_ratio']:.3f}")
    print(f"PyTorch vs ONNX detections of the distilled model on {parity.images} images: {parity.matched} matched, "
          f"{parity.unmatched} unmatched, max box difference {parity.max_box_px:.4f} px, max score difference "
          f"{parity.max_score:.2e}")
    print(f"written {write_json(args.out, row)}")


if __name__ == "__main__":
    main()
