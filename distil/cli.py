"""The ``distil`` command: one entry point, a subcommand per job; ``distil <command> --help`` says more.

Every subcommand takes the same params as the notebooks: a params file (``-f``) and flat overrides
(``-p key value``, read as papermill reads them). A problem with what was given is said in one line, last,
without a traceback (``--verbose`` shows it); Ctrl-C says how to go on.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from distil.paths import project_root, resolve_path


def with_params(parser: argparse.ArgumentParser, required: bool = True) -> argparse.ArgumentParser:
    parser.add_argument("-f", "--params", required=required, help="params YAML (e.g. params/demo.yaml)")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="a flat key and its value, as papermill -p takes it (repeatable)")
    return parser


def overrides(args: argparse.Namespace) -> dict:
    from distil.run_notebook import parse_value

    return {key: parse_value(value) for key, value in args.param}


# --- subcommands ----------------------------------------------------------------------------------------------
def run_notebook(args: argparse.Namespace) -> int:
    from distil.run_notebook import main

    argv = [args.notebook, *([args.output] if args.output else []), *(["-f", args.params] if args.params else [])]
    for key, value in args.param:
        argv += ["-p", key, value]
    return main(argv + (["--verbose"] if args.verbose else []))


def train(args: argparse.Namespace) -> int:
    import distil

    print(f"run: {distil.train(resolve_path(args.params), **overrides(args))}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from distil.series import run_series

    return run_series(resolve_path(args.params), overrides(args),
                      resolve_path(args.baseline) if args.baseline else None, verbose=args.verbose)


def teacher(args: argparse.Namespace) -> int:
    import json

    from distil import TeacherParams, teacher_training

    params = TeacherParams.load(resolve_path(args.params), **overrides(args))
    if args.action == "ship":
        destination = args.destination or f"assets/{params.name}-teacher.pt"
        print(f"shipped {teacher_training.ship(params, destination)}")
        return 0
    job = teacher_training.prepare_teacher if args.action == "train" else teacher_training.refine
    print(json.dumps(job(params).as_dict(), indent=2))
    return 0


def ship_run(args: argparse.Namespace) -> int:
    from distil import DistillParams
    from distil.shipped_runs import ship_run as ship

    params = DistillParams.load(resolve_path(args.params), **{"run_cache": "", **overrides(args)})
    run_dir = params.runs_dir / params.run_name
    destination = resolve_path(args.destination or f"assets/{run_dir.name}")
    print(f"shipped {ship(run_dir, destination)}")
    return 0


def report(args: argparse.Namespace) -> int:
    from distil.report import main

    return main(resolve_path(args.params))


def study(args: argparse.Namespace) -> int:
    import runpy

    script = project_root() / "benchmarks" / "kd_study.py"
    if not script.exists():
        raise FileNotFoundError(f"the study lives in a checkout of distil ({script} is not here)")
    sys.argv = [str(script), *args.rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def dashboard(args: argparse.Namespace) -> int:
    import subprocess

    from distil.dashboard_server import voila_command, voila_environment

    command = voila_command(args.port, args.cull_idle_timeout, args.cull_interval, args.max_kernels)
    print(f"Dashboard at http://127.0.0.1:{args.port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(command, env=voila_environment(args.models or "", args.params or ""))


def label(args: argparse.Namespace) -> int:
    import distil

    store = distil.label(args.teacher, args.images, args.out, imgsz=args.imgsz, conf=args.conf, workers=args.workers,
                         devices=args.devices, ray_address=args.ray_address, batch=args.batch,
                         shard_size=args.shard_size, half=args.half)
    summary = store.summary()
    print(f"labels: {store.folder} ({summary['images']} images, {summary['boxes']} boxes from score "
          f"{summary['conf']}); train on them with distill_det_mode: offline, distill_det_labels: {store.folder}")
    return 0


def parser() -> argparse.ArgumentParser:
    from distil.dashboard_server import CULL_IDLE_S, CULL_INTERVAL_S, MAX_KERNELS

    main = argparse.ArgumentParser(prog="distil", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--verbose", action="store_true", help="on an error, show the whole traceback")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    one = with_params(commands.add_parser("run", help="run one notebook of the series with papermill"), False)
    one.add_argument("notebook", help="e.g. 03_distill")
    one.add_argument("output", nargs="?", help="the executed notebook (default: outputs/notebooks/<name>/...)")
    one.set_defaults(run=run_notebook)

    with_params(commands.add_parser("train", help="train one run (distilled, or with teacher: none the baseline)"))\
        .set_defaults(run=train)

    series = with_params(commands.add_parser("demo", help="the whole series: teacher, preprocessing, features, "
                                             "baseline and distilled student, evaluation, the table"))
    series.add_argument("--baseline", help="the baseline's params (default: <params>-baseline.yaml beside them)")
    series.set_defaults(run=demo)

    stage = with_params(commands.add_parser("teacher", help="make the teacher (train), train the stages its params "
                                            "add to it (refine), or ship it to assets/ with its record"))
    stage.add_argument("action", choices=["train", "refine", "ship"])
    stage.add_argument("destination", nargs="?", help="ship: where to (default assets/<name>-teacher.pt)")
    stage.set_defaults(run=teacher)

    shipping = with_params(commands.add_parser("ship-run", help="ship a finished run of these params to assets/ "
                                               "(best.pt and records, portable), from where run_cache copies it"))
    shipping.add_argument("destination", nargs="?", help="default assets/<run name>")
    shipping.set_defaults(run=ship_run)

    with_params(commands.add_parser("report", help="print the comparison table a finished series made"))\
        .set_defaults(run=report)

    studying = commands.add_parser("study", help="the study (benchmarks/kd_study.py; its --help says more)",
                                   add_help=False)
    studying.add_argument("rest", nargs=argparse.REMAINDER)
    studying.set_defaults(run=study)

    serving = commands.add_parser("dashboard", help="serve the dashboard (Voila, on 127.0.0.1)")
    serving.add_argument("-f", "--params", help="the series it shows (its runs, teacher, data, enhancement)")
    serving.add_argument("--models", help="label=path.pt pairs, comma-separated; relative paths from here")
    serving.add_argument("--port", type=int, default=8866)
    serving.add_argument("--cull-idle-timeout", type=int, default=CULL_IDLE_S, help="seconds a page's kernel may "
                         "stay idle with no page connected before it is ended")
    serving.add_argument("--cull-interval", type=int, default=CULL_INTERVAL_S, help="how often kernels are checked")
    serving.add_argument("--max-kernels", type=int, default=MAX_KERNELS, help="pages open at once")
    serving.set_defaults(run=dashboard)

    labeling = commands.add_parser("label", help="the teacher labels images once (resumable; workers, GPUs or Ray)",
                                   description="Run a teacher over images once and store its scored boxes and class "
                                               "scores in OUT (shards written whole: run it again to finish a "
                                               "stopped job). Training reads them with distill_det_mode: offline "
                                               "and distill_det_labels: OUT.")
    labeling.add_argument("teacher", help="teacher checkpoint (.pt): RT-DETR or YOLO")
    labeling.add_argument("images", help="a folder of images, a .txt list of paths, or a glob pattern (quoted)")
    labeling.add_argument("out", help="the label folder to write (or finish)")
    labeling.add_argument("--imgsz", type=int, default=640, help="the size the teacher reads images at")
    labeling.add_argument("--conf", type=float, default=0.25, help="keep boxes from this score up (training may "
                          "keep a higher threshold, not a lower one)")
    labeling.add_argument("--workers", type=int, default=1, help="CPU worker processes (no GPU), or Ray actors")
    labeling.add_argument("--devices", help="GPUs, one worker each, e.g. 0,1,2,3 (default: every visible GPU)")
    labeling.add_argument("--ray-address", help="run on this Ray cluster ('auto' or host:port), not this machine")
    labeling.add_argument("--batch", type=int, default=16, help="images per teacher pass")
    labeling.add_argument("--shard-size", type=int, default=256, help="images per shard (the unit of work and "
                          "resume)")
    labeling.add_argument("--half", action="store_true", help="fp16 on a GPU (bf16 on a CPU with bf16 units)")
    labeling.set_defaults(run=label)
    return main


def input_error(error: BaseException) -> bool:
    """Whether an error says what was wrong with what the user gave (said in one line) rather than a fault."""
    from distil.run_notebook import INPUT_ERRORS

    return type(error).__name__ in INPUT_ERRORS or isinstance(error, (FileNotFoundError, FileExistsError))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("\nstopped (Ctrl-C). A training keeps what it finished: run the same command with -p resume true to "
              "go on from its last epoch.", file=sys.stderr)
        return 130
    except Exception as error:
        if args.verbose or not input_error(error):
            traceback.print_exc()
        print(f"distil {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

