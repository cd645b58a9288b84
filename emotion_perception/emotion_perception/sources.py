"""Frames from a video file, a folder of images, a rosbag2 or a camera, with times.

The offline ``run`` command, ``bag evaluate`` and the behaviour-tree example feed
the pipeline from these sources. Every source yields :class:`Frame` objects in order:
an RGB image, the media time (seconds from the start of the input) and, for bags, the
original message so it can be replayed byte for byte. No ROS import is needed to
read a source (rosbags reads bags without ROS).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Iterator

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".flv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
#: Frame rate assumed for a folder of images (one image every 100 ms).
DEFAULT_FOLDER_FPS = 10.0


class SourceError(ValueError):
    """The input cannot be read (missing, unsupported, empty or corrupt)."""


@dataclasses.dataclass
class Frame:
    """One input frame.

    Attributes:
        index: 0, 1, 2, ... in input order.
        time_s: media time, seconds from the first frame (for bags, from the first
            message's recording time; grows even when header stamps jump).
        rgb: (H, W, 3) uint8.
        stamp_ns: the header stamp to publish: the bag's own for bags, else
            ``None`` (the publisher derives it from ``time_s``).
        raw: the bag message's serialized CDR bytes (bags only).
        msgtype: ``sensor_msgs/msg/Image`` or ``.../CompressedImage`` (bags only).
        frame_id: the bag message's header frame_id (bags only).
    """

    index: int
    time_s: float
    rgb: np.ndarray
    stamp_ns: int | None = None
    raw: bytes | None = None
    msgtype: str | None = None
    frame_id: str = ""


class Source:
    """Base of every source: iterate for frames; ``count`` may be None (camera).

    An input that cannot be read in the middle of a source (a corrupt file in a folder
    of images, an undecodable message in a bag) is left out, not fatal: it is added to
    ``skipped`` as (where, reason) and passed to ``on_skip`` when one is set, and the
    frames after it still come.
    """

    kind = "source"
    name = ""
    fps: float | None = None
    count: int | None = None
    #: (where, reason) of every input left out so far, in input order.
    skipped: tuple[tuple[str, str], ...] = ()
    #: Called with (where, reason) as an input is left out (the ``run`` command prints it).
    on_skip = None

    def _skip(self, where: str, reason: str) -> None:
        self.skipped = (*self.skipped, (where, reason))
        if self.on_skip is not None:
            self.on_skip(where, reason)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class VideoSource(Source):
    """A video file read with OpenCV; media time from the container's timestamps."""

    kind = "video"

    def __init__(self, path: pathlib.Path, max_frames: int | None = None):
        import cv2

        self.path = path
        self.name = path.name
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise SourceError(f"{path}: OpenCV cannot open this video")
        ok, _ = cap.read()
        if not ok:
            cap.release()
            raise SourceError(f"{path}: no frame could be decoded (corrupt or unsupported codec)")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.count = min(n, max_frames) if n > 0 and max_frames else (n if n > 0 else max_frames)
        self.max_frames = max_frames
        self._cap = cap

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        i = 0
        last_t = -1.0
        while self.max_frames is None or i < self.max_frames:
            ok, bgr = self._cap.read()
            if not ok:
                break
            t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not np.isfinite(t) or t <= last_t:  # some containers give no or repeated times
                t = i / self.fps
            last_t = t
            yield Frame(index=i, time_s=t, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1

    def close(self) -> None:
        self._cap.release()


class CameraSource(VideoSource):
    """A camera (``/dev/videoN`` or an index); media time from the wall clock."""

    kind = "camera"

    def __init__(self, device: str | int, max_frames: int | None = None):
        import cv2

        self.name = str(device)
        cap = cv2.VideoCapture(device)
        if not cap.isOpened():
            raise SourceError(f"camera {device}: cannot open it (missing, busy or no permission)")
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        self.count = max_frames
        self.max_frames = max_frames
        self._cap = cap

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        t0 = time.monotonic()
        i = 0
        while self.max_frames is None or i < self.max_frames:
            ok, bgr = self._cap.read()
            if not ok:
                break
            yield Frame(index=i, time_s=time.monotonic() - t0, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1


class FolderSource(Source):
    """Every image of a folder (or one image file), in name order, ``fps`` apart; an
    unreadable file is left out (``skipped``) and keeps its place in time."""

    kind = "images"

    def __init__(self, path: pathlib.Path, fps: float = DEFAULT_FOLDER_FPS, max_frames: int | None = None):
        self.path = path
        self.name = path.name
        if path.is_file():
            self.files = [path]
        else:
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:max_frames]
        if not self.files:
            raise SourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        self.fps = fps
        self.count = len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        n = 0
        for k, f in enumerate(self.files):
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                self._skip(str(f), "not a readable image (corrupt, empty or not an image)")
                continue
            yield Frame(index=n, time_s=k / self.fps, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            n += 1


def decode_image(msg, msgtype: str) -> np.ndarray:
    """RGB uint8 from a rosbags-deserialized Image or CompressedImage.

    Raises:
        SourceError: an unsupported encoding or an undecodable compressed payload
            (the reason from :mod:`emotion_perception.imaging`).
    """
    from .imaging import ImageError, decode_compressed, raw_to_rgb

    try:
        if msgtype.endswith("CompressedImage"):
            return decode_compressed(bytes(msg.data), msg.format)
        return raw_to_rgb(msg.encoding, int(msg.width), int(msg.height), int(msg.step), bytes(msg.data))
    except ImageError as e:
        raise SourceError(str(e)) from None


def bag_typestore():
    """rosbags typestore of ROS 2 Humble (Image/CompressedImage are unchanged through Kilted)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


class BagSource(Source):
    """Image or CompressedImage messages of one topic of a rosbag2 (sqlite3 or mcap)."""

    kind = "rosbag2"

    def __init__(self, path: pathlib.Path, topic: str | None = None, max_frames: int | None = None):
        from rosbags.rosbag2 import Reader

        self.path = path
        self.name = path.name
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as e:  # rosbags raises several types for broken bags
            raise SourceError(f"{path}: not a readable rosbag2 ({e})") from None
        conns = [c for c in self._reader.connections if c.msgtype in IMAGE_MSGTYPES]
        if topic:
            conns = [c for c in conns if c.topic == topic]
        topics = sorted({c.topic for c in conns})
        if not conns:
            have = ", ".join(sorted(f"{c.topic} ({c.msgtype})" for c in self._reader.connections)) or "nothing"
            self._reader.close()
            raise SourceError(f"{path}: no sensor_msgs Image/CompressedImage topic"
                              f"{' named ' + topic if topic else ''}; the bag holds {have}")
        if len(topics) > 1:
            self._reader.close()
            raise SourceError(f"{path}: several image topics ({', '.join(topics)}); choose one with --topic")
        self.topic = topics[0]
        self.msgtype = conns[0].msgtype
        self._conns = conns
        n = sum(c.msgcount for c in conns)
        self.count = min(n, max_frames) if max_frames else n
        self.max_frames = max_frames
        dur_s = self._reader.duration / 1e9
        self.fps = (n - 1) / dur_s if n > 1 and dur_s > 0 else None
        self._typestore = bag_typestore()

    def __iter__(self) -> Iterator[Frame]:
        t0 = None
        n = 0
        for i, (conn, log_ns, raw) in enumerate(self._reader.messages(connections=self._conns)):
            if self.max_frames is not None and i >= self.max_frames:
                break
            t0 = log_ns if t0 is None else t0
            where = f"{self.topic} message {i} ({(log_ns - t0) / 1e9:.3f} s)"
            try:
                msg = self._typestore.deserialize_cdr(raw, conn.msgtype)
            except Exception as e:  # noqa: BLE001 - rosbags raises several types for bad CDR
                self._skip(where, f"not a valid {conn.msgtype} ({type(e).__name__}: {e})")
                continue
            try:
                rgb = decode_image(msg, conn.msgtype)
            except SourceError as e:
                self._skip(where, str(e))
                continue
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            yield Frame(index=n, time_s=(log_ns - t0) / 1e9, rgb=rgb,
                        stamp_ns=stamp, raw=bytes(raw), msgtype=conn.msgtype, frame_id=msg.header.frame_id)
            n += 1

    def close(self) -> None:
        self._reader.close()


def skipped_inputs(source: Source) -> list[dict]:
    """The inputs ``source`` left out, for a run's summary: [{"input", "reason"}]."""
    return [{"input": where, "reason": reason} for where, reason in source.skipped]


def open_source(spec: str | int | pathlib.Path, topic: str | None = None, fps: float | None = None,
                max_frames: int | None = None) -> Source:
    """The right source for ``spec``: video file, image folder, rosbag2 dir or camera.

    Raises:
        SourceError: the input does not exist or cannot be read, with the reason.
    """
    text = str(spec)
    if isinstance(spec, int) or text.isdigit():
        return CameraSource(int(text), max_frames=max_frames)
    path = pathlib.Path(text)
    if text.startswith("/dev/video"):
        if not path.exists():
            raise SourceError(f"{path}: no such camera device")
        return CameraSource(text, max_frames=max_frames)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "metadata.yaml").is_file() or any(path.glob("*.db3")) or any(path.glob("*.mcap")):
            return BagSource(path, topic=topic, max_frames=max_frames)
        return FolderSource(path, fps=fps or DEFAULT_FOLDER_FPS, max_frames=max_frames)
    if path.suffix in (".db3", ".mcap"):
        return BagSource(path.parent, topic=topic, max_frames=max_frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource(path, fps=fps or DEFAULT_FOLDER_FPS)
    return VideoSource(path, max_frames=max_frames)
