"""argparse types for the command line's numbers: a value out of range is one usage
error naming the option, before anything starts (not a run that silently does nothing,
or runs backwards in time)."""

from __future__ import annotations

import argparse


def _number(kind, text: str, ok, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v > 0, "a positive integer")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0 and v != float("inf"), "a positive number")


def non_negative_float(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v < float("inf"), "zero or a positive number")


def field_of_view_deg(text: str) -> float:
    return _number(float, text, lambda v: 0 < v < 180, "a field of view in degrees (between 0 and 180)")
