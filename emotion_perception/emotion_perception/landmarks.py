"""Face landmarks, blendshapes and head pose from RGB frames (no rclpy here).

A thin, tracked wrapper of MediaPipe's Tasks ``FaceLandmarker`` in VIDEO mode over the
official ``face_landmarker.task`` (verified by sha256 before loading, see
:mod:`emotion_perception.assets`). It adds what a camera stream on a robot needs:

* timestamps taken from the image stamps, made acceptable to MediaPipe, which in VIDEO
  mode needs strictly increasing milliseconds:

  - **time going backwards** (a bag that loops, a simulator reset): the MediaPipe
    landmarker is closed and recreated and the face tracks end (new ids follow), so
    nothing crashes and no state leaks across the jump;
  - **the image size changes** (another camera mode): recreated as well, since
    MediaPipe would otherwise track the old face regions and miss every face for
    one frame;
  - **a repeated or sub-millisecond stamp** (a driver that leaves stamps at zero,
    frames 0.4 ms apart): the frame is still processed, with MediaPipe's timestamp
    moved on by 1 ms past the previous one (``max(stamp_ms, previous + 1)``), so
    every frame given gets a result;

* stable face ids (:class:`~emotion_perception.tracking.FaceTracker`);
* results as :class:`~emotion_perception.types.Face` arrays rather than lists of
  per-landmark objects.

Example::

    with FaceLandmarker(LandmarkerOptions(max_faces=2)) as landmarker:
        for stamp_ns, rgb in frames:
            for face in landmarker.process(rgb, stamp_ns):
                print(face.face_id, face.blendshapes[Blendshape.mouthSmileLeft])
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import sys

import numpy as np

from .assets import verified_path
from .imaging import check_rgb
from .tracking import FaceTracker, TrackerOptions
from .types import BLENDSHAPE_NAMES, MAX_FACES_LIMIT, NUM_BLENDSHAPES, NUM_LANDMARKS, BoundingBox, Face

#: The shipped model (Google's float16 v1 Face Landmarker, Apache-2.0).
DEFAULT_MODEL = "face_landmarker.task"
_NS_PER_MS = 1_000_000
#: Upper bound of :attr:`LandmarkerOptions.search_period_s`, seconds.
MAX_SEARCH_PERIOD_S = 10.0


_MEDIAPIPE = None


def import_mediapipe():
    """Import MediaPipe's Tasks API without letting it import TensorFlow.

    ``mediapipe.tasks`` tries ``from tensorflow.tools.docs import doc_controls`` (a
    documentation decorator it replaces by a no-op when TensorFlow is absent). Where
    TensorFlow is installed (the development venv) that costs about 5 s and hundreds
    of MB per process, and nodes must not import TensorFlow; so TensorFlow is hidden
    while MediaPipe loads. A process that already imported TensorFlow is left alone.

    Returns:
        (``mediapipe`` module, ``mediapipe.tasks.python.vision``, ``BaseOptions``).
    """
    global _MEDIAPIPE
    if _MEDIAPIPE is not None:
        return _MEDIAPIPE
    hide = "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]  # makes `import tensorflow` fail fast
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    finally:
        if hide and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    _MEDIAPIPE = (mp, vision, BaseOptions)
    return _MEDIAPIPE


class DirectDetect:
    """``detect_for_video`` of one MediaPipe landmarker called on the calling thread,
    its result read into arrays straight from MediaPipe's C structs.

    MediaPipe's Python Tasks API (1.x, ctypes over its C API) sends every call through
    a ``SerialDispatcher``: a one-thread ``ThreadPoolExecutor`` per landmarker, so each
    frame is handed to that thread and the result handed back (two thread wake-ups),
    and the result becomes 478 ``NormalizedLandmark`` and 52 ``Category`` Python
    objects per face before this module makes arrays of them. Measured on 640x480 with
    one face (2 cores, MediaPipe 1.2.2): 6.1-6.2 ms per frame back to back through
    ``detect_for_video`` against 5.5 here, 7.0-8.2 ms against 6.2-6.4 at 30 Hz (where the
    dispatcher thread sleeps between frames); the arrays are identical. The dispatcher
    only serialises the calls of one landmarker, which :class:`FaceLandmarker` already
    requires of its caller (one thread per landmarker).

    The C function, its argument types and the result structs are MediaPipe's own
    (``mediapipe.tasks.python``); :meth:`create` returns None where they are not what
    this was written against, and the public call is used instead.
    """

    def __init__(self, landmarker, result_cls, landmark_cls, category_cls, handle_status):
        self._raw = landmarker._lib._lib  # the ctypes.CDLL under the dispatcher
        self._fn = self._raw.MpFaceLandmarkerDetectForVideo
        self._close_result = self._raw.MpFaceLandmarkerCloseResult
        self._error_free = self._raw.MpErrorFree
        self._landmarker = landmarker
        self._result_cls = result_cls
        self._handle_status = handle_status
        self._landmark = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3,
                                   "offsets": [landmark_cls.x.offset, landmark_cls.y.offset, landmark_cls.z.offset],
                                   "itemsize": ctypes.sizeof(landmark_cls)})
        self._category = np.dtype({"names": ["index", "score"], "formats": ["<i4", "<f4"],
                                   "offsets": [category_cls.index.offset, category_cls.score.offset],
                                   "itemsize": ctypes.sizeof(category_cls)})

    @classmethod
    def create(cls, landmarker) -> "DirectDetect | None":
        """For a ``vision.FaceLandmarker``; None where MediaPipe's internals differ."""
        try:
            from mediapipe.tasks.python.components.containers import category_c, landmark_c
            from mediapipe.tasks.python.core import mediapipe_c_utils
            from mediapipe.tasks.python.vision import face_landmarker

            result_cls = face_landmarker.MpFaceLandmarkerResultC
            fields = dict(result_cls._fields_)
            fn = landmarker._lib._lib.MpFaceLandmarkerDetectForVideo
            landmarker._handle  # noqa: B018 - must exist
            if (not isinstance(landmarker._lib._lib, ctypes.CDLL) or fn.restype is not ctypes.c_int
                    or len(fn.argtypes or ()) != 6
                    or fields.get("face_landmarks") is not ctypes.POINTER(landmark_c.MpNormalizedLandmarksC)
                    or fields.get("face_blendshapes") is not ctypes.POINTER(category_c.MpCategoriesC)
                    or dict(landmark_c.MpNormalizedLandmarkC._fields_).get("x") is not ctypes.c_float
                    or dict(category_c.MpCategoryC._fields_).get("index") is not ctypes.c_int
                    or dict(category_c.MpCategoryC._fields_).get("score") is not ctypes.c_float):
                return None
            return cls(landmarker, result_cls, landmark_c.MpNormalizedLandmarkC, category_c.MpCategoryC,
                       mediapipe_c_utils.handle_status)
        except (ImportError, AttributeError, TypeError):
            return None

    def _array(self, pointer, count: int, dtype: np.dtype) -> np.ndarray:
        """A view of ``count`` C structs at ``pointer`` (valid until the result is closed)."""
        if count == 0:
            return np.zeros(0, dtype)
        address = ctypes.cast(pointer, ctypes.c_void_p).value
        return np.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(address), dtype)

    def __call__(self, image, timestamp_ms: int, names: bool = False) -> list[tuple]:
        """Per face, copied out of MediaPipe's result: (landmarks (N, 3) float32,
        blendshape indices, their scores, their names (with ``names``, else None),
        transform (4, 4) float32).

        Raises:
            ValueError, RuntimeError: as ``detect_for_video`` (MediaPipe's status).
        """
        result = self._result_cls()
        error = ctypes.c_char_p()
        status = self._fn(self._landmarker._handle, image._image_ptr, None, int(timestamp_ms),
                          ctypes.byref(result), ctypes.byref(error))
        try:
            self._handle_status(status, error)
        finally:
            if error.value is not None:
                self._error_free(error)
        faces = []
        try:
            n = result.face_landmarks_count
            if result.face_blendshapes_count != n or result.facial_transformation_matrixes_count != n:
                raise RuntimeError(f"MediaPipe returned {n} faces but {result.face_blendshapes_count} blendshape "
                                   f"sets and {result.facial_transformation_matrixes_count} pose matrices")
            for i in range(n):
                lc, cc = result.face_landmarks[i], result.face_blendshapes[i]
                lm = self._array(lc.landmarks, lc.landmarks_count, self._landmark)
                shapes = self._array(cc.categories, cc.categories_count, self._category)
                faces.append((np.stack([lm["x"], lm["y"], lm["z"]], axis=1),
                              shapes["index"].copy(), shapes["score"].copy(),
                              [(cc.categories[k].category_name or b"").decode() for k in range(cc.categories_count)]
                              if names else None,
                              np.asarray(result.facial_transformation_matrixes[i].to_numpy(),
                                         dtype=np.float32).reshape(4, 4)))
        finally:
            self._close_result(ctypes.byref(result))
        return faces


