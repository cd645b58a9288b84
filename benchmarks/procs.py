"""The whole pipeline with every node in its own process, as ``ros2 launch`` runs it
(or, with ``in_process``, every node in one ``emotion-perception pipeline`` process),
plus a camera/probe in this process: publish images, record every output by stamp,
and watch each process's CPU and memory through /proc.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from common import PKG, VENV_PY, proc_cpu_s, proc_fds, proc_rss_mb, proc_threads, thread_cpu_s

from emotion_perception.transport import PROFILE_ENVS, QOS_FROM_XML_ENV, TRANSPORT_ENV

#: Every environment variable that chooses a Fast DDS transport or profile.
TRANSPORT_VARS = (TRANSPORT_ENV, *PROFILE_ENVS, QOS_FROM_XML_ENV)

#: short name -> (module, output topic, message class)
NODES = {
    "landmark": ("landmark_node", "faces/mesh", "FaceMeshArray"),
    "transformer": ("transformer_node", "emotion/transformer", "EmotionArray"),
    "lstm": ("lstm_node", "emotion/lstm", "EmotionArray"),
    "frame": ("frame_node", "emotion/frame", "EmotionArray"),
    "image_emotion": ("image_emotion_node", "emotion/image", "EmotionArray"),
    "emotion_fusion": ("emotion_fusion_node", "emotion", "EmotionArray"),
    "attention": ("attention_node", "attention", "AttentionArray"),
}
FINAL_TOPICS = ("emotion", "attention")
#: The REP-155 producer (``latency.py --hri``). Not in NODES: every other run leaves it
#: out (``emotion-perception pipeline --no-ros4hri``, no process of its own), as before
#: it existed. Its outputs are recorded under these labels: ``/humans/faces/tracked``
#: (``hri_msgs/IdsList``) and every tracked face's ``/humans/faces/<id>/expression``
#: (``hri_msgs/Expression``), both with the image's header.
HRI_TRACKED = "humans/faces/tracked"
HRI_EXPRESSION = "humans/faces/{id}/expression"  # a row label: {id}, not <id> (HTML in markdown)
HRI_NODES = {"hri": ("hri_node", HRI_EXPRESSION, "Expression")}
#: NODES and the REP-155 producer: short name -> (module, output topic, message class).
ALL_NODES = {**NODES, **HRI_NODES}


def landmark_workers() -> int:
    """landmark_node's ``workers`` in the package's config/params.yaml (what the nodes use)."""
    import yaml

    params = yaml.safe_load((PKG / "config" / "params.yaml").read_text())
    return int(params["landmark_node"]["ros__parameters"]["workers"])


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


#: Name of the one process of ``in_process`` runs, in ``pids()`` and the tables.
ONE_PROCESS = "pipeline (all nodes)"


class NodeProcesses:
    """Start ``python -m emotion_perception.nodes.<module>`` for each node, or with
    ``in_process`` one ``python -m emotion_perception.cli pipeline`` running them all
    (the in-process runner: one rclpy executor thread for every node).

    Nodes whose process exits during start-up (module or model not there yet) are
    reported in ``unavailable`` with the last line they printed.
    """

    def __init__(self, names=tuple(NODES), landmark_params: dict | None = None, transport: str | None = None,
                 in_process: bool = False, launcher: tuple[str, ...] = ("-m",), env: dict | None = None):
        """``transport``: a FASTDDS_BUILTIN_TRANSPORTS value; None = the package default
        (each node loads ``config/fastdds_shm.xml``, as this process's camera does).
        ``launcher``: what comes between the interpreter and the module (``-m``, or a
        script that runs the module, as ``profile_nodes.py`` does); ``env``: extra
        environment variables."""
        self.in_process = in_process
        self.launcher = list(launcher)
        self.names = list(names)
        self.landmark_params = landmark_params or {}
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        if transport:
            for k in TRANSPORT_VARS:
                self.env.pop(k, None)
            self.env[TRANSPORT_ENV] = transport
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, object] = {}
        self.unavailable: dict[str, str] = {}

    def start(self, settle_s: float = 4.0) -> "NodeProcesses":
        params = PKG / "config" / "params.yaml"
        if self.in_process:
            return self._start_one(params, settle_s)
        for name in self.names:
            module = ALL_NODES[name][0]
            cmd = [str(VENV_PY), *self.launcher, f"emotion_perception.nodes.{module}", "--ros-args", "--params-file",
                   str(params)]
            if name == "landmark":
                for k, v in self.landmark_params.items():
                    cmd += ["-p", f"{k}:={v}"]
            log = tempfile.TemporaryFile(mode="w+")
            self.logs[name] = log
            self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(settle_s)
        for name, p in list(self.procs.items()):
            if p.poll() is not None:
                self.unavailable[name] = self.reason(name)
                del self.procs[name]
        return self

    def _start_one(self, params, settle_s: float) -> "NodeProcesses":
        import yaml

        from emotion_perception.launch_description import CLASSIFIER_ARGS

        tree = yaml.safe_load(params.read_text())
        tree["landmark_node"]["ros__parameters"].update(self.landmark_params)
        self._params_file = tempfile.NamedTemporaryFile("w", suffix=".yaml")
        yaml.safe_dump(tree, self._params_file)
        self._params_file.flush()
        cmd = [str(VENV_PY), *self.launcher, "emotion_perception.cli", "pipeline", "--params-file",
               self._params_file.name]
        cmd += [f"--no-{arg.replace('_', '-')}" for short, arg in CLASSIFIER_ARGS.items() if short not in self.names]
        log = tempfile.TemporaryFile(mode="w+")
        self.logs[ONE_PROCESS] = log
        self.procs[ONE_PROCESS] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(settle_s)
        if self.procs[ONE_PROCESS].poll() is not None:
            self.unavailable[ONE_PROCESS] = self.reason(ONE_PROCESS)
            del self.procs[ONE_PROCESS]
        return self

    def pids(self) -> dict[str, int]:
        """Process name -> pid of the running processes (one name per node, or ONE_PROCESS)."""
        return {n: p.pid for n, p in self.procs.items() if p.poll() is None}

    def tail(self, name: str, lines: int = 3) -> str:
        log = self.logs[name]
        log.seek(0)
        text = [ln for ln in log.read().splitlines() if ln.strip() and not ln.startswith(("W0000", "I0000"))]
        return " | ".join(text[-lines:])

    def reason(self, name: str) -> str:
        """Why a node stopped, short: the model file it refused, or its last line."""
        import re

        text = self.tail(name, 20)
        m = re.search(r"ModelFileError: model file (\S+)", text)
        if m:
            return f"model file {os.path.basename(m.group(1))} missing or not verified"
        m = re.search(r"(\w+Error: .{0,80})", text)
        return m.group(1) if m else (text[-100:] or "exited")

    def log_lines(self, name: str) -> list[str]:
        log = self.logs[name]
        log.seek(0)
        return log.read().splitlines()

    def running(self) -> list[str]:
        """The nodes running (all of ``names`` while the one process of ``in_process`` lives)."""
        if self.in_process:
            return list(self.names) if self.pids() else []
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(2)  # SIGINT: the node's clean shutdown path
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Sampler(threading.Thread):
    """Samples CPU seconds, RSS, fds and threads of each process once a second."""

    def __init__(self, pids: dict[str, int], period_s: float = 1.0):
        super().__init__(daemon=True)
        self.pids = pids
        self.period_s = period_s
        self.samples: dict[str, list[tuple[float, float, float, int, int]]] = {n: [] for n in pids}
        #: name -> [(monotonic time, CPU seconds per thread group)], first and latest sample
        self.thread_samples: dict[str, list[tuple[float, dict[str, float]]]] = {n: [] for n in pids}
        self._halt = threading.Event()

    def sample(self) -> None:
        now = time.monotonic()
        for n, pid in self.pids.items():
            try:
                self.samples[n].append((now, proc_cpu_s(pid), proc_rss_mb(pid), proc_fds(pid), proc_threads(pid)))
                ts = self.thread_samples[n]
                ts[1:] = [(now, thread_cpu_s(pid))]
                if len(ts) == 1:
                    ts.append(ts[0])
            except (FileNotFoundError, ProcessLookupError):
                pass

    def thread_cpu_s(self, name: str) -> dict[str, float]:
        """CPU seconds per thread group of process ``name`` between its first and last sample."""
        ts = self.thread_samples.get(name) or []
        if len(ts) < 2:
            return {}
        first, last = ts[0][1], ts[-1][1]
        return {g: last[g] - first.get(g, 0.0) for g in last}

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.sample()

    def stats(self, name: str, since: float = 0.0) -> dict:
        s = [x for x in self.samples[name] if x[0] >= since]
        if len(s) < 2:
            return {"cpu_percent": float("nan"), "rss_mb_max": float("nan"), "rss_mb_first": float("nan"),
                    "rss_mb_last": float("nan")}
        return {"cpu_percent": 100.0 * (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0]),
                "rss_mb_first": s[0][2], "rss_mb_last": s[-1][2], "rss_mb_max": max(x[2] for x in s),
                "fds_first": s[0][3], "fds_last": s[-1][3], "threads_first": s[0][4], "threads_last": s[-1][4]}


class Camera:
    """This process's DDS side: publishes ``image`` and records output topics.

    Runs its own rclpy context and executor thread; receive times are taken in the
    subscription callbacks (wall clock, same host as the stamps).
    """

    def __init__(self, topics):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from emotion_perception import transport
        from emotion_perception.nodes.qos import RESULT_QOS

        transport.configure_process()
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = Node("bench_camera", context=self.ctx)
        self.pub = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.got: dict[str, dict[int, float]] = {t: {} for t in topics}
        self.lock = threading.Lock()
        for t in topics:
            if t in (HRI_TRACKED, HRI_EXPRESSION):
                continue
            kind = next(v[2] for v in NODES.values() if v[1] == t)
            cls = getattr(importlib.import_module("emotion_perception_msgs.msg"), kind)
            self.node.create_subscription(cls, t, self._recorder(t), RESULT_QOS)
        #: face id -> its expression subscription (REP-155 listening, ``_listen_hri``)
        self.face_subs: dict[str, object] = {}
        if HRI_EXPRESSION in self.got or HRI_TRACKED in self.got:
            self._listen_hri()
        from diagnostic_msgs.msg import DiagnosticArray

        self.diag: dict[str, dict[str, str]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RESULT_QOS)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self._msgs = {}

    def _listen_hri(self) -> None:
        """Listen to the REP-155 producer as a libhri/pyhri consumer does (docs/ros4hri.md,
        test_hri_node.py's ``Consumer``): ``/humans/faces/tracked`` with the system-default
        QoS (the subscription that wakes the lazy hri_node) and, when a face id first
        appears in it, that face's ``expression`` with the same QoS (Fast DDS: reliable,
        volatile, keep last 1). Receive times are recorded as for every other topic:
        ``tracked`` under HRI_TRACKED, every face's expression under HRI_EXPRESSION (an image's
        first), and each (face, stamp) in ``expression_faces``."""
        from hri_msgs.msg import Expression, IdsList
        from rclpy.qos import qos_profile_system_default

        self.got.setdefault(HRI_TRACKED, {})
        self.got.setdefault(HRI_EXPRESSION, {})
        #: stamp -> the face ids of that image's tracked list
        self.tracked_ids: dict[int, list[str]] = {}
        self._hri_qos = qos_profile_system_default
        self._Expression = Expression
        self._on_expression = self._recorder(HRI_EXPRESSION)
        #: (face id, stamp) of every expression received (two faces: one each per image)
        self.expression_faces: set[tuple[str, int]] = set()
        self.tracked_sub = self.node.create_subscription(IdsList, "/" + HRI_TRACKED, self._on_tracked,
                                                         self._hri_qos)

    def _on_tracked(self, msg) -> None:
        t = time.time_ns()
        with self.lock:
            self.got[HRI_TRACKED].setdefault(stamp_of(msg), t)
            self.tracked_ids[stamp_of(msg)] = list(msg.ids)
            new = [f for f in msg.ids if f not in self.face_subs]
        for face in new:  # this executor's thread: created here, as libhri does in its callback
            self.face_subs[face] = self.node.create_subscription(
                self._Expression, f"/humans/faces/{face}/expression", self._expression_of(face), self._hri_qos)

    def _expression_of(self, face: str):
        def cb(msg) -> None:
            self._on_expression(msg)  # the first expression of the image: its latency
            with self.lock:
                self.expression_faces.add((face, stamp_of(msg)))
        return cb

    @classmethod
    def for_nodes(cls, procs: "NodeProcesses", frames, timeout_s: float = 60.0,
                  final_only: bool = False) -> "Camera":
        """A camera listening to the output of every running node (``final_only``: only
        to ``emotion`` and ``attention``, as a robot's behaviour tree does; the REP-155
        producer ``hri``, when running: to ``/humans/faces/tracked`` and each face's
        ``expression``, as libhri does), its frames prepared, after a slow stream until
        every output answered (or ``timeout_s``); the topics that answered are in
        ``answering``."""
        running = procs.running()
        topics = [NODES[n][1] for n in running if n in NODES]
        if final_only:
            topics = [t for t in topics if t in FINAL_TOPICS] or topics[-1:]
        if "hri" in running:
            topics += [HRI_TRACKED, HRI_EXPRESSION]
        cam = cls(topics)
        cam.prepare(frames)
        cam.ready = cam.wait_first(list(cam.got), timeout_s=timeout_s)
        cam.answering = [t for t in cam.got if cam.got[t]]
        return cam

    def _recorder(self, topic):
        got = self.got[topic]

        def cb(msg):
            t = time.time_ns()
            with self.lock:
                got.setdefault(stamp_of(msg), t)
        return cb

    def _on_diag(self, msg) -> None:
        with self.lock:
            for st in msg.status:
                self.diag[st.name.rsplit("/", 1)[-1]] = {kv.key: kv.value for kv in st.values}

    def diag_value(self, node: str, key: str) -> float:
        with self.lock:
            try:
                return float(self.diag.get(node, {}).get(key, "nan"))
            except ValueError:
                return float("nan")

    def prepare(self, frames) -> None:
        """Build the Image messages once, so publishing costs no Python copying. They
        replace the frames prepared before, all of them."""
        self._msgs = {i: self.image_msg(f) for i, f in enumerate(frames)}

    @staticmethod
    def image_msg(rgb):
        """An rgb8 camera image of frame ``camera``; :meth:`publish` stamps it."""
        from std_msgs.msg import Header

        from emotion_perception.conversions import rgb_to_image_msg

        return rgb_to_image_msg(rgb, Header(frame_id="camera"))

    def publish(self, i: int) -> int:
        m = self._msgs[i % len(self._msgs)]
        t = time.time_ns()
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(t, 1_000_000_000)
        self.pub.publish(m)
        return t

    def stream(self, rate_hz: float, seconds: float, start_index: int = 0) -> list[int]:
        """Publish at ``rate_hz`` for ``seconds``; returns the stamps sent."""
        n = int(rate_hz * seconds)
        sent = []
        t0 = time.monotonic()
        for k in range(n):
            sent.append(self.publish(start_index + k))
            delay = t0 + (k + 1) / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return sent

    def wait_first(self, topics, timeout_s: float, rate_hz: float = 5.0) -> bool:
        """Publish slowly until every topic has answered (discovery, warm-up)."""
        end = time.monotonic() + timeout_s
        k = 0
        while time.monotonic() < end:
            self.publish(k)
            k += 1
            time.sleep(1 / rate_hz)
            with self.lock:
                if all(self.got[t] for t in topics):
                    return True
        return False

    def latencies_ms(self, topic: str, sent: list[int]) -> list[float]:
        with self.lock:
            got = self.got[topic]
            return [(got[s] - s) / 1e6 for s in sent if s in got]

    def lost_at_s(self, topic: str, sent: list[int], rate_hz: float) -> list[float]:
        """Seconds into the stream of every frame ``topic`` never answered."""
        with self.lock:
            got = self.got[topic]
            return [k / rate_hz for k, s in enumerate(sent) if s not in got]

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        self.thread.join(2.0)


def bare_latency_ms(frames, rate_hz: float, seconds: float, num_faces: int = 1,
                    cpu: dict | None = None) -> list[float]:
    """Bare MediaPipe fed at ``rate_hz`` (paced like a camera): per-frame ms from the
    frame's arrival to the result (its processing time, plus any wait behind the
    previous frame).

    ``cpu``, if given, receives ``ms_per_frame``: this process's CPU time (every thread:
    MediaPipe's own threads too) over the paced frames, divided by their number, the
    reference for the nodes' CPU per frame. Call it with no other work in the process.
    """
    from common import BareMediaPipe

    n = int(rate_hz * seconds)
    out = []
    with BareMediaPipe(num_faces) as mp_:
        for f in frames[:5]:
            mp_.detect(f)
        cpu0 = time.process_time()
        t0 = time.monotonic()
        for k in range(n):
            due = t0 + k / rate_hz
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            mp_.detect(frames[k % len(frames)])
            out.append((time.monotonic() - due) * 1e3)
        if cpu is not None:
            cpu["ms_per_frame"] = (time.process_time() - cpu0) * 1e3 / max(n, 1)
    return out


def node_table_rows(procs: NodeProcesses, sampler: Sampler, since: float):
    rows = []
    for n in procs.names:
        if n in procs.unavailable:
            rows.append((n, float("nan"), float("nan"), "not running: " + procs.unavailable[n][:70]))
            continue
        s = sampler.stats(n, since)
        rows.append((n, s["cpu_percent"], s["rss_mb_max"], "ok"))
    return rows


__all__ = ["NODES", "ALL_NODES", "HRI_NODES", "HRI_TRACKED", "HRI_EXPRESSION", "FINAL_TOPICS", "NodeProcesses",
           "Sampler", "Camera", "bare_latency_ms", "node_table_rows", "np", "sys"]
