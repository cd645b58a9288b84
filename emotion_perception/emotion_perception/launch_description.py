"""What the pipeline launch starts, as plain data, and its launch_ros form.

``ros2 launch emotion_perception pipeline.launch.py`` (one process by default,
``one_process:=false`` for one per node) and ``emotion-perception pipeline`` / ``run`` /
``bag evaluate`` (one process, see :mod:`emotion_perception.runner`) all start the
nodes that :func:`describe` lists,
with the same remappings and parameters, so the two ways of running cannot drift.
:func:`describe` needs neither rclpy nor launch_ros (it is unit-tested everywhere);
:func:`generate_launch_description` imports ``launch``/``launch_ros`` only when
called.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pathlib
from typing import Mapping

from . import transport
from .nodes import NODES

#: The node every pipeline needs: camera image -> faces/mesh, faces/blendshapes.
CORE_NODE = "landmark"
#: Short node name -> launch argument that switches it on or off.
CLASSIFIER_ARGS = {
    "transformer": "transformer",
    "lstm": "lstm",
    "frame": "frame",
    "image_emotion": "image_emotion",
    "emotion_fusion": "fusion",
    "attention": "attention",
    "hri": "ros4hri",
}
#: Nodes that subscribe to the camera image (``image`` or ``image/compressed``) and
#: their boolean parameter that selects ``image/compressed``. (The image model's node
#: reads the landmark node's aligned ``faces/crops``, not the camera.)
COMPRESSED_PARAMETERS = {"landmark": "use_compressed", "hri": "use_compressed"}
IMAGE_NODES = tuple(COMPRESSED_PARAMETERS)
#: Topic names the nodes use before remapping (relative, so a namespace applies).
IMAGE_TOPIC = "image"
COMPRESSED_SUFFIX = "/compressed"

#: Every output topic, by the short name of the node that publishes it.
OUTPUT_TOPICS = {
    "landmark": ("faces/mesh", "faces/blendshapes", "faces/crops"),
    "transformer": ("emotion/transformer",),
    "lstm": ("emotion/lstm",),
    "frame": ("emotion/frame",),
    "image_emotion": ("emotion/image",),
    "emotion_fusion": ("emotion",),
    "attention": ("attention",),
    # REP-155 topics (humans/...) and tf: for ROS4HRI consumers, not this package's
    # recorders (docs/ros4hri.md)
    "hri": (),
}
#: Modules the REP-155 producer needs beyond this package (built by `make setup` from the
#: ROS4HRI kit; on a robot ros-$ROS_DISTRO-hri-msgs and -tf2-msgs).
HRI_MESSAGES = ("hri_msgs", "tf2_msgs")
#: The one line said when they are missing.
NO_HRI_NOTE = ("REP-155 output (hri_node) is off: hri_msgs/tf2_msgs are not installed (`make setup` builds them "
               "from ../shared/ros2-hri-kit, HRI_KIT=...; on a robot: rosdep install emotion_perception)")


def module_name(short: str) -> str:
    """``landmark`` -> ``landmark_node`` (the executable and the ROS node name)."""
    return NODES[short].split(":")[0].rsplit(".", 1)[-1]


def node_available(short: str) -> bool:
    """True when the node's module is installed (it may not be while it is built), and
    for the REP-155 producer, the ROS4HRI messages it publishes."""
    if short == "hri" and not all(importlib.util.find_spec(m) is not None for m in HRI_MESSAGES):
        return False
    return importlib.util.find_spec(NODES[short].split(":")[0]) is not None


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the pipeline.

    Attributes:
        short: key of :data:`emotion_perception.nodes.NODES`.
        executable: console script (``ros2 run emotion_perception <executable>``).
        name: ROS node name (the parameter file's section).
        remappings: (from, to) topic pairs.
        overrides: parameters set over the parameter file.
    """

    short: str
    executable: str
    name: str
    remappings: tuple[tuple[str, str], ...]
    overrides: Mapping[str, object]