#: A stamp older than the previous image's by more than this is time jumping back (a
#: bag that loops, a simulator reset: everything restarts); by up to this, a late frame
#: (network jitter, a driver that reorders) that is processed in arrival order, ns.
LATE_FRAME_TOLERANCE_NS = 1_000_000_000


class StreamClock:
    """Image time that never goes back, from header stamps and arrival times.

    Cameras do not all stamp their images: many USB drivers and some bag tools leave
    ``header.stamp`` at 0 or repeat it, and over a network a frame can arrive after a
    newer one. Per image (in arrival order), :meth:`__call__` returns

    * the stamp, when it is newer than the previous image's;
    * else (stamp 0, the same stamp again, or a stamp up to
      :data:`LATE_FRAME_TOLERANCE_NS` older than the previous one) the previous image
      time plus the time between the two arrivals, so that durations (blinks,
      smoothing, track gaps) stay right and the image keeps its place in the stream;
    * the stamp itself when it jumped back by more than the tolerance: a new timeline,
      on which trackers and landmarkers restart.

    Image times are strictly increasing within a timeline (at least 1 ns apart).
    """

    #: What :meth:`__call__` reports besides the time: a kind of stamp fault or None.
    MISSING, REPEATED, LATE, JUMP = "missing", "repeated", "late", "jump"

    def __init__(self, tolerance_ns: int = LATE_FRAME_TOLERANCE_NS):
        self.tolerance_ns = int(tolerance_ns)
        self._stamp: int | None = None  # previous image's header stamp
        self._time = 0  # previous image time
        self._arrival = 0  # previous arrival, ns of any monotonic clock

    def __call__(self, stamp_ns: int, arrival_ns: int) -> tuple[int, str | None]:
        """(image time ns, fault kind or None) of the next image in arrival order."""
        stamp_ns, arrival_ns = int(stamp_ns), int(arrival_ns)
        prev, self._stamp = self._stamp, stamp_ns
        since, self._arrival = max(1, arrival_ns - self._arrival), arrival_ns
        if prev is None:
            kind = self.MISSING if stamp_ns == 0 else None
            self._time = stamp_ns
        elif stamp_ns > prev:
            kind = None
            self._time = max(stamp_ns, self._time + 1)
        elif prev - stamp_ns > self.tolerance_ns:
            kind = self.JUMP
            self._time = stamp_ns
        else:
            kind = self.MISSING if stamp_ns == 0 else self.REPEATED if stamp_ns == prev else self.LATE
            self._time += since
        return self._time, kind


