"""A folder of labelled face photos as a frame-layout array set, for ``predict`` and
``evaluate`` (``--input DIR``).

``DIR`` holds images and a ``labels.csv`` (``image,label``; the label column may be
absent for ``predict``). Each image goes through MediaPipe's Face Landmarker (the
package's :class:`~emotion_perception.landmarks.FaceLandmarker`, one face); a photo
smaller than :data:`MIN_DETECT_PX` a side is upscaled (bicubic) for the landmarker
only, as the FER+ training faces were. The result holds ``landmarks``,
``blendshapes``, ``image_wh`` (NaN where no face was found) and ``face_crop``: the
aligned grey crop the image model was trained on (:func:`~emotion_perception.
face_crop.aligned_crop` with the shipped model's size and margin). Where MediaPipe
finds no face, ``face_crop`` is the photo's centred square instead
(:func:`~emotion_perception.face_crop.whole_image_crop`: a photo that is already a
face crop, such as FER-2013's) and ``face_found`` is False, so the image model still
answers while the landmark models have no input.
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from .types import NUM_BLENDSHAPES, NUM_LANDMARKS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: Photos smaller than this (pixels, shorter side) are upscaled before MediaPipe.
MIN_DETECT_PX = 192


def load_image_folder(folder) -> dict:
    """Run the landmarker over every listed image of ``folder``.

    Raises:
        FileNotFoundError: no such folder, or no image in it.
    """
    import cv2

    from .classifiers.image_cnn import crop_spec
    from .face_crop import aligned_crop, whole_image_crop
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
    spec = crop_spec()
    n = len(rows)
    out = {"landmarks": np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32),
           "blendshapes": np.full((n, NUM_BLENDSHAPES), np.nan, np.float32),
           "image_wh": np.ones((n, 2), np.int32),
           "face_crop": np.full((n, spec.size, spec.size), np.nan, np.float32),
           "face_found": np.zeros(n, bool),
           "image": np.array([r[0] for r in rows])}
    if any(r[1] for r in rows):
        out["label"] = np.array([r[1].strip().lower() for r in rows])
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lmk:
        for i, (name, _) in enumerate(rows):
            bgr = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            out["image_wh"][i] = (w, h)
            k = MIN_DETECT_PX / min(h, w)
            big = cv2.resize(rgb, (round(w * k), round(h * k)), interpolation=cv2.INTER_CUBIC) if k > 1 else rgb
            lmk.reset()
            faces = lmk.process(big, (i + 1) * 1_000_000_000)
            crop = None
            if faces:
                f = faces[0]
                try:
                    crop = aligned_crop(rgb, f.landmarks, spec.size, spec.margin)
                except ValueError:  # a face too small or off the photo: as if none was found
                    crop = None
                else:
                    out["landmarks"][i], out["blendshapes"][i] = f.landmarks, f.blendshapes
                    out["face_found"][i] = True
            out["face_crop"][i] = crop if crop is not None else whole_image_crop(rgb, spec.size)
    return out
