"""``emotion-perception attention``: attention estimators over a frame- or sequence-layout .npz.

Reads the two array layouts of ``shared/data/README.md`` (``landmarks`` required;
``blendshapes``, ``transform`` and ``image_wh`` used when present):

- frame layout: every row is a fresh face seen once (no history: ``blink`` means both
  eyes closed in that photo, ``talking`` is always 0).
- sequence layout (``sequence_start``/``sequence_length``): each clip's frames go in
  order through one face's state at their ``timestamp_ms``, so blinks, PERCLOS and
  talking work as in the node; a NaN frame (no face) writes an empty row and ends the
  face (its state is forgotten, as the node does when an id disappears).

Without ``image_wh`` the images are taken as square (a warning says so); without
``transform`` the head pose is fitted to the landmarks.

Writes a CSV with one row per frame: ``row`` (frame layout) or ``clip,frame,timestamp_ms``,
then ``left_eye,right_eye,mouth`` (state names), ``gaze_yaw,gaze_pitch,head_yaw,head_pitch,
head_roll`` (radians), ``looking_at_camera`` (0..1), ``blink`` and ``talking`` (0/1).
"""

from __future__ import annotations

import argparse
import sys

from .args import field_of_view_deg

STATE_COLUMNS = ("left_eye", "right_eye", "mouth", "gaze_yaw", "gaze_pitch", "head_yaw", "head_pitch", "head_roll",
                 "looking_at_camera", "blink", "talking")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="eye/mouth states, gaze, head pose, looking, blinks, talking per frame "
                       "of a .npz, to CSV", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="input .npz (frame or sequence layout)")
    p.add_argument("--output", required=True, help="output .csv")
    p.add_argument("--calibration", default=None, help="gaze calibration file (calibrate-gaze); default geometric")
    p.add_argument("--hfov-deg", type=field_of_view_deg, default=60.0, help="camera horizontal field of view, degrees")
    p.set_defaults(func=run)


def _row(est) -> list:
    if est is None:
        return [""] * len(STATE_COLUMNS)
    return [est.left_eye.label, est.right_eye.label, est.mouth.label, f"{est.gaze_yaw:.5f}", f"{est.gaze_pitch:.5f}",
            f"{est.head_yaw:.5f}", f"{est.head_pitch:.5f}", f"{est.head_roll:.5f}", f"{est.looking_at_camera:.4f}",
            int(est.blinking), int(est.talking)]


def estimate_rows(arrays: dict, calibration=None, hfov_deg: float = 60.0, warn=print) -> tuple[list[str], list[list]]:
    """CSV header and rows for the arrays of one .npz (see module doc).

    Raises:
        ValueError: no ``landmarks`` or arrays of inconsistent lengths.
    """
    import numpy as np

    from ..attention import AttentionEstimator, GeometryError

    if "landmarks" not in arrays:
        raise ValueError("the .npz has no 'landmarks' array; the attention estimators need landmarks")
    lm = np.asarray(arrays["landmarks"], np.float32)
    n = len(lm)
    bs = arrays.get("blendshapes")
    tf = arrays.get("transform")
    for name, a in (("blendshapes", bs), ("transform", tf)):
        if a is not None and len(a) != n:
            raise ValueError(f"'{name}' has {len(a)} rows, 'landmarks' {n}")
    est = AttentionEstimator(calibration=calibration, hfov_deg=hfov_deg)
    sequences = "sequence_start" in arrays and "sequence_length" in arrays
    wh = arrays.get("image_wh")
    if wh is None:
        warn("warning: no image_wh in the input: images taken as square (geometry may be off)")

    def one(i: int, face_id: str, wh_i, t_s: float):
        if not np.all(np.isfinite(lm[i])):
            est.forget(face_id)
            return None
        b = None if bs is None else bs[i]
        t = None if tf is None else tf[i]
        try:
            return est.update_arrays(face_id, lm[i], b, t, wh_i, t_s)
        except GeometryError as e:
            warn(f"warning: frame {i}: {e}")
            est.forget(face_id)
            return None

    rows = []
    if not sequences:
        for i in range(n):
            wh_i = (1, 1) if wh is None else tuple(int(v) for v in wh[i])
            e = one(i, "row", wh_i, 0.0)
            est.forget("row")
            rows.append([i, *_row(e)])
        return ["row", *STATE_COLUMNS], rows
    starts = np.asarray(arrays["sequence_start"], np.int64)
    lengths = np.asarray(arrays["sequence_length"], np.int64)
    ts = arrays.get("timestamp_ms")
    fps = arrays.get("fps")
    for s, (a, k) in enumerate(zip(starts, lengths)):
        if a < 0 or a + k > n:
            raise ValueError(f"clip {s} spans rows {a}..{a + k} outside the {n} frames")
        wh_s = (1, 1) if wh is None else tuple(int(v) for v in np.asarray(wh)[s])
        face_id = f"clip{s}"
        for j in range(int(k)):
            i = int(a + j)
            if ts is not None:
                t_ms = float(ts[i])
            else:
                t_ms = 1000.0 * j / float(np.asarray(fps)[s] if fps is not None else 30.0)
            e = one(i, face_id, wh_s, t_ms / 1000.0)
            rows.append([s, j, int(round(t_ms)), *_row(e)])
        est.forget(face_id)
    return ["clip", "frame", "timestamp_ms", *STATE_COLUMNS], rows


def run(args: argparse.Namespace) -> int:
    import csv

    from ..attention import CalibrationError, GazeCalibration
    from .predict import read_npz

    try:
        cal = GazeCalibration.load(args.calibration) if args.calibration else None
        arrays = read_npz(args.input)
        header, rows = estimate_rows(arrays, cal, args.hfov_deg, warn=lambda m: print(m, file=sys.stderr))
    except (OSError, ValueError, CalibrationError) as e:
        print(f"emotion-perception attention: {e}", file=sys.stderr)
        return 2
    with open(args.output, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    print(f"{len(rows)} rows -> {args.output}")
    return 0
