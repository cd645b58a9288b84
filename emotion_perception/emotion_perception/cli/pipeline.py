"""``emotion-perception pipeline``: the package's nodes in one process.

The pip-only equivalent of ``ros2 launch emotion_perception pipeline.launch.py``:
the node list, remappings and parameters come from the same description
(:func:`emotion_perception.launch_description.describe`), on the real middleware.
"""

from __future__ import annotations

import argparse
import signal
import threading

from .args import positive_float


def add_description_arguments(p: argparse.ArgumentParser, image_topic: bool = True) -> None:
    """The launch file's arguments, as options (shared by pipeline, run, bag evaluate)."""
    from ..launch_description import CLASSIFIER_ARGS

    if image_topic:
        p.add_argument("--image-topic", default="image",
                       help="camera image topic (default: image); with --compressed, <topic>/compressed is read")
        p.add_argument("--compressed", action="store_true", help="read sensor_msgs/CompressedImage")
    p.add_argument("--params-file", default=None, type=params_file_arg, help="parameter YAML keyed by node name "
                   "(default: the package's config/params.yaml)")
    p.add_argument("--namespace", default="", help="namespace of every node")
    for short, arg in CLASSIFIER_ARGS.items():
        p.add_argument(f"--no-{arg.replace('_', '-')}", dest=f"enable_{short}", action="store_false",
                       help=f"do not start {short}_node")


def params_file_arg(text: str) -> str:
    """argparse type of ``--params-file``: a usable ROS 2 parameter file, else one error line."""
    from ..launch_description import check_params_file

    try:
        return check_params_file(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def enabled_from_args(args: argparse.Namespace) -> dict:
    from ..launch_description import CLASSIFIER_ARGS

    return {s: getattr(args, f"enable_{s}", True) for s in CLASSIFIER_ARGS}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run the nodes in one process (like the launch file)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_description_arguments(p)
    p.add_argument("--available-only", action="store_true",
                   help="leave out nodes that are not installed instead of failing")
    p.add_argument("--log-level", default=None, help="ROS log level (debug, info, warn, error)")
    p.add_argument("--duration", type=positive_float, default=None, help="stop after this many seconds")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print the nodes, remappings and parameters and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..launch_description import describe, node_available

    desc = describe(image_topic=args.image_topic, compressed=args.compressed, namespace=args.namespace,
                    params_file=args.params_file, enabled=enabled_from_args(args),
                    available_only=args.available_only)
    if args.print_only:
        print(f"params_file: {desc.params_file}")
        print(f"namespace: {desc.namespace or '/'}")
        for k, v in desc.environment.items():
            print(f"env: {k}={v}")
        for n in desc.nodes:
            print(f"{n.name}: remappings {list(n.remappings)} overrides {dict(n.overrides)}")
        return 0
    for note in desc.notes:
        print(f"emotion-perception pipeline: {note}", file=sys.stderr)
    missing = [n.short for n in desc.nodes if not node_available(n.short)]
    if missing:
        print(f"emotion-perception pipeline: not installed: {', '.join(missing)} "
              "(switch them off or use --available-only)", file=sys.stderr)
        return 2

    from ..runner import Pipeline

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Pipeline(desc.short_names, params_file=desc.params_file, remaps=desc.remap_args(),
                  namespace=desc.namespace or None, parameter_overrides=desc.parameter_overrides(),
                  log_level=args.log_level):
        stop.wait(args.duration)
    # A terminal's Ctrl-C reaches this process twice under ros2 launch (the process group,
    # then launch); once the interpreter finalises, Python's default handler is back and
    # a late second SIGINT would kill it (exit -2 instead of "finished cleanly").
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return 0
