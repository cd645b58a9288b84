"""Cost per update of every emotion model and of the attention estimators, next to bare
MediaPipe's cost for the frame they came from.

Inputs are real: the shared talking-face video (``video/franck.mp4``) through the
package's landmarker gives per-frame landmarks, blendshapes, head-pose matrices and
aligned face crops (the landmark node's ``faces/crops``); each model then gets those frames one by one through its public
interface (``classifiers.load(name).update(face_id, FrameInput)``, the attention
core's ``AttentionEstimator.update(face, t)``), exactly as its node drives it. A model
that is not shipped yet is listed as such.

    .venv/bin/python benchmarks/classifiers.py [--frames 200] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import BareMediaPipe, Table, data_dir, ratio, summary, video_frames


def real_faces(frames):
    """(faces, crops, bare MediaPipe ms) for each frame that holds a face."""
    from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions

    from emotion_perception.classifiers.image_cnn import crop_spec
    from emotion_perception.face_crop import aligned_crop

    spec = crop_spec()
    faces, crops, bare_ms = [], [], []
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm, BareMediaPipe(1) as bare:
        for i, f in enumerate(frames):
            found = lm.process(f, (i + 1) * 41_666_667)
            ms, _ = bare.timed(f)
            if found:
                face = found[0]
                faces.append(face)
                crops.append(aligned_crop(f, face.landmarks, spec.size, spec.margin))  # what faces/crops carries
                if i >= 5:
                    bare_ms.append(ms)
    return faces, crops, bare_ms


def time_model(model, faces, crops, repeats: int = 1) -> tuple[dict, int]:
    from emotion_perception.classifiers.base import FrameInput

    times, answered = [], 0
    for _ in range(repeats):
        model.reset()
        for i, (face, crop) in enumerate(zip(faces, crops)):
            frame = FrameInput(landmarks=face.landmarks, blendshapes=face.blendshapes, image_wh=face.image_wh,
                               stamp_ns=(i + 1) * 41_666_667, face_crop=crop)
            t0 = time.perf_counter()
            est = model.update(face.face_id, frame)
            times.append((time.perf_counter() - t0) * 1e3)
            answered += est is not None
    return summary(times), answered


def time_fusion(fusion, faces, others) -> dict:
    """The fusion's own cost: combining the estimates the other models gave."""
    times = []
    for i, face in enumerate(faces):
        ests = [e for e in (o[i] for o in others) if e is not None]
        t0 = time.perf_counter()
        fusion.fuse(face.face_id, ests, (i + 1) * 41_666_667) if hasattr(fusion, "fuse") else None
        times.append((time.perf_counter() - t0) * 1e3)
    return summary(times)


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="video frames to feed each model")
    ap.add_argument("--quick", action="store_true", help="100 frames")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    n = 100 if a.quick else a.frames
    from emotion_perception import classifiers

    frames = video_frames(data_dir(a.data) / "video" / "franck.mp4", limit=n)
    faces, crops, bare_ms = real_faces(frames)
    bare = summary(bare_ms)
    t = Table("classifiers", f"Cost per update of each model, one face, {len(faces)} real frames (franck.mp4, 360x288)",
              ["model", "mean ms", "p95 ms", "mean / bare MediaPipe mean", "updates answered", "status"])
    for name in classifiers.MODELS:
        try:
            model = classifiers.load(name)
        except Exception as e:  # noqa: BLE001 - not shipped yet: say so
            t.add(name, float("nan"), float("nan"), float("nan"), "-", f"not available ({type(e).__name__})")
            t.data[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        if name == "fused" and not hasattr(model, "update"):  # pragma: no cover
            t.add(name, float("nan"), float("nan"), float("nan"), "-", "fusion has no update(); see node")
            continue
        try:
            s, answered = time_model(model, faces, crops)
        except Exception as e:  # noqa: BLE001 - report, keep going
            t.add(name, float("nan"), float("nan"), float("nan"), "-", f"failed: {type(e).__name__}: {str(e)[:60]}")
            continue
        t.add(name, s["mean"], s["p95"], ratio(s["mean"], bare["mean"]), f"{answered}/{len(faces)}",
              "ok: runs its members, then fuses" if name == "fused" else "ok")
        t.data[name] = s
    try:
        from emotion_perception.attention import AttentionEstimator

        est = AttentionEstimator()
        times = []
        for i, face in enumerate(faces):
            t0 = time.perf_counter()
            est.update(face, (i + 1) / 24.0)
            times.append((time.perf_counter() - t0) * 1e3)
        s = summary(times)
        t.add("attention (all estimators)", s["mean"], s["p95"], ratio(s["mean"], bare["mean"]),
              f"{len(faces)}/{len(faces)}", "ok")
        t.data["attention"] = s
    except Exception as e:  # noqa: BLE001
        t.add("attention (all estimators)", float("nan"), float("nan"), float("nan"), "-",
              f"not available ({type(e).__name__})")
        t.data["attention"] = {"error": f"{type(e).__name__}: {e}"}
    t.add("bare MediaPipe (reference)", bare["mean"], bare["p95"], 1.0, f"{len(bare_ms)}", "same frames")
    t.data["bare_mediapipe"] = bare
    t.notes.append("Targets from the issues: frame classifiers < 1 ms per face, image model < 5 ms, "
                   "each attention estimator < 0.5 ms per face.")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
