"""Everything about one face's attention, per frame, with per-face temporal state.

:class:`AttentionEstimator` combines head pose, gaze, eye and mouth states, blinks,
PERCLOS, talking and looking-at-camera for every tracked face id; the temporal parts
(blinks, PERCLOS, talking, looking hysteresis) keep one state per face id until
:meth:`AttentionEstimator.forget` is called for it.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from ..assets import verified_path
from ..types import NUM_BLENDSHAPES, Blendshape, Face
from .eyes import BlinkDetector, EyeModel, EyeState
from .gaze import DEFAULT_HFOV_DEG, GazeCalibration, GazeGeometry, focal_normalised, gaze_features
from .geometry import LEFT_EYE, RIGHT_EYE, GeometryError, eye_aspect_ratio, mouth_aspect_ratio, to_pixels
from .head_pose import HeadPose, head_pose_from_landmarks, head_pose_from_matrix
from .looking import Hysteresis, LookingModel
from .mouth import MouthModel, MouthState, TalkingDetector

#: The shipped fitted parameters (listed in models/SHA256SUMS).
PARAMS_FILE = "attention_params.json"


@dataclasses.dataclass(frozen=True)
class AttentionParams:
    """Fitted parameters of every estimator (``models/attention_params.json``)."""

    canonical_mesh: np.ndarray
    gaze: GazeGeometry
    eye: EyeModel
    mouth: MouthModel
    looking: LookingModel
    talking_std_threshold: float
    talking_window_s: float

    @classmethod
    def from_dict(cls, d: dict) -> "AttentionParams":
        g = d["gaze"]
        mesh = np.asarray(d["canonical_mesh"], float)
        if mesh.shape != (478, 3):
            raise ValueError(f"canonical_mesh has shape {mesh.shape}")
        return cls(mesh, GazeGeometry(tuple(g["h0"]), tuple(g["v0"]), float(g["gain"])), EyeModel.from_dict(d["eye"]),
                   MouthModel.from_dict(d["mouth"]), LookingModel.from_dict(d["looking"]),
                   float(d["talking"]["std_threshold"]), float(d["talking"]["window_s"]))

    @classmethod
    def load(cls, name_or_path=PARAMS_FILE) -> "AttentionParams":
        """Load and sha256-verify the parameters.

        Raises:
            emotion_perception.assets.ModelFileError: missing or tampered file.
            ValueError: malformed content.
        """
        return cls.from_dict(json.loads(verified_path(name_or_path).read_text()))


@dataclasses.dataclass(frozen=True)
class AttentionEstimate:
    """Attention of one face in one frame (fields as in ``Attention.msg``).

    Angles in radians; ``gaze_direction`` a unit vector in the camera optical frame;
    ``gaze_point`` in normalised image coordinates; ``left``/``right`` are the
    person's own eyes; probabilities in [0, 1].
    """

    face_id: str
    gaze_direction: np.ndarray
    gaze_point: tuple[float, float]
    gaze_calibrated: bool
    gaze_yaw: float
    gaze_pitch: float
    head_yaw: float
    head_pitch: float
    head_roll: float
    left_eye: EyeState
    right_eye: EyeState
    left_eye_probabilities: np.ndarray
    right_eye_probabilities: np.ndarray
    mouth: MouthState
    mouth_open_probability: float
    blinking: bool
    blink_rate: float
    perclos: float
    drowsy: bool
    talking: bool
    looking_at_camera: float
    looking: bool
    attentive: bool
    ear_left: float = math.nan
    ear_right: float = math.nan
    mar: float = math.nan


@dataclasses.dataclass
class _FaceState:
    blinks: BlinkDetector
    talking: TalkingDetector
    looking: Hysteresis


class AttentionEstimator:
    """Per-face attention over time.

    Args:
        params: fitted parameters (default: the shipped, verified file).
        calibration: a per-user :class:`GazeCalibration`; None uses the geometric gaze.
        perclos_window_s: window of PERCLOS and blink rate, seconds.
        drowsiness_threshold: PERCLOS above which a face is drowsy, [0, 1].
        looking_on, looking_off: hysteresis of the looking state on the probability.
        hfov_deg: the camera's horizontal field of view, degrees.
        max_blink_s: longest eye closure that counts as a blink, seconds.
    """

    def __init__(self, params: AttentionParams | None = None, calibration: GazeCalibration | None = None,
                 perclos_window_s: float = 60.0, drowsiness_threshold: float = 0.2, looking_on: float = 0.6,
                 looking_off: float = 0.4, hfov_deg: float = DEFAULT_HFOV_DEG, max_blink_s: float = 0.7):
        self.params = params or AttentionParams.load()
        self.calibration = calibration
        self.perclos_window_s = perclos_window_s
        self.drowsiness_threshold = drowsiness_threshold
        Hysteresis(looking_on, looking_off)  # validate
        self.looking_on, self.looking_off = looking_on, looking_off
        self.hfov_deg = hfov_deg
        self.max_blink_s = max_blink_s
        self._faces: dict[str, _FaceState] = {}

    @property
    def face_ids(self) -> list[str]:
        return list(self._faces)

    def forget(self, face_id: str) -> None:
        """Drop the temporal state of a face that is gone (no error if unknown)."""
        self._faces.pop(face_id, None)

    def reset(self) -> None:
        self._faces.clear()

    def _state(self, face_id: str) -> _FaceState:
        st = self._faces.get(face_id)
        if st is None:
            st = _FaceState(BlinkDetector(self.perclos_window_s, self.max_blink_s),
                            TalkingDetector(self.params.talking_std_threshold, self.params.talking_window_s),
                            Hysteresis(self.looking_on, self.looking_off))
            self._faces[face_id] = st
        return st

    def head_pose(self, pixels: np.ndarray, transform: np.ndarray | None) -> HeadPose:
        if transform is not None and np.all(np.isfinite(transform)):
            return head_pose_from_matrix(transform)
        return head_pose_from_landmarks(pixels, self.params.canonical_mesh)

    def update(self, face: Face, t_s: float) -> AttentionEstimate:
        """Estimate for one face; ``t_s`` is the frame time in seconds (increasing per face)."""
        return self.update_arrays(face.face_id, face.landmarks, face.blendshapes, face.transform, face.image_wh, t_s)

    def update_arrays(self, face_id: str, landmarks: np.ndarray, blendshapes: np.ndarray | None,
                      transform: np.ndarray | None, image_wh: tuple[int, int], t_s: float) -> AttentionEstimate:
        """As :meth:`update` from raw arrays.

        Args:
            landmarks: (478, 3) MediaPipe landmarks (x, y normalised to width/height).
            blendshapes: (52,) scores, or None/NaN when unavailable (geometry only).
            transform: 4x4 facial transformation matrix, or None/NaN (pose fitted from landmarks).
            image_wh: (width, height) pixels.

        Raises:
            GeometryError: malformed landmarks or image size.
        """
        p = to_pixels(landmarks, image_wh)
        if blendshapes is None:
            bs = np.full(NUM_BLENDSHAPES, np.nan)
        else:
            bs = np.asarray(blendshapes, float).reshape(-1)
            if bs.shape != (NUM_BLENDSHAPES,):
                raise GeometryError(f"blendshapes have {bs.size} values, expected {NUM_BLENDSHAPES}")
        head = self.head_pose(p, transform)
        st = self._state(face_id)

        ear_r, ear_l = eye_aspect_ratio(p, RIGHT_EYE), eye_aspect_ratio(p, LEFT_EYE)
        B = Blendshape
        pr = self.params.eye.probabilities(ear_r, bs[B.eyeBlinkRight], bs[B.eyeSquintRight], bs[B.eyeWideRight])
        pl = self.params.eye.probabilities(ear_l, bs[B.eyeBlinkLeft], bs[B.eyeSquintLeft], bs[B.eyeWideLeft])
        blinking = st.blinks.update(t_s, pr[EyeState.CLOSED], pl[EyeState.CLOSED])
        perclos = st.blinks.perclos

        mar = mouth_aspect_ratio(p)
        p_open = self.params.mouth.open_probability(mar, bs[B.jawOpen], bs[B.mouthClose])
        talking = st.talking.update(t_s, mar)

        feats = gaze_features(p, head, image_wh)
        if self.calibration is not None:
            gaze = self.calibration.estimate(feats, image_wh)
        else:
            gaze = self.params.gaze.estimate(feats, image_wh, self.hfov_deg,
                                             weights=(1 - pr[EyeState.CLOSED], 1 - pl[EyeState.CLOSED]))
        f = focal_normalised(image_wh, self.hfov_deg if self.calibration is None else self.calibration.hfov_deg)
        angle = LookingModel.angle_deg(gaze.direction, (feats.eye_u, feats.eye_v), f)
        p_look = self.params.looking.probability(angle)
        # Closed eyes look nowhere.
        p_look *= 1.0 - min(pr[EyeState.CLOSED], pl[EyeState.CLOSED])
        looking = st.looking.update(p_look)
        drowsy = perclos > self.drowsiness_threshold
        eyes_open = not (pr[EyeState.CLOSED] > 0.5 and pl[EyeState.CLOSED] > 0.5)
        return AttentionEstimate(
            face_id=face_id, gaze_direction=gaze.direction, gaze_point=gaze.point, gaze_calibrated=gaze.calibrated,
            gaze_yaw=gaze.yaw, gaze_pitch=gaze.pitch, head_yaw=head.yaw, head_pitch=head.pitch, head_roll=head.roll,
            left_eye=EyeState(int(np.argmax(pl))), right_eye=EyeState(int(np.argmax(pr))),
            left_eye_probabilities=pl.astype(np.float32), right_eye_probabilities=pr.astype(np.float32),
            mouth=MouthState.OPEN if p_open > 0.5 else MouthState.CLOSED, mouth_open_probability=p_open,
            blinking=blinking, blink_rate=st.blinks.blink_rate, perclos=perclos, drowsy=drowsy, talking=talking,
            looking_at_camera=p_look, looking=looking, attentive=bool(looking and eyes_open and not drowsy),
            ear_left=ear_l, ear_right=ear_r, mar=mar)
