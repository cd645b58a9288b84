"""``emotion-perception predict``: run a shipped model on a labelled or unlabelled .npz.

Reads the two array layouts of ``shared/data/README.md``:

- frame layout (one face per row): each row is classified as a one-frame sequence of
  a fresh face (``EmotionModel.predict_frames``); rows holding NaN (no face) get an
  empty label and NaN probabilities.
- sequence layout (``sequence_start``/``sequence_length`` present): each clip's frames
  are fed in order to ``EmotionModel.update`` exactly as a node would; a NaN frame
  means "no face", so the model forgets the face like the node does when its id
  disappears. The clip's final estimate (the last one the model gave) is reported.

Writes a CSV with one row per sample or clip: ``index,label,<one column per class>``.
Works for every model of ``classifiers.MODELS`` through the EmotionModel interface.
"""

from __future__ import annotations

import argparse

#: Frame-layout keys a model may read (besides what ``model.needs`` names).
ARRAY_KEYS = ("landmarks", "blendshapes", "image_wh", "face_crop")


def register(sub: argparse._SubParsersAction) -> None:
    from ..classifiers import MODELS

    p = sub.add_parser("predict", help="run a model on a frame- or sequence-layout .npz, write a CSV",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=list(MODELS), help="model name")
    p.add_argument("--input", required=True,
                   help="input .npz (frame or sequence layout), or a folder of photos with a labels.csv")
    p.add_argument("--output", required=True, help="output .csv")
    p.set_defaults(func=run)


def load_arrays(path) -> dict:
    """The .npz as a dict of arrays (no pickle); a folder of photos with a
    labels.csv goes through the landmarker first (``image_folder``)."""
    import pathlib

    if pathlib.Path(path).is_dir():
        from ..image_folder import load_image_folder

        return load_image_folder(path)
    return read_npz(path)


def read_npz(path) -> dict:
    """A .npz file's arrays by name (no pickle).

    Raises:
        ValueError: the file is missing or is not a .npz of plain arrays, saying which.
    """
    import zipfile

    import numpy as np

    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):  # a bare .npy: np.load returns the array itself
            raise ValueError(f"{path}: a single array (.npy), not a .npz of named arrays")
        with z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: not a .npz of arrays ({type(e).__name__}: {str(e).split('.')[0]})") from None
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a .npz of arrays ({str(e).split('.')[0]})") from None


def is_sequence_layout(arrays: dict) -> bool:
    return "sequence_start" in arrays and "sequence_length" in arrays


def _model_inputs(model, arrays: dict) -> list[str]:
    missing = [k for k in model.needs if k not in arrays and k != "image_wh"]
    if missing:
        raise ValueError(f"model {model.name} needs {', '.join(sorted(missing))} but the input has only "
                         f"{', '.join(sorted(arrays))}")
    uses = set(model.needs) | set(getattr(model, "uses", ()))  # "uses": optional inputs (the fusion)
    keys = [k for k in ARRAY_KEYS if k in arrays and (k in uses or k == "image_wh")]
    if not any(k != "image_wh" for k in keys):
        raise ValueError(f"model {model.name} can use none of {', '.join(sorted(arrays))}")
    return keys


def _row_has_face(arrays: dict, keys: list[str], i, any_key: bool = False) -> bool:
    """Whether row ``i`` has every input (``any_key``: at least one, for the fusion, whose
    members each run where their own input is there)."""
    import numpy as np

    found = [bool(np.all(np.isfinite(arrays[k][i]))) for k in keys if k != "image_wh"]
    return any(found) if any_key else all(found)


def predict_arrays(model, arrays: dict):
    """Run ``model`` on loaded arrays.

    Returns:
        (probabilities (M, C) float32 with NaN rows where no estimate was made,
        labels (M,) str with "" there), M = rows (frame layout) or clips (sequence).

    Raises:
        ValueError: the arrays lack what the model needs.
    """
    import numpy as np

    from ..classifiers.base import FrameInput

    keys = _model_inputs(model, arrays)
    data_keys = [k for k in keys if k != "image_wh"]
    c = len(model.class_names)
    model.reset()
    if not is_sequence_layout(arrays):
        n = len(arrays[data_keys[0]])
        probs = np.full((n, c), np.nan, dtype=np.float32)
        ok = np.array([_row_has_face(arrays, data_keys, i, any_key=not model.needs) for i in range(n)], dtype=bool)
        if ok.any():
            probs[ok] = model.predict_frames(**{k: arrays[k][ok] for k in keys})
    else:
        starts, lengths = arrays["sequence_start"].astype(int), arrays["sequence_length"].astype(int)
        probs = np.full((len(starts), c), np.nan, dtype=np.float32)
        for s, (start, length) in enumerate(zip(starts, lengths)):
            face_id = f"clip_{s}"
            wh = tuple(int(v) for v in arrays["image_wh"][s]) if "image_wh" in arrays else (1, 1)
            last = None
            for f in range(start, start + length):
                if not _row_has_face(arrays, data_keys, f):
                    model.forget(face_id)  # the node forgets a face whose id disappears
                    continue
                stamp = int(arrays["timestamp_ms"][f]) * 1_000_000 if "timestamp_ms" in arrays else 0
                frame = FrameInput(landmarks=arrays["landmarks"][f] if "landmarks" in data_keys else None,
                                   blendshapes=arrays["blendshapes"][f] if "blendshapes" in data_keys else None,
                                   image_wh=wh, stamp_ns=stamp)
                est = model.update(face_id, frame)
                if est is not None:
                    last = est
            model.forget(face_id)
            if last is not None:
                probs[s] = last.probabilities
    labels = np.array(["" if not np.all(np.isfinite(p)) else model.class_names[int(np.argmax(p))]
                       for p in probs])
    return probs, labels


def write_csv(path, class_names, probs, labels) -> None:
    import csv
    import pathlib

    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", *class_names])
        for i, (p, lab) in enumerate(zip(probs, labels)):
            w.writerow([i, lab, *("" if v != v else f"{v:.6f}" for v in p)])


def run(args: argparse.Namespace) -> int:
    import sys

    from .. import classifiers
    from ..assets import ModelFileError

    try:
        arrays = load_arrays(args.input)
        model = classifiers.load(args.model)
        probs, labels = predict_arrays(model, arrays)
    except (OSError, ValueError, ModelFileError) as e:
        print(f"emotion-perception predict: {e}", file=sys.stderr)
        return 2
    write_csv(args.output, model.class_names, probs, labels)
    n_none = int((labels == "").sum())
    unit = "clips" if is_sequence_layout(arrays) else "rows"
    print(f"{args.model}: {len(labels)} {unit} -> {args.output}"
          + (f" ({n_none} without a face/estimate)" if n_none else ""))
    return 0
