"""Shared pieces of the benchmarks: frames made of real face photos, bare MediaPipe as
the reference every figure is compared with, per-process CPU and memory from /proc,
and tables that print and land in ``benchmarks/results/`` (markdown + JSON).

Every benchmark measures the package against bare MediaPipe Face Landmarker (VIDEO
mode, same frames, same run), so a number is always read next to what the landmarker
alone costs on this machine at that moment.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Any, Iterable, Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
PKG = REPO / "emotion_perception"
RESULTS = REPO / "benchmarks" / "results"
DATA = pathlib.Path(os.environ.get("EMOTION_PERCEPTION_DATA", REPO.parent / "shared" / "data"))
#: The venv that runs the benchmark, when it is one of the repository's (``.venv``:
#: ROS 2 Kilted, ``.venv-jazzy``: Jazzy, ``make bench ROS_DISTRO=jazzy``); the node
#: processes it starts run on the same one.
_PREFIX = pathlib.Path(sys.prefix)
VENV = _PREFIX if _PREFIX.parent == REPO and _PREFIX.name.startswith(".venv") else REPO / ".venv"
VENV_PY = VENV / "bin" / "python"
#: ROS 2 distribution of that venv; tables of another than Kilted (the default) are
#: saved under names ending in ``_<distro>``, beside Kilted's.
ROS_DISTRO = VENV.name.removeprefix(".venv").removeprefix("-") or "kilted"

if str(PKG) not in sys.path:  # the package is installed editable; this only helps odd setups
    sys.path.insert(1, str(PKG))

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
#: LFW-style 350x350 photos of the shared set, the face roughly centred; these four are
#: all found by MediaPipe in every layout and resolution below (checked).
TILE_FILL = 0.85
PHOTO_CROP = slice(60, 290)
FACE_PHOTOS = ("Arnold_Schwarzenegger_0023.jpg", "Ellen_DeGeneres_0002.jpg", "Larry_Brown_0007.jpg",
               "Mike_Brey_0001.jpg")


def data_dir(arg: str | os.PathLike | None = None) -> pathlib.Path:
    d = pathlib.Path(arg) if arg else DATA
    if not d.is_dir():
        raise SystemExit(f"shared data not found at {d}; pass --data or set EMOTION_PERCEPTION_DATA")
    return d


def isolate_domain() -> int:
    """Use a ROS domain of our own so other people's nodes on this host do not mix in.

    Child processes inherit it through the environment. Returns the domain id.
    """
    if "ROS_DOMAIN_ID" not in os.environ:
        os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
    return int(os.environ["ROS_DOMAIN_ID"])


# --------------------------------------------------------------------------- frames

def _read_rgb(path: pathlib.Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compose_frames(width: int, height: int, faces: int, count: int, data: pathlib.Path | None = None,
                   seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB frames of ``width``x``height`` holding ``faces`` real face photos.

    The photos sit in a grid (1 = centre, 2 = side by side, 4 = 2x2), each tile about
    60% of the frame height over the number of rows, and drift a few pixels from frame
    to frame like a person in front of a camera, so the landmarker tracks rather than
    sees the same still image.
    """
    import cv2

    folder = data_dir(data) / "muxspace" / "images"
    # the central part of each photo: head and a little hair and neck
    photos = [_read_rgb(folder / n)[PHOTO_CROP, PHOTO_CROP] for n in FACE_PHOTOS[:faces]]
    cols = 1 if faces == 1 else 2
    rows = 1 if faces <= 2 else 2
    tile = int(min(height / rows, width / cols) * TILE_FILL)
    photos = [cv2.resize(p, (tile, tile), interpolation=cv2.INTER_AREA) for p in photos]
    rng = np.random.default_rng(seed)
    background = np.full((height, width, 3), 90, np.uint8)
    frames = []
    drift = np.zeros(2)
    for _ in range(count):
        drift = np.clip(drift + rng.normal(0, 1.5, 2), -8, 8)
        f = background.copy()
        for i, p in enumerate(photos):
            r, c = divmod(i, cols)
            x0 = int((c + 0.5) * width / cols - tile / 2 + drift[0])
            y0 = int((r + 0.5) * height / rows - tile / 2 + drift[1])
            x0 = max(0, min(width - tile, x0))
            y0 = max(0, min(height - tile, y0))
            f[y0:y0 + tile, x0:x0 + tile] = p
        frames.append(f)
    return frames


