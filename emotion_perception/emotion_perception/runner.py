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

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException

from . import transport
from .nodes import NODES, node_class
from .nodes.executor import LeanExecutor
from .nodes.in_process import InProcessDelivery

DEFAULT_NODES = tuple(NODES)
#: Set to 0 to send the messages between the nodes of one process through DDS.
IN_PROCESS_ENV = "EMOTION_PERCEPTION_IN_PROCESS"
#: OS name of the landmark node's executor thread in a pipeline of several nodes (benchmarks count
#: its CPU to the landmark node).
FRONT_THREAD = "lm-executor"

_dedicated = False


def dedicate_process() -> None:
    """Declare that this process exists to run the pipeline (the ``pipeline``, ``run``,
    ``demo`` and ``bag evaluate`` commands): every :class:`Pipeline` started in it caps
    the BLAS/OpenMP thread pools at one thread once its nodes are built, as each node's
    own process does (:func:`emotion_perception.nodes.native_threads.limit_native_threads`), and
    lets glibc reuse camera-sized buffers (:func:`~emotion_perception.nodes.memory.keep_large_buffers`).

    Measured with all seven nodes in one process: at 30 Hz 46% of a core instead of
    125% (OpenBLAS workers busy-wait between the frame SVM's tiny calls), 90 Hz held
    with no loss instead of 60 Hz; ``make demo`` 11 s of CPU instead of 19 s in the
    same 13 s. The cap is process-wide: do not call this in a process that does other
    numeric work (a test run, a notebook, training).
    """
    global _dedicated
    _dedicated = True
    from .nodes.memory import keep_large_buffers

    keep_large_buffers()


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
    from .launch_description import namespaced_params_file

    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", namespaced_params_file(params_file, namespace or "")]
    for r in remaps:
        if ":=" not in r:
            raise ValueError(f"remapping {r!r} is not of the form from:=to")
        args += ["-r", r]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


def default_log_level_before(log_level: str | None) -> int | None:
    """The process's default log level, to restore after a context initialised with
    ``--log-level log_level`` is shut down (None when no level is given: nothing to
    restore). ``--log-level`` sets the default level of every logger in the process
    (rcutils'), and nothing sets it back: a library caller's own lines (a behaviour
    tree's node, the rest of a test run) stayed silent after a pipeline run at "error"."""
    return int(rclpy.logging.get_logger_level("")) if log_level else None


def restore_default_log_level(saved: int | None) -> None:
    """Undo what a ``--log-level`` did (see :func:`default_log_level_before`)."""
    if saved is not None:
        rclpy.logging.set_logger_level("", saved)


