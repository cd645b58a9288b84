"""Runs the package's nodes in one process over the real middleware.

This is what ``emotion-perception pipeline`` uses, and what tests and the offline
``run`` command use: the same node classes that ``ros2 launch`` starts in separate
processes, the same parameter file (keyed by node name) and topic remappings, on a
real rclpy context with Fast DDS. Where ``launch_ros`` exists, prefer
``ros2 launch emotion_perception pipeline.launch.py``.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from . import transport
from .nodes import NODES, node_class

DEFAULT_NODES = tuple(NODES)


def default_params_file() -> pathlib.Path:
    """``config/params.yaml`` of the source tree or of the installed share dir."""
    here = pathlib.Path(__file__).resolve().parent.parent / "config" / "params.yaml"
    if here.is_file():
        return here
    from ament_index_python.packages import get_package_share_directory

    return pathlib.Path(get_package_share_directory("emotion_perception")) / "config" / "params.yaml"


def ros_args(params_file: str | os.PathLike | None = None, remaps: list[str] | tuple[str, ...] = (),
             namespace: str | None = None, log_level: str | None = None) -> list[str]:
    """Command-line ROS arguments equivalent to the launch file's settings."""
    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", str(params_file)]
    for r in remaps:
        if ":=" not in r:
            raise ValueError(f"remapping {r!r} is not of the form from:=to")
        args += ["-r", r]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


class DrainingExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor that can wait for the callbacks it has handed out.

    rclpy's ``shutdown`` destroys the executor's guard condition while callbacks
    already handed to the thread pool may still trigger it; each such callback ends in
    ``InvalidHandle`` ("cannot use Destroyable because destruction was requested"),
    printed as "The following exception was never retrieved" when it is collected
    (ros2/rclpy#1724 and #1142 describe the same race). Stop spinning, :meth:`drain`,
    then ``shutdown``.
    """

    def drain(self, timeout_s: float) -> bool:
        """Wait until every callback handed to the pool has finished; False on timeout."""
        end = time.monotonic() + timeout_s
        for task in list(getattr(self, "_futures", ())):
            while not task.done():
                if time.monotonic() >= end:
                    return False
                time.sleep(0.002)
        return True


class Pipeline:
    """A set of the package's nodes spinning in a background thread.

    Use as a context manager::

        with Pipeline(["landmark"], params_file=..., remaps=["image:=/camera/image_raw"]) as p:
            ...  # p.context is the rclpy context; create test nodes in it

    Args:
        nodes: short names from :data:`emotion_perception.nodes.NODES`.
        params_file: YAML keyed by node name (``config/params.yaml`` by default).
        remaps: ``from:=to`` topic remappings applied to every node.
        namespace: namespace of every node.
        parameter_overrides: short name -> {parameter: value}, applied over the file.
        threads: executor threads.

    Raises:
        ValueError: an unknown node name or a malformed remapping.
        emotion_perception.nodes.common.ParameterError: a bad parameter value.
        emotion_perception.assets.ModelFileError: a missing or tampered model file.
    """

    def __init__(self, nodes=DEFAULT_NODES, params_file=None, remaps=(), namespace: str | None = None,
                 parameter_overrides: dict | None = None, threads: int = 4, log_level: str | None = None):
        for n in nodes:
            if n not in NODES:
                raise ValueError(f"unknown node {n!r}; choose from {', '.join(NODES)}")
        self.node_names = tuple(nodes)
        self.params_file = params_file if params_file is not None else default_params_file()
        self.args = ros_args(self.params_file, remaps, namespace, log_level)
        self.overrides = parameter_overrides or {}
        self.threads = threads
        self.context: Context | None = None
        self.nodes: dict = {}
        self.executor: DrainingExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> "Pipeline":
        cleaned = transport.prepare_process()
        self.context = Context()
        rclpy.init(args=self.args, context=self.context)
        if cleaned:
            rclpy.logging.get_logger("emotion_perception").info(cleaned)
        try:
            from rclpy.parameter import Parameter

            for name in self.node_names:
                overrides = [Parameter(k, value=v) for k, v in self.overrides.get(name, {}).items()]
                self.nodes[name] = node_class(name)(context=self.context, parameter_overrides=overrides)
            self.executor = DrainingExecutor(num_threads=self.threads, context=self.context)
            for node in self.nodes.values():
                self.executor.add_node(node)
        except BaseException:
            self.stop()
            raise
        self._stopping.clear()
        self._thread = threading.Thread(target=self._spin, name="pipeline-executor", daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        try:
            while not self._stopping.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.5)
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def add_node(self, node) -> None:
        """Spin an extra node (a test probe, a recorder) in the same executor."""
        self.executor.add_node(node)

    def stop(self) -> None:
        """Stop spinning, let the callbacks in flight finish, then destroy the nodes and
        the context.

        The executor thread is joined before any node is destroyed (destroying a node
        while the executor still waits on its handles races: InvalidHandle), and the
        callbacks it handed out are waited for before the executor shuts down
        (:class:`DrainingExecutor`).
        """
        self._stopping.set()
        if self._thread is not None:
            if self.executor is not None:
                self.executor.wake()
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.executor is not None:
            self.executor.drain(timeout_s=2.0)
            self.executor.shutdown(timeout_sec=2.0)
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes = {}
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
        self.executor = None
        self.context = None

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
