"""``emotion-perception calibrate-gaze``: fit a per-user gaze calibration and save it.

The person looks at known target points while a camera (or a recorded video) films
them; the tool extracts the gaze features of every frame (MediaPipe Face Landmarker
and :func:`emotion_perception.attention.gaze_features`), pairs each frame with the
target looked at, fits :class:`~emotion_perception.attention.GazeCalibration`
(BayesianRidge per coordinate) and writes JSON (or ``.npz`` by the suffix).

Targets are gaze points in the attention convention: normalised image coordinates of
the plane through the camera, (0.5, 0.5) = looking into the lens. A marker at ``X``
cm to the image's right and ``Y`` cm below the lens, for a person ``Z`` cm away, is at
``u = 0.5 + fx * X / Z``, ``v = 0.5 + fy * Y / Z`` with ``fx = 1 / (2 tan(hfov / 2))``
and ``fy = fx * width / height``.

Recorded video: ``--video clip.mp4 --targets targets.csv`` with CSV columns
``start_s,end_s,x,y`` (the time span during which the person looked at (x, y)).
Live camera: ``--camera 0 --points "0.5,0.5;0.1,0.1;0.9,0.1;0.1,0.9;0.9,0.9"``: for
each point the tool asks the person to look at it, waits for Enter, then records
``--hold-s`` seconds. The first ``--settle-s`` of each span are skipped (the eyes are
still moving). Needs at least 3 distinct targets and 10 frames with a face.
"""

from __future__ import annotations

import argparse
import sys

from .args import field_of_view_deg, non_negative_float, positive_float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate-gaze", help="record a person looking at known points; fit and save a gaze "
                       "calibration", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="recorded video of the person looking at the targets")
    src.add_argument("--camera", type=int, help="camera index (OpenCV) for a live session")
    p.add_argument("--targets", help="CSV start_s,end_s,x,y (with --video)")
    p.add_argument("--points", default="0.5,0.5;0.1,0.1;0.9,0.1;0.1,0.9;0.9,0.9;0.5,0.1;0.5,0.9;0.1,0.5;0.9,0.5",
                   help="targets 'x,y;x,y;...' (with --camera)")
    p.add_argument("--hold-s", type=positive_float, default=2.0, help="seconds recorded per target (camera)")
    p.add_argument("--settle-s", type=non_negative_float, default=0.5, help="seconds skipped at the start of each target")
    p.add_argument("--hfov-deg", type=field_of_view_deg, default=60.0, help="camera horizontal field of view, degrees")
    p.add_argument("--output", required=True, help="calibration file to write (.json or .npz)")
    p.set_defaults(func=run)


def read_targets(path) -> list[tuple[float, float, float, float]]:
    """(start_s, end_s, x, y) spans from a CSV with those columns.

    Raises:
        ValueError: missing columns or an empty file.
    """
    import csv

    with open(path, newline="") as f:
        rows = [(float(r["start_s"]), float(r["end_s"]), float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    if not rows:
        raise ValueError(f"{path} lists no targets")
    return rows


def features_of_face(face):
    """Gaze feature vector of one :class:`~emotion_perception.types.Face`."""
    import numpy as np

    from ..attention import gaze_features, head_pose_from_matrix
    from ..attention.geometry import to_pixels

    p = to_pixels(face.landmarks, face.image_wh)
    return gaze_features(p, head_pose_from_matrix(np.asarray(face.transform)), face.image_wh).vector()


def samples_from_video(path, spans, settle_s: float):
    """(features, targets) of the frames inside the target spans of a video."""
    import cv2
    import numpy as np

    from ..landmarks import FaceLandmarker, LandmarkerOptions

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    feats, targets = [], []
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            t = i / fps
            i += 1
            span = next((s for s in spans if s[0] + settle_s <= t <= s[1]), None)
            if span is None:
                continue
            faces = lm.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), int(t * 1e9))
            if faces:
                feats.append(features_of_face(faces[0]))
                targets.append(span[2:])
    return np.array(feats), np.array(targets)


def samples_from_camera(index: int, points, hold_s: float, settle_s: float):
    import time

    import cv2
    import numpy as np

    from ..landmarks import FaceLandmarker, LandmarkerOptions

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise ValueError(f"cannot open camera {index}")
    feats, targets = [], []
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        for k, (x, y) in enumerate(points):
            input(f"target {k + 1}/{len(points)}: look at ({x:.2f}, {y:.2f}) and press Enter ")
            t0 = time.monotonic()
            while time.monotonic() - t0 < settle_s + hold_s:
                ok, bgr = cap.read()
                if not ok:
                    raise ValueError(f"camera {index} stopped delivering frames")
                if time.monotonic() - t0 < settle_s:
                    continue
                faces = lm.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic_ns())
                if faces:
                    feats.append(features_of_face(faces[0]))
                    targets.append((x, y))
    cap.release()
    return np.array(feats), np.array(targets)


def parse_points(text: str) -> list[tuple[float, float]]:
    pts = []
    for item in text.split(";"):
        x, y = (float(v) for v in item.split(","))
        pts.append((x, y))
    return pts


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..attention import CalibrationError, GazeCalibration

    try:
        if args.video:
            if not args.targets:
                raise ValueError("--video needs --targets (CSV start_s,end_s,x,y)")
            feats, targets = samples_from_video(args.video, read_targets(args.targets), args.settle_s)
        else:
            feats, targets = samples_from_camera(args.camera, parse_points(args.points), args.hold_s, args.settle_s)
        if len(targets) == 0 or len(np.unique(targets, axis=0)) < 3:
            raise CalibrationError("fewer than 3 distinct targets have frames with a face")
        cal = GazeCalibration.fit(feats, targets, hfov_deg=args.hfov_deg)
    except (OSError, ValueError, CalibrationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cal.save(args.output)
    print(f"{cal.n_samples} frames, {len(np.unique(targets, axis=0))} targets, training RMSE {cal.train_rmse:.3f} "
          f"(normalised units) -> {args.output}")
    return 0
