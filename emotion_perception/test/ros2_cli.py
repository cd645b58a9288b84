"""Running ``ros2 launch`` / ``ros2 run`` as a user does, for the launch tests and
benchmarks/launch_stop.py: a process in its own session (so a signal can go to its
whole process group, as a terminal's Ctrl-C does), its output collected line by line,
the ``ros2`` command line for the graph, and the checks of a clean stop.

Not a test module.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

from emotion_perception.quiet import NOISE

#: The venv's ``ros2`` (from a ROS 2 install or ../shared/ros2-launch-kit via make setup).
ROS2 = pathlib.Path(sys.executable).parent / "ros2"
#: Why the launch tests skip where there is no ``ros2 launch``.
NO_LAUNCH = ("ros2 launch is not installed here: launch and launch_ros come from a ROS 2 install "
             "or from ../shared/ros2-launch-kit, which make setup installs when it is present")


def launch_available() -> bool:
    return ROS2.is_file() and importlib.util.find_spec("launch_ros") is not None


#: Ways to stop a launch: a terminal's Ctrl-C (SIGINT to the process group), SIGINT to
#: the launch process alone (``kill -INT <pid>``), SIGTERM to it (``kill <pid>``, systemd).
STOPS = ("ctrl-c", "sigint", "sigterm")
#: Camera rate of the streaming tests and benchmarks, Hz.
CAMERA_HZ = 30.0
#: Lock files of Fast DDS shared-memory segments (Fast DDS 3: fastdds_*, 2.x: fastrtps_*).
SEGMENT = re.compile(r"^fast(?:dds|rtps)_[0-9a-f]{16}_el$")


class Ros2Process:
    """``ros2 ...`` started in its own session, stdout and stderr merged and collected.

    Args:
        args: arguments after ``ros2``.
        env: extra environment (ROS_DOMAIN_ID comes from the test's environment).
    """

    def __init__(self, args: list[str], env: dict | None = None):
        self.args = list(args)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(ROS2), *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines: list[tuple[float, str]] = []
        self._seen: dict = {}  # every descendant ever listed: killed even once orphaned
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait until ``count`` output lines match ``pattern`` (a regular expression)."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            while sum(bool(rx.search(line)) for _, line in self.lines) < count:
                if time.monotonic() > end or self.proc.poll() is not None:
                    return sum(bool(rx.search(line)) for _, line in self.lines) >= count
                self._cond.wait(0.1)
        return True

    def descendants(self) -> list:
        """psutil.Process objects of every process under this one (the nodes)."""
        import psutil

        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        self._seen.update({p.pid: p for p in found})
        return found

    def stop(self, how: str) -> None:
        """Signal the way a user stops it: one of :data:`STOPS`."""
        if how == "ctrl-c":
            os.killpg(self.proc.pid, signal.SIGINT)
        elif how == "sigint":
            self.proc.send_signal(signal.SIGINT)
        elif how == "sigterm":
            self.proc.send_signal(signal.SIGTERM)
        else:
            raise ValueError(how)

    def wait(self, timeout: float) -> int | None:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(5.0)
        return rc

    def kill(self) -> None:
        """Last resort for a test that failed: nothing of it may outlive the test."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.descendants()
        for p in self._seen.values():
            try:
                if p.is_running():  # psutil checks the pid still names the same process
                    p.kill()
            except Exception:  # noqa: BLE001 - gone meanwhile
                pass
        self.wait(10.0)


def ros2(*args: str, timeout: float = 60.0) -> str:
    """Run a short ``ros2`` command; its stdout (raises on failure)."""
    r = subprocess.run([str(ROS2), *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"ros2 {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r.stdout


def wait_for_nodes(expected: set[str], timeout: float = 90.0) -> set[str]:
    """Poll ``ros2 node list`` until every expected node has been listed; every node
    listed by any of the calls. Each call is a fresh participant that discovers for a
    moment: under load (and on Jazzy) one call lists 0 to 7 of 7 running nodes, so a
    node counts as up once it has been listed."""
    end = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < end:
        seen |= set(ros2("node", "list", "--no-daemon", "--spin-time", "2").split())
        if expected <= seen:
            break
        time.sleep(0.5)
    return seen


def topic_types(timeout: float = 60.0, expected: dict[str, str] | None = None) -> dict[str, str]:
    """``ros2 topic list -t``: topic -> type (polled until ``expected`` is a subset)."""
    end = time.monotonic() + timeout
    found: dict[str, str] = {}  # every topic listed by any call (see wait_for_nodes)
    while True:
        out = ros2("topic", "list", "-t", "--no-daemon", "--spin-time", "2")
        for line in out.splitlines():
            m = re.match(r"^(\S+) \[(\S+)\]$", line.strip())
            if m:
                found[m.group(1)] = m.group(2)
        if not expected or expected.items() <= found.items() or time.monotonic() > end:
            return found
        time.sleep(0.5)


def node_subscriptions(node: str, timeout: float = 30.0, expected: dict[str, str] | None = None) -> dict[str, str]:
    """``ros2 node info NODE``: its subscribed topic -> type (polled until ``expected``
    is a subset, or the timeout), as the last call that found the node said. A call that
    did not find the node (a fresh participant that had not discovered it yet) changes
    nothing; if none found it, RuntimeError with what the last one printed."""
    end = time.monotonic() + timeout
    subs, error = None, ""
    while True:
        try:
            out = ros2("node", "info", "--no-daemon", "--spin-time", "2", node)
        except RuntimeError as e:
            out, error = None, str(e)
        if out is not None:
            subs, section = {}, None
            for line in out.splitlines():
                if line.strip().endswith(":") and not line.startswith("      "):
                    section = line.strip()[:-1]
                elif section == "Subscribers" and ": " in line:
                    topic, kind = line.strip().split(": ", 1)
                    subs[topic] = kind
        done = subs is not None and (not expected or expected.items() <= subs.items())
        if done or time.monotonic() > end:
            if subs is None:
                raise RuntimeError(f"ros2 node info never found {node}: {error}")
            return subs
        time.sleep(0.5)


def param_get(node: str, name: str) -> str:
    """``ros2 param get NODE NAME``: the value as the command prints it."""
    for attempt in range(5):  # a fresh participant may not have discovered the node yet
        try:
            out = ros2("param", "get", "--no-daemon", "--spin-time", "2", "--hide-type", node, name).strip()
            break
        except RuntimeError:
            if attempt == 4:
                raise
            time.sleep(1.0)
    return out


def owned_segments(pids) -> set[str]:
    """Names in /dev/shm of the Fast DDS shared-memory segments that the processes
    ``pids`` own: a segment's owner holds a flock on ``<segment>_el`` while it lives
    (/proc/locks names the holder's pid and the file's inode). Segments of other
    processes that these map to read from are not theirs to remove."""
    pids = {int(p) for p in pids}
    inodes = set()
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "FLOCK" and parts[4].isdigit() and int(parts[4]) in pids:
                inodes.add(int(parts[5].rsplit(":", 1)[-1]))
    owned = set()
    for name in os.listdir("/dev/shm"):
        m = SEGMENT.match(name)
        if m and name.endswith("_el"):
            try:
                if os.stat(f"/dev/shm/{name}").st_ino in inodes:
                    owned.add(name[:-3])
            except OSError:
                continue
    return owned


def stop_problems(proc: Ros2Process, nodes, node_names: list[str], segments: set[str],
                  rc: int | None, output_from: int = 0) -> list[str]:
    """What is wrong with how ``proc`` stopped; [] when it stopped cleanly.

    Clean: the process exited with 0; under ``ros2 launch`` every node in
    ``node_names`` reported "process has finished cleanly"; no traceback, FATAL line
    or died process in the output; none of ``nodes`` (psutil processes) is left; none
    of ``segments`` (names in /dev/shm) is left. Only the output from character
    ``output_from`` on is judged (a test that killed a process on purpose before).
    """
    problems = []
    out = proc.output[output_from:]
    if rc is None:
        problems.append("still running")
    elif rc != 0:
        problems.append(f"exit code {rc}")
    if proc.args and proc.args[0] == "launch":
        for n in node_names:
            if not re.search(rf"\[{re.escape(n)}-\d+\]: process has finished cleanly", out):
                problems.append(f"{n} did not finish cleanly")
    for bad in ("Traceback", "[FATAL]", "process has died", "KeyboardInterrupt", "RCLError", "deprecated"):
        if bad in out:
            problems.append(f"{bad!r} in the output")
    native = [line for line in out.splitlines() if NOISE.match(re.sub(r"^\[[\w-]+\] ", "", line).encode())]
    if native:
        problems.append(f"MediaPipe/TFLite log lines in the output (quiet by default): {native[:3]}")
    left = [p.pid for p in nodes if p.is_running() and p.status() != "zombie"]
    if left:
        problems.append(f"processes left: {left}")
    kept = sorted(s for s in segments if os.path.exists(f"/dev/shm/{s}"))
    if kept:
        problems.append(f"shared-memory segments left: {kept}")
    return problems


class Camera:
    """A camera driver and a behaviour tree in one: publishes the clip on a camera topic
    at 30 Hz (raw, or JPEG on ``<topic>/compressed``) and records ``emotion`` and
    ``attention`` messages that carry at least one face, with their arrival times."""

    def __init__(self, frames, image_topic: str, compressed: bool = False, namespace: str = ""):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import CompressedImage, Image

        from emotion_perception import transport
        from emotion_perception.imaging import encode_compressed
        from emotion_perception.nodes.qos import RESULT_QOS, SENSOR_QOS
        from emotion_perception_msgs.msg import AttentionArray, EmotionArray

        transport.configure_process()  # the camera side loads the package's profile too
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("test_camera", context=self.context)
        if compressed:
            self.msgs = []
            for rgb in frames:
                m = CompressedImage(format="jpeg")
                m.data = encode_compressed(rgb, "jpeg")
                self.msgs.append(m)
            self.pub = self.node.create_publisher(CompressedImage, image_topic.rstrip("/") + "/compressed",
                                                  SENSOR_QOS)
        else:
            self.msgs = []
            for rgb in frames:
                m = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
                m.data = rgb.tobytes()
                self.msgs.append(m)
            self.pub = self.node.create_publisher(Image, image_topic, SENSOR_QOS)
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.first: dict[str, float] = {}
        self.count = {"emotion": 0, "attention": 0}
        self.node.create_subscription(EmotionArray, f"{ns}/emotion", self._on("emotion", "emotions"), RESULT_QOS)
        self.node.create_subscription(AttentionArray, f"{ns}/attention", self._on("attention", "faces"), RESULT_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()
        self._streaming = threading.Event()
        self._stream: threading.Thread | None = None
        self._closed = False
        self.sent = 0

    def _spin_loop(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutting down
                return

    def _on(self, topic, field):
        def cb(msg):
            if len(getattr(msg, field)) > 0:
                self.count[topic] += 1
                self.first.setdefault(topic, time.monotonic())
        return cb

    def start_streaming(self):
        self._streaming.set()
        self._stream = threading.Thread(target=self._stream_loop, daemon=True)
        self._stream.start()

    def _stream_loop(self):
        period = 1.0 / CAMERA_HZ
        t_next = time.monotonic()
        k = 0
        while self._streaming.is_set():
            m = self.msgs[k % len(self.msgs)]
            stamp = self.node.get_clock().now().to_msg()
            m.header.stamp = stamp
            m.header.frame_id = "camera"
            self.pub.publish(m)
            self.sent += 1
            k += 1
            t_next += period
            time.sleep(max(0.0, t_next - time.monotonic()))

    def wait_outputs(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.count["emotion"] and self.count["attention"]:
                return True
            time.sleep(0.1)
        return False

    def close(self):
        """Stop streaming, shut the context down (idempotent)."""
        import rclpy

        if self._closed:
            return
        self._closed = True
        self._streaming.clear()
        if self._stream is not None:
            self._stream.join(5.0)
        rclpy.try_shutdown(context=self.context)
        self._spin.join(5.0)
        self.executor.shutdown()
        self.node.destroy_node()
