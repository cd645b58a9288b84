"""``emotion-perception``: every tool of the package behind one command.

Each subcommand lives in its own module of this package with a
``register(subparsers)`` function; modules import their heavy dependencies
(MediaPipe, TensorFlow, rclpy) only when their command runs, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("pipeline", "train", "predict", "evaluate", "evaluate_video", "run", "bag", "demo", "attention", "calibrate_gaze")
#: Subcommands that run the nodes in this process (bag: ``bag evaluate``; evaluate-video).
RUN_NODES = ("pipeline", "run", "demo", "bag", "evaluate-video")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-perception",
        description="Facial emotion and attention perception for robots (ROS 2).")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    _add_verbose(parser)
    return parser


VERBOSE_HELP = ("show MediaPipe's and TensorFlow Lite's own log lines (hidden by default; "
                "also EMOTION_PERCEPTION_VERBOSE=1)")


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` on every subcommand too (``emotion-perception demo --verbose``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                if "--verbose" not in p._option_string_actions:
                    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
                _add_verbose(p)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. From the command line (``argv`` None), MediaPipe's and
    TensorFlow Lite's native log lines are kept off stderr unless ``--verbose``
    (:mod:`emotion_perception.quiet`), and a subcommand that runs the nodes dedicates
    the process to them (:func:`emotion_perception.runner.dedicate_process`: BLAS/OpenMP
    pools capped at one thread, as in a node's own process); called with an ``argv``
    list (a test, a script) it leaves the calling process's stderr and thread pools alone."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:
        from ..quiet import install

        install(verbose=getattr(args, "verbose", False))
    if argv is None and args.command in RUN_NODES:
        from ..runner import dedicate_process

        dedicate_process()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