@dataclasses.dataclass(frozen=True)
class LandmarkerOptions:
    """Options of :class:`FaceLandmarker` (MediaPipe's names where they exist).

    Attributes:
        model_path: a file name in the package's ``models/`` or a path; it must be
            listed in ``models/SHA256SUMS``.
        max_faces: most faces returned per frame, [1, :data:`MAX_FACES_LIMIT`].
        min_face_detection_confidence: face detector threshold, [0, 1].
        min_face_presence_confidence: landmark model's face presence threshold, [0, 1].
        min_tracking_confidence: below this MediaPipe re-runs detection instead of
            tracking from the previous frame, [0, 1].
        search_period_s: 0 (default): look for new faces on every frame while fewer
            than ``max_faces`` are tracked, as MediaPipe does. Above 0, with
            ``max_faces`` > 1: while at most one face is in view, look for more once
            per this much image time (seconds) and track the one face in between
            (:class:`FaceLandmarker`).
        tracker: how ids are kept across frames.
    """

    model_path: str = DEFAULT_MODEL
    max_faces: int = 2
    min_face_detection_confidence: float = 0.5
    min_face_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    search_period_s: float = 0.0
    tracker: TrackerOptions = dataclasses.field(default_factory=TrackerOptions)

    def __post_init__(self):
        if not 1 <= int(self.max_faces) <= MAX_FACES_LIMIT:
            raise ValueError(f"max_faces={self.max_faces} must be in [1, {MAX_FACES_LIMIT}]")
        if not 0.0 <= self.search_period_s <= MAX_SEARCH_PERIOD_S:
            raise ValueError(f"search_period_s={self.search_period_s} must be in [0, {MAX_SEARCH_PERIOD_S}]")
        for name in ("min_face_detection_confidence", "min_face_presence_confidence",
                     "min_tracking_confidence"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}={v} must be in [0, 1]")