@dataclasses.dataclass(frozen=True)
class PipelineDescription:
    """Everything a launcher needs: nodes, namespace, parameter file, environment."""

    nodes: tuple[NodeSpec, ...]
    namespace: str
    params_file: str
    environment: Mapping[str, str]
    image_topic: str
    compressed: bool
    #: lines to say once when starting (the REP-155 producer left out, and why)
    notes: tuple[str, ...] = ()

    @property
    def short_names(self) -> tuple[str, ...]:
        return tuple(n.short for n in self.nodes)

    def remap_args(self) -> list[str]:
        """The remappings as ``from:=to`` strings (every node has the same ones)."""
        pairs = dict.fromkeys(r for n in self.nodes for r in n.remappings)
        return [f"{a}:={b}" for a, b in pairs]

    def parameter_overrides(self) -> dict[str, dict]:
        """short name -> overrides, the form :class:`~emotion_perception.runner.Pipeline` takes."""
        return {n.short: dict(n.overrides) for n in self.nodes if n.overrides}

    def output_topics(self) -> dict[str, str]:
        """Relative output topic -> short name of its publisher, for started nodes."""
        return {t: n.short for n in self.nodes for t in OUTPUT_TOPICS.get(n.short, ())}


def parse_bool(value) -> bool:
    """Launch-argument style booleans: true/false, 1/0, on/off, yes/no."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "on", "yes"):
        return True
    if text in ("false", "0", "off", "no"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def default_params_file() -> str:
    """``config/params.yaml`` of the source tree, else of the installed share dir."""
    from .assets import config_path

    return str(config_path("params.yaml"))


def check_params_file(params_file: str | os.PathLike) -> str:
    """``params_file`` as a string once it is a ROS 2 parameter file the nodes can start
    with: readable YAML whose top level maps node names (or namespaces, or ``/**``) to
    ``ros__parameters`` mappings, as ``config/params.yaml``.

    ROS itself reports a bad file only as every node's start fails (a traceback from
    ``rclpy.init`` per process); this says what is wrong, once, before anything starts.

    Raises:
        ValueError: the file is missing, unreadable, not YAML, or not laid out that way.
    """
    import yaml

    path = pathlib.Path(params_file)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f"parameter file {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ValueError(f"parameter file {path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"parameter file {path}: expected node names mapping to 'ros__parameters', "
                         "as config/params.yaml")

    def check(tree: dict, where: str) -> None:
        for key, value in tree.items():
            here = f"{where}/{key}".lstrip("/") if where else str(key)
            if not isinstance(value, dict):
                raise ValueError(f"parameter file {path}: {here} is not under a 'ros__parameters' key; a node's "
                                 "parameters go under '<node name>: ros__parameters:', as in config/params.yaml")
            if key == "ros__parameters":
                continue
            if "ros__parameters" not in value:
                check(value, here)
            elif not isinstance(value["ros__parameters"], dict):
                raise ValueError(f"parameter file {path}: {here}/ros__parameters must be a mapping of "
                                 "parameter names to values")

    check(data, "")
    return str(params_file)


def namespaced_params_file(params_file: str | os.PathLike, namespace: str) -> str:
    """The parameter file to hand ROS for nodes in ``namespace``.

    A parameter YAML keyed by node name (``landmark_node:``, as ``config/params.yaml``)
    applies, in ROS, to the node of that name in the root namespace only: under
    ``namespace:=robot1`` every node would silently start with its defaults. For a
    namespace this writes a copy (once per file, namespace and modification time, in
    the temporary directory, as launch_ros does for parameter dicts) whose relative
    node keys are prefixed with the namespace; absolute keys (``/robot1/landmark_node``)
    and wildcards (``/**``) are kept as they are. Without a namespace the file itself.
    """
    ns = namespace.strip("/")
    path = pathlib.Path(params_file)
    if not ns or not path.is_file():  # a missing file: ROS names it when it starts
        return str(params_file)
    return _namespaced_copy(str(path.resolve()), ns, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _namespaced_copy(path: str, ns: str, mtime_ns: int) -> str:  # noqa: ARG001 - part of the cache key
    import tempfile

    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a parameter file maps node names to their parameters")
    out = {(k if str(k).startswith("/") else f"/{ns}/{k}"): v for k, v in data.items()}
    fd, name = tempfile.mkstemp(prefix=f"emotion_perception_{ns.replace('/', '_')}_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(out, f, sort_keys=False)
    return name


def describe(image_topic: str = IMAGE_TOPIC, compressed: bool = False, namespace: str = "",
             params_file: str | os.PathLike | None = None, enabled: Mapping[str, bool] | None = None,
             available_only: bool = False, env: Mapping[str, str] | None = None) -> PipelineDescription:
    """The nodes of the pipeline with their remappings and parameters.

    Args:
        image_topic: camera topic, raw (``sensor_msgs/Image``); with ``compressed`` the
            nodes read ``<image_topic>/compressed`` (image_transport's naming).
        compressed: subscribe to ``CompressedImage`` instead of ``Image``.
        namespace: namespace of every node ('' for none).
        params_file: parameter YAML keyed by node name (default: the package's).
        enabled: short name -> on/off for the classifier nodes (default: all on).
            The landmark node always runs.
        available_only: leave out nodes whose module is not installed.
        env: environment the launch inherits (default ``os.environ``), to decide
            whether to set ``FASTDDS_BUILTIN_TRANSPORTS``.

    Raises:
        ValueError: an unknown node name in ``enabled``, an empty image topic or a
            parameter file that is missing or malformed (:func:`check_params_file`).
    """
    if not image_topic:
        raise ValueError("the image topic is empty")
    if params_file:
        check_params_file(params_file)
    enabled = dict(enabled or {})
    for k in enabled:
        if k not in CLASSIFIER_ARGS:
            raise ValueError(f"unknown classifier {k!r}; choose from {', '.join(CLASSIFIER_ARGS)}")
    chosen = [CORE_NODE] + [s for s in CLASSIFIER_ARGS if enabled.get(s, True)]
    notes = ()
    if "hri" in chosen and not node_available("hri"):
        chosen.remove("hri")
        notes = (NO_HRI_NOTE,)
    if available_only:
        chosen = [s for s in chosen if node_available(s)]
    if compressed:
        remaps = ((IMAGE_TOPIC + COMPRESSED_SUFFIX, image_topic.rstrip("/") + COMPRESSED_SUFFIX),)
    else:
        remaps = ((IMAGE_TOPIC, image_topic),)
    remaps = tuple(r for r in remaps if r[0] != r[1])
    nodes = []
    for s in chosen:
        overrides = {COMPRESSED_PARAMETERS[s]: bool(compressed)} if s in IMAGE_NODES else {}
        nodes.append(NodeSpec(short=s, executable=module_name(s), name=module_name(s),
                              remappings=remaps, overrides=overrides))
    environ = dict(os.environ if env is None else env)
    before = dict(environ)
    transport.configure_process(environ)
    environment = {k: v for k, v in environ.items() if before.get(k) != v}
    return PipelineDescription(
        nodes=tuple(nodes), namespace=namespace.strip("/"),
        params_file=str(params_file) if params_file else default_params_file(),
        environment=environment, image_topic=image_topic, compressed=bool(compressed), notes=notes)


# ------------------------------------------------------------------ launch_ros

#: Launch arguments: name -> (default, description).
LAUNCH_ARGUMENTS = {
    "image_topic": ("image", "camera image topic (raw); with compressed:=true its /compressed sibling is read"),
    "compressed": ("false", "read sensor_msgs/CompressedImage from <image_topic>/compressed"),
    "namespace": ("", "namespace of every node"),
    "params_file": ("", "parameter YAML keyed by node name (default: the package's config/params.yaml)"),
    **{arg: ("true", f"start {module_name(s)}") for s, arg in CLASSIFIER_ARGS.items()},
    "one_process": ("true", "run every node in one process (emotion-perception pipeline: one executor, the "
                    "arrays between the nodes handed over in-process; about half the CPU, docs/benchmarks.md), "
                    "respawned if it dies; false: one process per node (isolation, debugging)"),
}
#: Seconds launch waits before it starts a process again that died (respawn).
RESPAWN_DELAY_S = 2.0


def description_from_launch_arguments(values: Mapping[str, str], env: Mapping[str, str] | None = None
                                      ) -> PipelineDescription:
    """:func:`describe` from the launch arguments' string values."""
    def get(name):
        return values.get(name, LAUNCH_ARGUMENTS[name][0])

    return describe(image_topic=get("image_topic"), compressed=parse_bool(get("compressed")),
                    namespace=get("namespace"), params_file=get("params_file") or None,
                    enabled={s: parse_bool(get(a)) for s, a in CLASSIFIER_ARGS.items()}, env=env)


def pipeline_arguments(values: Mapping[str, str]) -> list[str]:
    """``emotion-perception pipeline`` arguments that start what the launch arguments'
    string ``values`` describe (``one_process:=true``)."""
    def get(name):
        return values.get(name, LAUNCH_ARGUMENTS[name][0])

    args = ["pipeline", "--image-topic", get("image_topic"), "--namespace", get("namespace")]
    if parse_bool(get("compressed")):
        args.append("--compressed")
    if get("params_file"):
        args += ["--params-file", get("params_file")]
    args += [f"--no-{a.replace('_', '-')}" for a in CLASSIFIER_ARGS.values() if not parse_bool(get(a))]
    return args


def to_one_process_actions(desc: PipelineDescription, values: Mapping[str, str]) -> list:
    """launch actions running every node of ``desc`` in one ``emotion-perception pipeline``
    process (needs ``launch`` and ``ament_index_python``)."""
    from ament_index_python.packages import get_package_prefix
    from launch.actions import ExecuteProcess, SetEnvironmentVariable

    exe = pathlib.Path(get_package_prefix("emotion_perception")) / "lib" / "emotion_perception" / "emotion-perception"
    # respawn: a crash of the one process would otherwise take every node down for good
    # (a failure inside one node's callback is contained in the process: nodes/containment.py)
    return [SetEnvironmentVariable(k, v) for k, v in desc.environment.items()] + [
        ExecuteProcess(cmd=[str(exe), *pipeline_arguments(values)], name="emotion_perception_pipeline",
                       output="screen", respawn=True, respawn_delay=RESPAWN_DELAY_S)]


def to_launch_actions(desc: PipelineDescription) -> list:
    """launch_ros actions for a description (needs ``launch`` and ``launch_ros``)."""
    from launch.actions import SetEnvironmentVariable
    from launch_ros.actions import Node

    actions = [SetEnvironmentVariable(k, v) for k, v in desc.environment.items()]
    for n in desc.nodes:
        params = ([namespaced_params_file(desc.params_file, desc.namespace)]
                  + ([dict(n.overrides)] if n.overrides else []))
        actions.append(Node(package="emotion_perception", executable=n.executable, name=n.name,
                            namespace=desc.namespace, parameters=params,
                            remappings=list(n.remappings), output="screen"))
    return actions


def _stop_nodes_on_sigterm(context, *args, **kwargs) -> list:
    """Make SIGTERM to ``ros2 launch`` stop the nodes as Ctrl-C does.

    ``ros2 launch`` handles SIGINT by sending SIGINT to every process and waiting for
    them (escalating to SIGTERM and SIGKILL), but on SIGTERM it only cancels its own
    run: it exits at once and every node keeps running, orphaned (ros2/launch#666,
    open). ``kill <pid>``, ``docker stop`` and a service manager stop a robot's launch
    with SIGTERM. This replaces launch's SIGTERM handler (in the signal manager of the
    running launch, found through its private class attribute; where that is missing,
    launch's behaviour stays) with the shutdown that SIGINT starts.
    """
    import signal
    import threading

    from launch.events import Shutdown

    try:
        from launch.utilities.signal_management import AsyncSafeSignalManager

        manager = getattr(AsyncSafeSignalManager, "_AsyncSafeSignalManager__current", None)
    except ImportError:
        manager = None
    if manager is None or threading.current_thread() is not threading.main_thread():
        return []

    def on_sigterm(signum):
        context.emit_event_sync(Shutdown(reason="SIGTERM"))

    manager.handle(signal.SIGTERM, on_sigterm)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        # the manager sees only signals that have a Python handler
        signal.signal(signal.SIGTERM, lambda *_: None)
    return []


def generate_launch_description():
    """The LaunchDescription of ``pipeline.launch.py``."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    share = pathlib.Path(get_package_share_directory("emotion_perception"))
    defaults = dict(LAUNCH_ARGUMENTS)
    defaults["params_file"] = (str(share / "config" / "params.yaml"), LAUNCH_ARGUMENTS["params_file"][1])

    def _nodes(context, *args, **kwargs):
        values = context.launch_configurations
        from launch.actions import LogInfo

        desc = description_from_launch_arguments(values)
        notes = [LogInfo(msg=n) for n in desc.notes]
        if parse_bool(values.get("one_process", LAUNCH_ARGUMENTS["one_process"][0])):
            return notes + to_one_process_actions(desc, values)
        return notes + to_launch_actions(desc)

    return LaunchDescription(
        [DeclareLaunchArgument(k, default_value=d, description=h) for k, (d, h) in defaults.items()]
        + [OpaqueFunction(function=_stop_nodes_on_sigterm), OpaqueFunction(function=_nodes)])