def video_frames(path: pathlib.Path, limit: int | None = None) -> list[np.ndarray]:
    """Decode a video into RGB frames (at most ``limit``)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise RuntimeError(f"no frames decoded from {path}")
    return frames


# ------------------------------------------------------------------ bare MediaPipe

class BareMediaPipe:
    """MediaPipe Face Landmarker alone: VIDEO mode, blendshapes and matrices on, the
    package's verified ``face_landmarker.task``. The reference of every benchmark.
    """

    def __init__(self, num_faces: int = 1):
        from mediapipe.tasks.python import BaseOptions, vision

        from emotion_perception.assets import verified_path

        self._vision = vision
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(verified_path("face_landmarker.task"))),
            running_mode=vision.RunningMode.VIDEO, num_faces=num_faces,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._lm = vision.FaceLandmarker.create_from_options(opts)
        self._ts_ms = 0

    def detect(self, rgb: np.ndarray):
        import mediapipe as mp

        self._ts_ms += 33
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        return self._lm.detect_for_video(image, self._ts_ms)

    def timed(self, rgb: np.ndarray) -> tuple[float, int]:
        """(milliseconds, faces found) for one frame."""
        t0 = time.perf_counter()
        r = self.detect(rgb)
        return (time.perf_counter() - t0) * 1e3, len(r.face_landmarks)

    def close(self) -> None:
        self._lm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bare_max_fps(frames: Sequence[np.ndarray], num_faces: int = 1, repeats: int = 1) -> tuple[float, list[float]]:
    """Bare MediaPipe as fast as it goes over ``frames``: (frames per second, per-frame ms)."""
    with BareMediaPipe(num_faces) as mp_:
        for f in frames[:5]:
            mp_.detect(f)
        times = []
        t0 = time.perf_counter()
        for _ in range(repeats):
            for f in frames:
                times.append(mp_.timed(f)[0])
        wall = time.perf_counter() - t0
    return len(times) / wall, times


# ------------------------------------------------------------------------- stats

def pct(values: Iterable[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q / 100.0
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    return float(v[lo] + (v[hi] - v[lo]) * (k - lo))


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "mean": float("nan"), "p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    return {"n": len(values), "mean": float(statistics.fmean(values)), "p50": pct(values, 50),
            "p95": pct(values, 95), "p99": pct(values, 99)}


def ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def blendshape_jitter(scores: np.ndarray) -> float:
    """Mean absolute frame-to-frame change of the blendshape scores (frames x 52; NaN
    rows where no face), x 1000: how much a steady face's output flickers."""
    return float(np.nanmean(np.abs(np.diff(scores, axis=0)))) * 1e3


# ------------------------------------------------------------------ /proc stats

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK_TCK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads, summed per thread-name group: ``executor``
    (the pipeline's executor thread), ``lm-worker`` (the landmark node's MediaPipe
    callers), ``drishti`` (MediaPipe's own threads), ``dds`` (Fast DDS's receive and
    event threads), ``main`` (the main thread: where a node process's executor spins),
    ``lm-executor`` (the landmark node's own executor thread in the pipeline), ``litert``
    (LiteRT's pool threads: the image model's second thread), ``python``
    (the other unnamed Python threads: MediaPipe's serial dispatchers, one
    ThreadPoolExecutor per landmarker) and ``other``."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        parts = text.rsplit(")", 1)[1].split()
        group = "main" if int(tid) == pid else next(
            (g for g in ("executor", "lm-worker", "lm-executor", "drishti", "dds", "litert", "python")
             if name.startswith(g)),
            "other")
        out[group] = out.get(group, 0.0) + (int(parts[11]) + int(parts[12])) / CLK_TCK
    return out


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"when_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "ros_distro": ROS_DISTRO, "cpus": os.cpu_count(), "load_1min": round(load[0], 2),
            "python": platform.python_version(), "machine": platform.machine()}


# ------------------------------------------------------------------------ tables

@dataclasses.dataclass
class Table:
    """A result table: printed (rich when available), saved as markdown and JSON."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, *row: Any) -> None:
        self.rows.append(list(row))

    @staticmethod
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v != v:
                return "n/a"
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(self.fmt(v) for v in r) + " |" for r in self.rows]
        m = machine()
        lines += ["", f"_Measured {m['when_utc']}, ROS 2 {m['ros_distro'].capitalize()}, {m['cpus']} CPUs, "
                      f"load {m['load_1min']} "
                      f"(1 min) at the end; command: `{command_line()}`._"]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def show(self) -> None:
        try:
            from rich.console import Console
            from rich.table import Table as RichTable

            t = RichTable(title=self.title)
            console = Console(width=max(120, Console().width))
            for c in self.columns:
                t.add_column(c)
            for r in self.rows:
                t.add_row(*(self.fmt(v) for v in r))
            console.print(t)
            for n in self.notes:
                console.print(f"  {n}", highlight=False)
        except ImportError:  # plain text
            print(self.markdown())

    @property
    def file_name(self) -> str:
        """``name``, with ``_<distro>`` where the venv is not Kilted's."""
        return self.name if ROS_DISTRO == "kilted" else f"{self.name}_{ROS_DISTRO}"

    def save(self, results: pathlib.Path = RESULTS) -> pathlib.Path:
        results.mkdir(parents=True, exist_ok=True)
        md = results / f"{self.file_name}.md"
        md.write_text(self.markdown())
        (results / f"{self.file_name}.json").write_text(json.dumps(
            {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes,
             "data": self.data, "machine": machine(), "command": command_line()},
            indent=1, default=_json_default) + "\n")
        return md

    def done(self) -> None:
        self.show()
        self.save()


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def command_line() -> str:
    argv = [pathlib.Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)]
    return f"{VENV.name}/bin/python benchmarks/" + " ".join(argv)  # .venv (Kilted) or .venv-jazzy


def read_labels(folder: pathlib.Path) -> dict[str, str]:
    with open(folder / "labels.csv") as f:
        return {r["image"]: r["label"] for r in csv.DictReader(f)}