def _bbox_and_score(landmarks: np.ndarray, width: int, height: int) -> tuple[BoundingBox, float]:
    """Pixel box of the landmarks clipped to the image, and the fraction inside it."""
    x, y = landmarks[:, 0], landmarks[:, 1]
    inside = (x >= 0.0) & (x <= 1.0) & (y >= 0.0) & (y <= 1.0)
    x0 = min(max(math.floor(float(x.min()) * width), 0), width)
    x1 = min(max(math.ceil(float(x.max()) * width), 0), width)
    y0 = min(max(math.floor(float(y.min()) * height), 0), height)
    y1 = min(max(math.ceil(float(y.max()) * height), 0), height)
    return BoundingBox(x0, y0, x1 - x0, y1 - y0), float(inside.mean())


@dataclasses.dataclass
class Detections:
    """One frame's faces as MediaPipe found them, before they get ids."""

    stamp_ns: int
    image_wh: tuple[int, int]
    landmarks: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)
    blendshapes: list = dataclasses.field(default_factory=list)
    transforms: list = dataclasses.field(default_factory=list)

    def faces(self, ids: list[str]) -> list[Face]:
        """The detections as :class:`Face` objects with the tracker's ``ids``."""
        return [Face(face_id=ids[i], landmarks=self.landmarks[i], blendshapes=self.blendshapes[i],
                     transform=self.transforms[i], bbox=self.boxes[i], score=self.scores[i],
                     image_wh=self.image_wh) for i in range(len(ids))]


