"""``emotion-perception pipeline``: the package's nodes in one process.

The pip-only equivalent of ``ros2 launch emotion_perception pipeline.launch.py``:
same nodes, same parameter file, same remappings, real middleware.
"""

from __future__ import annotations

import argparse
import signal
import threading


def register(sub: argparse._SubParsersAction) -> None:
    from ..nodes import NODES

    p = sub.add_parser("pipeline", help="run the chosen nodes in one process (like the launch file)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", default=",".join(NODES),
                   help=f"comma-separated nodes to start (default: all of {','.join(NODES)})")
    p.add_argument("--params-file", default=None, help="parameter YAML keyed by node name "
                   "(default: the package's config/params.yaml)")
    p.add_argument("-r", "--remap", action="append", default=[], metavar="FROM:=TO",
                   help="topic remapping for every node, e.g. image:=/camera/image_raw (repeatable)")
    p.add_argument("--namespace", default=None, help="namespace of every node")
    p.add_argument("--log-level", default=None, help="ROS log level (debug, info, warn, error)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runner import Pipeline

    names = [n.strip() for n in args.nodes.split(",") if n.strip()]
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Pipeline(names, params_file=args.params_file, remaps=args.remap, namespace=args.namespace,
                  log_level=args.log_level):
        stop.wait(args.duration)
    return 0
