"""Node parameters: a declaration with its description and range (:class:`Param`),
declared with descriptors and validated at start and at every later set
(:func:`declare_parameters`)."""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node


@dataclasses.dataclass(frozen=True)
class Param:
    """A node parameter with its description and accepted range.

    ``low``/``high`` bound numbers (inclusive); ``choices`` bounds strings.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
            elif isinstance(self.default, float):
                d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high),
                                                             step=0.0)]
        return d

    def expected(self) -> str:
        """What the parameter takes, in words: type name and range ("a floating-point
        number in [0.0, 1.0] (integers accepted)")."""
        if isinstance(self.default, bool):
            return "a bool (true or false)"
        if isinstance(self.default, str):
            return "a string" + (f", one of: {', '.join(self.choices)}" if self.choices else "")
        kind = "an integer" if isinstance(self.default, int) else "a floating-point number"
        if self.low is not None and self.high is not None:
            kind += f" in the range [{self._fmt(self.low)}, {self._fmt(self.high)}]"
        elif self.low is not None:
            kind += f" >= {self._fmt(self.low)}"
        elif self.high is not None:
            kind += f" <= {self._fmt(self.high)}"
        return kind + (" (integers accepted)" if isinstance(self.default, float) else "")

    def _fmt(self, bound: float) -> str:
        return str(int(bound)) if isinstance(self.default, int) else str(float(bound))

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's type where that loses nothing: an integer for
        a floating-point parameter becomes a float (``ros2 param set ... 1`` for 1.0)."""
        if isinstance(self.default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def check(self, value: Any) -> str | None:
        """None if ``value`` (after :meth:`coerce`) is acceptable, else the reason it is
        not, naming the expected type and range."""
        if isinstance(self.default, bool):
            ok = isinstance(value, bool)
        elif isinstance(self.default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(self.default, float):
            ok = isinstance(value, float) and math.isfinite(value)
        else:
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
        if ok and isinstance(self.default, (int, float)) and not isinstance(self.default, bool):
            ok = not (self.low is not None and value < self.low or self.high is not None and value > self.high)
        if ok:
            return None
        return f"{self.name} expects {self.expected()}, got {_describe_value(value)}"


def _describe_value(value: Any) -> str:
    """A parameter value with its type in words, for refusals."""
    if isinstance(value, bool):
        kind = "the bool"
    elif isinstance(value, int):
        kind = "the integer"
    elif isinstance(value, float):
        kind = "the floating-point number"
    elif isinstance(value, str):
        kind = "the string"
    elif value is None:
        return "no value"
    else:
        kind = "an array"
        value = list(value)
    return f"{kind} {value!r}"


class ParameterError(ValueError):
    """A parameter given at start is of the wrong type or out of range."""


def declare_parameters(node: Node, params: list[Param], on_change: Callable[[dict], None] | None = None,
                       validate: Callable[[dict], str | None] | None = None) -> dict:
    """Declare ``params`` with descriptors, validate start values, guard later sets.

    Every value is validated before it is stored: a value of the wrong type, out of
    range, or refused by ``validate`` (rules between parameters, given every value
    as it would be after the change; returns the reason or None) given at start
    raises :class:`ParameterError` (the node cannot start with it); one set at run
    time (``Node.set_parameters``, ``ros2 param set``) is refused with a reason that
    names the expected type and range, and the node keeps its value. An integer given
    for a floating-point parameter is taken as that number.

    How: descriptors keep their types static (``ros2 param describe`` shows them), so
    a value of the wrong type would otherwise be refused by rclpy before any of our
    callbacks with type codes ("expected '2' got '4'"), and an integer for a double
    refused outright. A pre-set callback therefore converts integers for doubles, and
    replaces a value it finds invalid by the current one, remembering why; the on-set
    callback then refuses the change with that reason. ``on_change`` runs only for
    changes that pass every check.

    Returns:
        name -> value of every parameter.
    """
    from rclpy.parameter import Parameter as RclpyParameter

    by_name = {p.name: p for p in params}
    values = {}
    for p in params:
        try:
            value = node.declare_parameter(p.name, p.default, p.descriptor()).value
        except Exception as e:  # rclpy raises several types for a bad override
            raise ParameterError(f"{node.get_name()}: parameter {p.name}: {e}; it expects {p.expected()}") from None
        value = p.coerce(value)
        reason = p.check(value)
        if reason:
            raise ParameterError(f"{node.get_name()}: {reason}")
        values[p.name] = value
    if validate:
        reason = validate(dict(values))
        if reason:
            raise ParameterError(f"{node.get_name()}: {reason}")
    refused = threading.local()  # pre-set -> on-set, within one set_parameters call

    def pre_set(changes) -> list:
        out, reasons = [], []
        for c in changes:
            p = by_name.get(c.name)
            if p is None or c.type_ == RclpyParameter.Type.NOT_SET:
                out.append(c)
                continue
            value = p.coerce(c.value)
            reason = p.check(value)
            if reason:
                reasons.append(reason)
                out.append(RclpyParameter(c.name, value=values[c.name]))  # passes rclpy; refused below
            else:
                out.append(RclpyParameter(c.name, value=value) if value is not c.value else c)
        refused.reasons = reasons
        return out

    def guard(changes) -> SetParametersResult:
        reasons, refused.reasons = getattr(refused, "reasons", []), []
        updates = {c.name: c.value for c in changes if c.name in by_name}
        if not reasons and validate and updates:
            reason = validate({**values, **updates})
            if reason:
                reasons = [reason]
        if reasons:
            reason = "; ".join(reasons)
            node.get_logger().error(f"refused parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        values.update(updates)
        if on_change and updates:
            on_change(updates)
        return SetParametersResult(successful=True)

    node.add_pre_set_parameters_callback(pre_set)
    node.add_on_set_parameters_callback(guard)
    return values