class FaceIdentifier:
    """Face ids for detections given in stream order: a :class:`FaceTracker` whose
    tracks end where a landmarker restarts (stamps going back, image size changing).

    :meth:`FaceLandmarker.process` uses one; so does ``landmark_node``, whose
    landmarkers (``workers``) detect consecutive images concurrently and hand their
    :class:`Detections` over in image order.
    """

    def __init__(self, options: TrackerOptions | None = None):
        self.tracker = FaceTracker(options)
        self._last: tuple[int, tuple[int, int]] | None = None  # (stamp ms, image size) of the previous frame

    def reset(self) -> None:
        """End every track (ids keep counting)."""
        self.tracker.reset()
        self._last = None

    def faces(self, det: Detections) -> list[Face]:
        """``det`` as :class:`Face` objects with ids."""
        key = (det.stamp_ns // _NS_PER_MS, det.image_wh)
        if self._last is not None and (key[0] < self._last[0] or key[1] != self._last[1]):
            self.tracker.reset()
        self._last = key
        return det.faces(self.tracker.update(det.boxes, det.stamp_ns))


def _public_call(landmarker, image, ts: int) -> list[tuple]:
    """:class:`DirectDetect`'s tuples through MediaPipe's public ``detect_for_video``."""
    result = landmarker.detect_for_video(image, ts)
    return [(np.array([(p.x, p.y, p.z) for p in lms], dtype=np.float32),
             np.array([c.index for c in result.face_blendshapes[i]], dtype=np.int64),
             np.array([c.score for c in result.face_blendshapes[i]], dtype=np.float32),
             [c.category_name for c in result.face_blendshapes[i]],
             np.asarray(result.facial_transformation_matrixes[i], dtype=np.float32).reshape(4, 4))
            for i, lms in enumerate(result.face_landmarks)]


class _Graph:
    """One MediaPipe landmarker: its own ``num_faces`` and tracking state, and how it is called."""

    def __init__(self, landmarker, direct: DirectDetect | None, num_faces: int):
        self.mp = landmarker
        self.direct = direct
        self.num_faces = num_faces
        #: Faces it returned on the frame it last looked at.
        self.last_found = 0

    def __call__(self, image, ts: int, names: bool) -> list[tuple]:
        faces = self.direct(image, ts, names=names) if self.direct is not None else _public_call(self.mp, image, ts)
        self.last_found = len(faces)
        return faces

    def close(self) -> None:
        self.direct = None
        self.mp.close()


class FaceLandmarker:
    """MediaPipe Face Landmarker (VIDEO mode) with image-stamp timing, face ids, and a
    search for new faces paced by image time.

    MediaPipe's VIDEO mode tracks each face from the previous frame's landmarks and runs
    its face detector on a frame only while it tracks fewer faces than its ``num_faces``.
    With ``max_faces`` 2 and one person in view that is every frame: more CPU, and the
    landmarks start from the detector's box instead of the tracked region, so
    blendshapes jitter more (``benchmarks/max_faces.py``). So where ``max_faces`` > 1 and
    ``search_period_s`` > 0, two MediaPipe landmarkers are kept (about 26 MB more):

    * one with ``num_faces`` 1 sees every frame while at most one face is in view;
    * one with ``num_faces`` = ``max_faces`` searches: it also looks at the first frame
      and then at one frame per ``search_period_s`` of image time, and at a frame on
      which the one tracked face was lost (it moved fast, or left while another
      stays); its faces are taken when it finds more than the first, and it alone
      sees the frames while two or more faces are in view.

    With one face in view the results are therefore exactly MediaPipe's with
    ``num_faces`` 1. A face that enters is found within ``search_period_s`` and two
    frames; every face gets its id from the same tracker whichever landmarker found it.

    Usable as a context manager; not thread-safe (call :meth:`process` from one
    thread).

    Args:
        options: what to load and how to detect and track.

    Raises:
        emotion_perception.assets.ModelFileError: the model file is missing, unlisted
            or its sha256 differs (the message names the file and the expected digest).
        ValueError: invalid options.
        RuntimeError: MediaPipe could not create the task from the verified file.
    """

    #: Call MediaPipe through :class:`DirectDetect` where its internals allow (False:
    #: always through the public ``detect_for_video``; for comparisons).
    direct_call = True

    def __init__(self, options: LandmarkerOptions | None = None):
        self.options = options or LandmarkerOptions()
        self.model_path = verified_path(self.options.model_path)
        self.ids = FaceIdentifier(self.options.tracker)
        #: How often the MediaPipe landmarker was recreated (time went backwards).
        self.recreated = 0
        #: Frames looked at with ``num_faces`` = ``max_faces`` (every frame where
        #: ``max_faces`` is 1 or ``search_period_s`` is 0).
        self.searches = 0
        self._last_stamp_ms: int | None = None
        self._last_mp_ms: int | None = None
        self._last_wh: tuple[int, int] | None = None
        self._names_checked = False
        self._graphs: dict[int, _Graph] = {}
        self._open()

    # ------------------------------------------------------------ lifecycle

    def _create(self, num_faces: int):
        _, vision, BaseOptions = import_mediapipe()

        o = self.options
        mp_options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=int(num_faces),
            min_face_detection_confidence=float(o.min_face_detection_confidence),
            min_face_presence_confidence=float(o.min_face_presence_confidence),
            min_tracking_confidence=float(o.min_tracking_confidence),
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            return vision.FaceLandmarker.create_from_options(mp_options)
        except (ValueError, RuntimeError) as e:
            raise RuntimeError(f"MediaPipe could not load {self.model_path}: {e}") from e

    @property
    def tracks_one_face_apart(self) -> bool:
        """Whether a landmarker with ``num_faces`` 1 tracks a lone face between searches."""
        return int(self.options.max_faces) > 1 and self.options.search_period_s > 0

    def _open(self) -> None:
        sizes = (1, int(self.options.max_faces)) if self.tracks_one_face_apart else (int(self.options.max_faces),)
        try:
            for n in sizes:
                landmarker = self._create(n)
                self._graphs[n] = _Graph(landmarker, DirectDetect.create(landmarker) if self.direct_call else None, n)
        except BaseException:
            self._close_mp()
            raise
        self._in_view = 0  # faces found on the previous frame
        self._last_search_ms: int | None = None

    def _close_mp(self) -> None:
        graphs, self._graphs = self._graphs, {}
        for g in graphs.values():
            g.close()

    def reset(self) -> None:
        """Recreate the MediaPipe landmarkers and end every track (ids keep counting).

        Call it between unrelated images (a photo collection): VIDEO mode tracks the
        previous frame's faces and, when the scene changes completely while
        ``max_faces`` faces were tracked, misses the new faces for one frame.
        """
        self._restart()
        self.ids.reset()
        self.recreated += 1

    def _restart(self) -> None:
        """New MediaPipe landmarkers, no timestamps remembered."""
        self._close_mp()
        self._open()
        self._last_stamp_ms = self._last_mp_ms = None

    def warm_up(self, frames: int = 3) -> None:
        """Run each MediaPipe landmarker on a drawn face a few times, then start clean.

        A new landmarker's first call costs more than the later ones (18-21 ms against
        7-9 ms here, 640x480); warming up pays that before the camera's first frame.
        The landmarkers are recreated afterwards (not counted in :attr:`recreated`), so
        no track, timestamp or id comes from the drawing. (A 0.25 s stall on the first
        frame that met a live track, once blamed on MediaPipe here, was the tracker's
        lazy import of scipy.optimize, now imported with :mod:`.tracking`.)
        """
        from .imaging import drawn_face

        mp, _, _ = import_mediapipe()
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=drawn_face())
        for graph in self._graphs.values():
            for i in range(frames):
                graph(image, i + 1, names=False)
        self._restart()
        self._last_wh = None

    def update_options(self, options: LandmarkerOptions) -> None:
        """Apply new options (same model): recreates the landmarkers, tracks end."""
        if options.model_path != self.options.model_path:
            raise ValueError("model_path cannot change on a running landmarker")
        self.options = options
        self.ids.tracker.options = options.tracker
        self.reset()

    def close(self) -> None:
        """Release MediaPipe's resources; :meth:`process` fails afterwards."""
        self._close_mp()

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ processing

    def _timestamp_ms(self, stamp_ns: int) -> int:
        stamp_ms = int(stamp_ns) // _NS_PER_MS
        if self._last_stamp_ms is not None and stamp_ms < self._last_stamp_ms:
            self.reset()
        ts = stamp_ms if self._last_mp_ms is None else max(stamp_ms, self._last_mp_ms + 1)
        self._last_stamp_ms = stamp_ms
        self._last_mp_ms = ts
        return ts

    def _look(self, image, ts: int) -> list[tuple]:
        """MediaPipe's faces of one frame: from the tracking landmarker, and from the
        searching one when a search is due, the tracked face was lost, or two or more
        faces are in view."""
        names = not self._names_checked
        one = self._graphs.get(1) if self.tracks_one_face_apart else None
        if one is None or self._in_view >= 2:
            faces = self._search(image, ts, names)
        else:
            faces = one(image, ts, names)
            due = (self._last_search_ms is None
                   or ts - self._last_search_ms >= round(self.options.search_period_s * 1000.0))
            if due or (self._in_view and not faces):
                found = self._search(image, ts, names)
                # The tracked face keeps the tracking landmarker's result (the two differ
                # by more than the frame-to-frame jitter) unless the search found more.
                if len(found) > len(faces):
                    faces = found
        self._in_view = len(faces)
        return faces

    def _search(self, image, ts: int, names: bool) -> list[tuple]:
        """The frame through the landmarker with ``num_faces`` = ``max_faces``."""
        wide = self._graphs[int(self.options.max_faces)]
        # One that tracked max_faces faces when it last looked runs no detector now (it
        # only follows those regions): then search again on the next frame.
        tracked_only = wide.last_found >= wide.num_faces
        faces = wide(image, ts, names)
        self.searches += 1
        self._last_search_ms = None if tracked_only and len(faces) < wide.num_faces else ts
        return faces

    def detect(self, rgb: np.ndarray, stamp_ns: int) -> "Detections":
        """The faces of one frame without ids: :meth:`process` less the tracker.

        Several landmarkers can detect the frames of one stream concurrently (one
        thread each, frames in order per landmarker) when one :class:`FaceIdentifier`
        then gives ids to their detections in stream order (``landmark_node`` with
        ``workers`` > 1).

        Args:
            rgb: (height, width, 3) uint8 RGB image.
            stamp_ns: the image's capture time, integer nanoseconds (the ROS header
                stamp). Earlier than the previous frame's: the landmarker is
                recreated first; equal (to the millisecond): processed anyway.
                A frame of another size than the previous one also recreates it.

        Returns:
            :class:`Detections` of at most ``max_faces`` faces (none when there is
            no face).

        Raises:
            ValueError: ``rgb`` is not a non-empty (h, w, 3) uint8 array.
            RuntimeError: the landmarker was closed, or MediaPipe failed.
        """
        mp, _, _ = import_mediapipe()
        if not self._graphs:
            raise RuntimeError("FaceLandmarker is closed")
        rgb = check_rgb(rgb)
        height, width = rgb.shape[:2]
        if self._last_wh is not None and self._last_wh != (width, height):
            # MediaPipe would track last frame's face regions on a differently sized
            # image, miss every face for a frame and only then re-detect.
            self.reset()
        self._last_wh = (width, height)
        ts = self._timestamp_ms(stamp_ns)
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        faces = self._look(image, ts)
        det = Detections(stamp_ns=int(stamp_ns), image_wh=(width, height))
        for landmarks, shape_index, shape_scores, shape_names, transform in faces:
            if landmarks.shape != (NUM_LANDMARKS, 3):
                raise RuntimeError(f"MediaPipe returned {landmarks.shape[0]} landmarks, expected "
                                   f"{NUM_LANDMARKS}: is {self.model_path.name} the v1 face model?")
            box, score = _bbox_and_score(landmarks, width, height)
            det.landmarks.append(landmarks)
            det.boxes.append(box)
            det.scores.append(score)
            det.blendshapes.append(self._blendshapes(shape_index, shape_scores, shape_names))
            det.transforms.append(transform)
        return det

    def process(self, rgb: np.ndarray, stamp_ns: int) -> list[Face]:
        """Find, measure and identify the faces of one frame (arguments and errors as
        :meth:`detect`).

        Returns:
            One :class:`~emotion_perception.types.Face` per face found (at most
            ``max_faces``), ``[]`` when there is none.
        """
        return self.ids.faces(self.detect(rgb, stamp_ns))

    def _blendshapes(self, index: np.ndarray, score: np.ndarray, names: list[str] | None) -> np.ndarray:
        """The 52 scores in :data:`BLENDSHAPE_NAMES`' order; the names (given until
        checked) are checked once per landmarker."""
        if len(index) != NUM_BLENDSHAPES or len(score) != NUM_BLENDSHAPES:
            raise RuntimeError(f"MediaPipe returned {len(index)} blendshapes, expected {NUM_BLENDSHAPES}")
        if not self._names_checked:
            for k, name in zip(index.tolist(), names or [None] * NUM_BLENDSHAPES):
                expected = BLENDSHAPE_NAMES[k] if 0 <= k < NUM_BLENDSHAPES else None
                if name != expected:
                    raise RuntimeError(f"blendshape {k} is {name!r}, expected {expected!r}: unexpected model version")
            self._names_checked = True
        scores = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
        scores[index] = score
        return scores
