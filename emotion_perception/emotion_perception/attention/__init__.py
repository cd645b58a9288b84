"""Attention of a face: head pose, gaze, eye and mouth states, blinks, drowsiness,
talking and looking at the camera, from MediaPipe landmarks and blendshapes.

ROS-free; :class:`AttentionEstimator` is the entry point, ``attention_node`` its thin
ROS wrapper. Fitted parameters: ``models/attention_params.json`` (see
``models/attention.md``).
"""

from .estimator import PARAMS_FILE, AttentionEstimate, AttentionEstimator, AttentionParams
from .eyes import BlinkDetector, EyeModel, EyeState
from .gaze import CalibrationError, GazeCalibration, GazeEstimate, GazeFeatures, GazeGeometry, gaze_features
from .geometry import GeometryError
from .head_pose import HeadPose, head_pose_from_landmarks, head_pose_from_matrix, rotation_matrix
from .looking import Hysteresis, LookingModel
from .mouth import MouthModel, MouthState, TalkingDetector

__all__ = [
    "PARAMS_FILE", "AttentionEstimate", "AttentionEstimator", "AttentionParams", "BlinkDetector", "EyeModel",
    "EyeState", "CalibrationError", "GazeCalibration", "GazeEstimate", "GazeFeatures", "GazeGeometry",
    "gaze_features", "GeometryError", "HeadPose", "head_pose_from_landmarks", "head_pose_from_matrix",
    "rotation_matrix", "Hysteresis", "LookingModel", "MouthModel", "MouthState", "TalkingDetector",
]
