"""The ``distil`` command: one entry point, a subcommand per job (``distil <command> --help`` says more).

    distil label TEACHER IMAGES OUT [--imgsz 640] [--conf 0.25] [--workers N | --devices 0,1] [--ray-address auto]
"""

from __future__ import annotations

import argparse
import sys


def add_label(commands) -> None:
    parser = commands.add_parser("label", help="the teacher labels images once (resumable; workers, GPUs or Ray)",
                                 description="Run a teacher over images once and store its scored boxes and class "
                                             "scores in OUT (shards written whole: run it again to finish a stopped "
                                             "job). Training reads them with distill_det_mode: offline and "
                                             "distill_det_labels: OUT.")
    parser.add_argument("teacher", help="teacher checkpoint (.pt): RT-DETR or YOLO")
    parser.add_argument("images", help="a folder of images, a .txt list of paths, or a glob pattern (quoted)")
    parser.add_argument("out", help="the label folder to write (or finish)")
    parser.add_argument("--imgsz", type=int, default=640, help="the size the teacher reads images at")
    parser.add_argument("--conf", type=float, default=0.25, help="keep boxes from this score up (training may keep "
                        "a higher threshold, not a lower one)")
    parser.add_argument("--workers", type=int, default=1, help="CPU worker processes (no GPU), or Ray actors")
    parser.add_argument("--devices", help="GPUs, one worker each, e.g. 0,1,2,3 (default: every visible GPU)")
    parser.add_argument("--ray-address", help="run on this Ray cluster ('auto' or host:port) instead of this machine")
    parser.add_argument("--batch", type=int, default=16, help="images per teacher pass")
    parser.add_argument("--shard-size", type=int, default=256, help="images per shard (the unit of work and resume)")
    parser.add_argument("--half", action="store_true", help="fp16 on a GPU (bf16 on a CPU with bf16 units)")
    parser.set_defaults(run=run_label)


def run_label(args: argparse.Namespace) -> int:
    import distil

    store = distil.label(args.teacher, args.images, args.out, imgsz=args.imgsz, conf=args.conf, workers=args.workers,
                         devices=args.devices, ray_address=args.ray_address, batch=args.batch,
                         shard_size=args.shard_size, half=args.half)
    summary = store.summary()
    print(f"labels: {store.folder} ({summary['images']} images, {summary['boxes']} boxes from score "
          f"{summary['conf']}); train on them with distill_det_mode: offline, distill_det_labels: {store.folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="distil", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_label(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
