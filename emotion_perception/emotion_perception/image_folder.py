"""A folder of labelled face photos as a frame-layout array set, for ``predict`` and
``evaluate`` (``--input DIR``).

``DIR`` holds images and a ``labels.csv`` (``image,label``; the label column may be
absent for ``predict``). Each image goes through MediaPipe's Face Landmarker (the
package's :class:`~emotion_perception.landmarks.FaceLandmarker`, one face, the
largest); the result holds ``landmarks``, ``blendshapes``, ``image_wh`` and
``face_crop`` (the square MediaPipe face box, resized to :data:`CROP_PX`, float32
0..255 RGB) per image, NaN where no face was found, plus ``label`` and ``image``.
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from .types import NUM_BLENDSHAPES, NUM_LANDMARKS

#: Side of the stored face crops, pixels (image-cnn resizes them to its input).
CROP_PX = 128
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def load_image_folder(folder, crop_margin: float | None = None) -> dict:
    """Run the landmarker over every listed image of ``folder``.

    Raises:
        FileNotFoundError: no such folder, or no image in it.
    """
    import cv2

    from .classifiers.image_cnn import DEFAULT_MARGIN, crop_face, landmarks_box
    from .landmarks import FaceLandmarker, LandmarkerOptions

    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    labels_csv = folder / "labels.csv"
    if labels_csv.is_file():
        with open(labels_csv) as f:
            rows = [(r["image"], r.get("label", "")) for r in csv.DictReader(f)]
    else:
        rows = [(p.name, "") for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not rows:
        raise FileNotFoundError(f"no images listed in {folder}")
    n = len(rows)
    out = {"landmarks": np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32),
           "blendshapes": np.full((n, NUM_BLENDSHAPES), np.nan, np.float32),
           "image_wh": np.ones((n, 2), np.int32),
           "face_crop": np.full((n, CROP_PX, CROP_PX, 3), np.nan, np.float32),
           "image": np.array([r[0] for r in rows])}
    if any(r[1] for r in rows):
        out["label"] = np.array([r[1].strip().lower() for r in rows])
    margin = DEFAULT_MARGIN if crop_margin is None else crop_margin
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lmk:
        for i, (name, _) in enumerate(rows):
            bgr = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            lmk.reset()
            faces = lmk.process(rgb, (i + 1) * 1_000_000_000)
            if not faces:
                continue
            f = faces[0]
            out["landmarks"][i], out["blendshapes"][i] = f.landmarks, f.blendshapes
            out["image_wh"][i] = f.image_wh
            crop = crop_face(rgb, landmarks_box(f.landmarks, f.image_wh), margin)
            out["face_crop"][i] = cv2.resize(crop, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA)
    return out
