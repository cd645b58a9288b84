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
COMMANDS = ("pipeline", "train", "predict", "evaluate", "run", "bag", "demo", "attention", "calibrate_gaze")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-perception",
        description="Facial emotion and attention perception for robots (ROS 2).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
