"""The image model's cost per face, and where its crop should be made (issue 12).

Real frames (``video/WolfgangLanger_Pexels.mp4``, 640x360, one face) go through the
package's landmarker; for each frame with a face:

* **crop + model**: ``face_crop.aligned_crop`` from the whole RGB frame and the shipped
  ``image-cnn`` under LiteRT (the mirrored crop averaged in, inside the model): the
  per-face cost that the <= 5 ms budget is about; the model's wall time and its CPU
  (LiteRT's threads together: ``classifiers/image_cnn.THREADS``);
* **image node input, two designs**: what the node spends on one image before the
  model runs, (a) receiving the whole camera frame (``sensor_msgs/Image``
  deserialised, converted to RGB, cropped: how the node worked before) or (b)
  receiving the landmark node's ``faces/crops`` (``FaceCropArray`` deserialised, the
  crop read in place), and what (b) adds to the landmark node (the crop and the
  ``FaceCropArray`` serialised);
* bare MediaPipe on the same frames, the reference.

    .venv/bin/python benchmarks/image_cnn.py [--frames 200] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import BareMediaPipe, Table, data_dir, ratio, summary, video_frames


def _timed(fn, repeats: int = 1, clock=time.perf_counter) -> float:
    """ms per call of ``fn`` by ``clock`` (wall time; ``time.process_time``: this
    process's CPU, LiteRT's own threads included)."""
    t0 = clock()
    for _ in range(repeats):
        fn()
    return (clock() - t0) * 1e3 / repeats


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="video frames")
    ap.add_argument("--quick", action="store_true", help="60 frames")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    n = 60 if a.quick else a.frames

    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from emotion_perception import conversions
    from emotion_perception.classifiers import load
    from emotion_perception.classifiers.image_cnn import THREADS, crop_spec
    from emotion_perception.face_crop import aligned_crop, crop_geometry, crop_with_geometry
    from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions
    from emotion_perception_msgs.msg import FaceCropArray

    frames = video_frames(data_dir(a.data) / "video" / "WolfgangLanger_Pexels.mp4", limit=n)
    model = load("image-cnn")
    spec = crop_spec()
    rows = {k: [] for k in ("crop", "model", "model_cpu", "crop_model", "node_a", "node_b", "landmark_extra", "bare")}
    header = Header(frame_id="camera")
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm, BareMediaPipe(1) as bare:
        for i, rgb in enumerate(frames):
            faces = lm.process(rgb, (i + 1) * 41_666_667)
            ms, _ = bare.timed(rgb)
            if not faces or i < 5:
                continue
            rows["bare"].append(ms)
            face = faces[0]
            crop = aligned_crop(rgb, face.landmarks, spec.size, spec.margin)
            rows["crop"].append(_timed(lambda: aligned_crop(rgb, face.landmarks, spec.size, spec.margin), 5))
            rows["model"].append(_timed(lambda: model.classify_crop(crop), 5))
            rows["model_cpu"].append(_timed(lambda: model.classify_crop(crop), 5, time.process_time))
            rows["crop_model"].append(_timed(lambda: model.classify_face(rgb, face.landmarks), 5))
            # (a) the whole frame to the image node
            raw = serialize_message(conversions.rgb_to_image_msg(rgb, header))

            def node_a():
                msg = deserialize_message(raw, Image)
                aligned_crop(conversions.image_msg_to_rgb(msg), face.landmarks, spec.size, spec.margin)

            rows["node_a"].append(_timed(node_a, 5))
            # (b) the landmark node's crops to the image node
            geo = crop_geometry(face.landmarks, face.image_wh, spec.margin)

            def landmark_extra():
                c = crop_with_geometry(rgb, geo, spec.size)
                return serialize_message(conversions.crops_to_msg([(face.face_id, c, geo, spec.margin)], header))

            rows["landmark_extra"].append(_timed(landmark_extra, 5))
            small = landmark_extra()

            def node_b():
                msg = deserialize_message(small, FaceCropArray)
                conversions.crop_msg_pixels(msg.faces[0])

            rows["node_b"].append(_timed(node_b, 5))
    s = {k: summary(v) for k, v in rows.items()}
    b = s["bare"]["p50"]
    t = Table("image_cnn", f"image-cnn per face, wall time unless marked CPU, {len(rows['bare'])} real 640x360 "
              "frames (WolfgangLanger_Pexels.mp4)", ["step", "median ms", "p95 ms", "median / bare MediaPipe median"])
    for key, label in (("crop", "aligned crop from the whole frame"),
                       ("model", f"image-cnn under LiteRT ({spec.size}x{spec.size}, mirrored crop averaged in)"),
                       ("model_cpu", f"  the same, CPU ({THREADS} LiteRT threads together)"),
                       ("crop_model", "crop + model (classify_face): the 5 ms budget"),
                       ("node_a", "image node input (a): Image deserialised + to RGB + crop"),
                       ("node_b", "image node input (b): FaceCropArray deserialised + read"),
                       ("landmark_extra", "(b)'s cost in the landmark node: crop + FaceCropArray serialised"),
                       ("bare", "bare MediaPipe (reference)")):
        t.add(label, s[key]["p50"], s[key]["p95"], ratio(s[key]["p50"], b))
        t.data[key] = s[key]
    t.data["frame_bytes"] = len(serialize_message(conversions.rgb_to_image_msg(frames[0], header)))
    t.notes.append(f"A 640x360 rgb8 Image is {t.data['frame_bytes']:,} bytes on the wire; a FaceCropArray of one "
                   f"{spec.size}x{spec.size} crop about {spec.size * spec.size + 200:,}.")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