class Pipeline:
    """A set of the package's nodes spinning in a background thread.

    Use as a context manager::

        with Pipeline(["landmark"], params_file=..., remaps=["image:=/camera/image_raw"]) as p:
            ...  # p.context is the rclpy context; create test nodes in it

    One thread runs every callback (:class:`~emotion_perception.nodes.executor.LeanExecutor`,
    as in a node's own process: one wait per batch of messages, where rclpy's
    SingleThreadedExecutor waits twice per message), except the landmark node's when
    other nodes run beside it: it has an executor and thread of its own
    (:data:`FRONT_THREAD`), so a camera image is taken and queued for MediaPipe as it
    arrives instead of after the other nodes' callbacks for the previous image.
    Messages between the nodes of the pipeline go in-process, not through DDS, while
    nobody outside listens to their topic (:mod:`emotion_perception.nodes.in_process`;
    ``in_process_delivery``). rclpy's MultiThreadedExecutor, used here before, woke
    about 20 times per camera-sized message with nothing to do while a pool thread
    took it, and at times spun a whole core that way, stalling every thread of the
    process for 0.1-1.4 s (the slow-consumer fault test). The heavy work does not need
    the pool: MediaPipe runs in the landmark node's worker threads.

    Args:
        nodes: short names from :data:`emotion_perception.nodes.NODES`.
        params_file: YAML keyed by node name (``config/params.yaml`` by default).
        remaps: ``from:=to`` topic remappings applied to every node.
        namespace: namespace of every node.
        parameter_overrides: short name -> {parameter: value}, applied over the file.
        in_process_delivery: hand messages between the pipeline's nodes over in-process;
            False sends every one through DDS, as separate processes do. None (the
            default): True unless the environment sets ``EMOTION_PERCEPTION_IN_PROCESS=0``.

    Raises:
        ValueError: an unknown node name or a malformed remapping.
        emotion_perception.nodes.parameters.ParameterError: a bad parameter value.
        emotion_perception.assets.ModelFileError: a missing or tampered model file.
    """

    def __init__(self, nodes=DEFAULT_NODES, params_file=None, remaps=(), namespace: str | None = None,
                 parameter_overrides: dict | None = None, log_level: str | None = None,
                 in_process_delivery: bool | None = None):
        for n in nodes:
            if n not in NODES:
                raise ValueError(f"unknown node {n!r}; choose from {', '.join(NODES)}")
        from .launch_description import NO_HRI_NOTE, node_available

        #: said once at start: the REP-155 producer left out where its messages are missing
        self.notes: tuple[str, ...] = ()
        if "hri" in nodes and not node_available("hri"):
            nodes, self.notes = [n for n in nodes if n != "hri"], (NO_HRI_NOTE,)
        self.node_names = tuple(nodes)
        self.params_file = params_file if params_file is not None else default_params_file()
        self.args = ros_args(self.params_file, remaps, namespace, log_level)
        self.log_level = log_level
        self._saved_default_level: int | None = None  # the process's default log level before start()
        self.overrides = parameter_overrides or {}
        self.context: Context | None = None
        self.nodes: dict = {}
        self._extra_nodes: list = []
        self.executor: LeanExecutor | None = None
        #: the landmark node's own executor (None when it runs alone or not at all)
        self.front_executor: LeanExecutor | None = None
        if in_process_delivery is None:
            in_process_delivery = os.environ.get(IN_PROCESS_ENV, "1") != "0"
        self.in_process_delivery = in_process_delivery
        self.delivery: InProcessDelivery | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> "Pipeline":
        cleaned = transport.prepare_process()
        self.context = Context()
        self._saved_default_level = default_log_level_before(self.log_level)  # stop() restores it
        rclpy.init(args=self.args, context=self.context)
        if cleaned:
            rclpy.logging.get_logger("emotion_perception").info(cleaned)
        for note in self.notes:
            rclpy.logging.get_logger("emotion_perception").info(note)
        try:
            from rclpy.parameter import Parameter

            for name in self.node_names:
                overrides = [Parameter(k, value=v) for k, v in self.overrides.get(name, {}).items()]
                self.nodes[name] = node_class(name)(context=self.context, parameter_overrides=overrides)
            self.executor = LeanExecutor(context=self.context)
            front = self._front()
            if front is not None:
                self.front_executor = LeanExecutor(context=self.context)
                self.front_executor.add_node(front)
            for node in self.nodes.values():
                if node is not front:
                    self.executor.add_node(node)
            if self.in_process_delivery:
                self.delivery = InProcessDelivery(self.executor, self.nodes.values())
            if _dedicated:
                from .nodes.native_threads import limit_native_threads

                limit_native_threads()  # after the nodes: it caps the libraries loaded so far
        except BaseException:
            self.stop()
            raise
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._spin, args=(self.executor, "executor"),
                                          name="pipeline-executor", daemon=True)]
        if self.front_executor is not None:
            self._threads.append(threading.Thread(target=self._spin, args=(self.front_executor, FRONT_THREAD),
                                                  name=f"pipeline-{FRONT_THREAD}", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _front(self):
        """The landmark node, to be spun on a thread of its own: only beside other nodes,
        and only while none of them reads a topic it reads (in-process delivery shares one
        take of such a topic between the process's readers, on one executor)."""
        front = self.nodes.get("landmark")
        if front is None or len(self.nodes) == 1:
            return None
        topics = {s.topic_name for s in front.subscriptions}
        others = {s.topic_name for n in self.nodes.values() if n is not front for s in n.subscriptions}
        return None if topics & others else front

    def _spin(self, executor: LeanExecutor, thread_name: str) -> None:
        from .nodes.native_threads import name_os_thread

        name_os_thread(thread_name)
        try:
            while not self._stopping.is_set() and self.context.ok():
                executor.spin_once()  # stop() wakes it
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def inputs_settled(self) -> bool:
        """True when every lazy node (:mod:`emotion_perception.nodes.lazy`) is subscribed to
        its inputs exactly when someone listens to its output, and its subscriptions
        are matched to their publishers: a subscriber made just now has woken the
        nodes it reads from."""
        from .nodes.lazy import LazyInputs

        for node in list(self.nodes.values()):
            lazy = getattr(node, "inputs", None)
            if not isinstance(lazy, LazyInputs):
                continue
            if lazy.active != (lazy.listeners() > 0):
                return False
            # and matched: a message published now reaches the new subscriptions
            if any(sub.get_publisher_count() < min(1, node.count_publishers(sub.topic_name))
                   for sub in list(lazy.subs.values())):
                return False
        return True

    def wait_inputs_settled(self, timeout_s: float = 10.0) -> bool:
        """Wait (at most ``timeout_s``) until :meth:`inputs_settled`; True if it is."""
        import time

        deadline = time.monotonic() + timeout_s
        while not self.inputs_settled():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def add_node(self, node) -> None:
        """Spin an extra node (a test probe, a recorder) in the same executor; :meth:`stop`
        destroys it with the pipeline's own nodes."""
        self.executor.add_node(node)
        self._extra_nodes.append(node)

    def stop(self) -> None:
        """Stop spinning, then destroy the nodes and the context.

        The executor thread is joined before any node is destroyed or the executor
        shuts down: callbacks run on that thread, so none is in flight afterwards
        (destroying a node, or the executor's guard condition, under a running callback
        raises InvalidHandle: "cannot use Destroyable because destruction was
        requested", ros2/rclpy#1724).
        """
        self._stopping.set()
        executors = [e for e in (self.executor, self.front_executor) if e is not None]
        for e in executors:
            e.wake()
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads = []
        for e in executors:
            e.shutdown(timeout_sec=2.0)
        # Extra nodes too: a node left to the garbage collector keeps its DDS entities
        # announced until it is collected, at any later moment. A test saw a probe of an
        # earlier pipeline vanish from faces/mesh just as its new subscriber matched.
        for node in [*self.nodes.values(), *self._extra_nodes]:
            node.destroy_node()
        self.nodes = {}
        self._extra_nodes = []
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
        restore_default_log_level(self._saved_default_level)
        self._saved_default_level = None
        self.executor = self.front_executor = None
        self.delivery = None
        self.context = None

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
