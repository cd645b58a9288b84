"""Whole pipeline, offline: `emotion-perception run` on a real clip through every node
that is installed, over the real middleware in one process."""

import json
import time

import cv2
import numpy as np
import pytest

from emotion_perception.cli import main
from emotion_perception.launch_description import OUTPUT_TOPICS, describe
from emotion_perception.offline import OfflinePipeline
from emotion_perception.run_output import OUTPUT_FILES
from emotion_perception.sources import SourceError, open_source


@pytest.fixture(scope="module")
def single_face_run(video, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", str(video("single_face.mp4")), "--output", str(out), "--quiet"]) == 0
    return out


def test_run_writes_every_output_file(single_face_run):
    for name in OUTPUT_FILES:
        assert (single_face_run / name).stat().st_size > 0, name
    summary = json.loads((single_face_run / "summary.json").read_text())
    assert summary["frames"] == 72 and summary["frames_with_face"] == 72
    assert "landmark" in summary["nodes"]
    # every installed node runs; the only accepted reason not to is a model not shipped yet
    assert all(why.startswith("ModelFileError") for why in summary["nodes_not_started"].values()), \
        summary["nodes_not_started"]
    assert set(summary["nodes"]) | {n.replace("_node", "") for n in summary["nodes_not_started"]} == \
        {n.short for n in describe(available_only=True).nodes} - {"hri"}  # offline runs leave REP-155 out
    assert len(summary["faces"]) == 1  # one person, one stable id
    cap = cv2.VideoCapture(str(single_face_run / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
    ok, frame = cap.read()
    assert ok and frame.shape == (360, 640, 3)
    png = cv2.imread(str(single_face_run / "timeline.png"))
    assert png is not None and png.shape[1] >= 800


def test_every_frame_has_every_started_nodes_output(single_face_run):
    summary = json.loads((single_face_run / "summary.json").read_text())
    topics = {t for n in summary["nodes"] for t in OUTPUT_TOPICS[n]}
    lines = [json.loads(x) for x in (single_face_run / "frames.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(72))
    assert all(b["time_s"] > a["time_s"] for a, b in zip(lines, lines[1:]))
    for r in lines:
        assert r["missing"] == [] and set(r["latency_ms"]) == topics
        (face,) = r["faces"]
        assert face["face_id"] == lines[0]["faces"][0]["face_id"]
        x, y, w, h = face["bbox"]
        assert 150 < x < 300 and 60 < y < 160 and w > 100 and h > 130  # the man in the middle
        for model, e in face["emotions"].items():
            assert abs(sum(e["probabilities"].values()) - 1) < 1e-3
        if "emotion" in topics:
            assert face["fused"]["model"] == "fused"
        if "attention" in topics:
            assert 0 <= face["attention"]["looking_at_camera"] <= 1


def test_compressed_frames_give_the_same_faces(video, single_face_run):
    raw = [json.loads(x) for x in (single_face_run / "frames.jsonl").read_text().splitlines()][:5]
    desc = describe(compressed=True, available_only=True, enabled={"transformer": False, "lstm": False,
                                                                  "frame": False, "emotion_fusion": False,
                                                                  "attention": False, "image_emotion": False})
    with OfflinePipeline(desc) as op:
        results = [op.feed(f) for f in open_source(video("single_face.mp4"), max_frames=5)]
    late = [(r.index, r.missing) for r in results if r.missing]
    assert not late, f"frames whose outputs never came (index, topics): {late}"
    for r, ref in zip(results, raw):
        assert r.face_count == 1
        (face,) = r.faces.values()
        assert np.allclose(face["mesh"]["bbox"], ref["faces"][0]["bbox"], atol=8)  # JPEG q90 vs raw


def test_an_image_lost_on_the_way_is_sent_again(video):
    """The camera topic is best effort: an image that never reaches the landmark node
    is published again once (same stamp), so an offline run loses no frame."""
    desc = describe(available_only=True, enabled={s: False for s in ("transformer", "lstm", "frame", "emotion_fusion",
                                                                       "attention", "image_emotion")})
    with OfflinePipeline(desc) as op:
        frames = list(open_source(video("single_face.mp4"), max_frames=3))
        first = op.feed(frames[0])
        publish, calls = op.pub.publish, []

        def lose_first_copy(msg):
            calls.append(msg.header.stamp)
            if len(calls) > 1:
                publish(msg)

        op.pub.publish = lose_first_copy
        lost_once = op.feed(frames[1])
        op.pub.publish = publish
        after = op.feed(frames[2])
    assert not first.missing and not after.missing
    assert len(calls) == 2 and calls[0] == calls[1], "the lost image was not sent again with its stamp"
    assert op.resent == 1 and not lost_once.missing and lost_once.face_count == 1


def test_a_slow_image_is_not_sent_again_and_its_face_keeps_its_id(video):
    """An image that reached the landmark node and is only slow (a loaded machine: here
    MediaPipe held for 1.5 s) is not published again. A copy, timed by its arrival more
    than a second later, ended the face's track: one face came out under two ids."""
    from emotion_perception.offline import RESEND_AFTER_S

    desc = describe(available_only=True, enabled={s: False for s in ("transformer", "lstm", "frame", "emotion_fusion",
                                                                       "attention", "image_emotion")})
    with OfflinePipeline(desc) as op:
        frames = list(open_source(video("single_face.mp4"), max_frames=4))
        results = [op.feed(frames[0])]
        node = op.pipeline.nodes["landmark"]
        engines = node._engines
        detects = [e.detect for e in engines]

        def slow(detect):
            def run(*args, **kwargs):
                time.sleep(RESEND_AFTER_S + 0.5)
                return detect(*args, **kwargs)
            return run

        for e, d in zip(engines, detects):
            e.detect = slow(d)
        results.append(op.feed(frames[1]))
        for e, d in zip(engines, detects):
            e.detect = d
        results += [op.feed(f) for f in frames[2:]]
    assert op.resent == 0, "a slow image was sent again"
    assert all(not r.missing and r.face_count == 1 for r in results), [(r.index, r.missing) for r in results]
    ids = {i for r in results for i in r.faces}
    assert len(ids) == 1, f"one face, one id: {[list(r.faces) for r in results]}"


def test_no_face_clip_reports_no_face(video, tmp_path):
    assert main(["run", str(video("no_face.mp4")), "-o", str(tmp_path), "--quiet", "--max-frames", "10",
                 "--no-video"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 10 and summary["frames_with_face"] == 0 and summary["faces"] == {}
    assert not (tmp_path / "annotated.mp4").exists()


def test_image_folder_input(muxspace_images, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (path, _) in enumerate(muxspace_images[:3]):
        (folder / f"{i}{path.suffix}").write_bytes(path.read_bytes())
    src = open_source(folder)
    assert src.kind == "images" and src.count == 3
    frames = list(src)
    assert [f.time_s for f in frames] == [0.0, 0.1, 0.2] and frames[0].rgb.ndim == 3


def test_an_unreadable_image_in_a_folder_is_left_out_and_the_others_keep_their_times(muxspace_images, tmp_path,
                                                                                    capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (path, _) in enumerate(muxspace_images[:3]):
        (folder / f"{i}{path.suffix}").write_bytes(path.read_bytes())
    (folder / "1b.png").write_bytes(b"")  # sorts between 1 and 2: an empty file
    src = open_source(folder)
    seen = []
    src.on_skip = lambda where, why: seen.append(where)
    frames = list(src)
    assert [f.time_s for f in frames] == [0.0, 0.1, 0.3]  # 1b.png keeps its place in time
    assert [f.index for f in frames] == [0, 1, 2]
    assert seen == [str(folder / "1b.png")] and src.skipped[0][0] == str(folder / "1b.png")
    assert "not a readable image" in src.skipped[0][1]

    # the run goes on past it, says so in one line and lists it in the summary
    assert main(["run", str(folder), "-o", str(tmp_path / "out"), "--quiet", "--no-video"]) == 0
    err = capsys.readouterr().err
    assert err.count("left out") == 1 and "1b.png" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 3 and [s["input"] for s in summary["inputs_skipped"]] == [str(folder / "1b.png")]

    # nothing readable at all: an error, not an empty result
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"not a jpeg")
    assert main(["run", str(tmp_path / "bad"), "-o", str(tmp_path / "o2"), "--quiet", "--no-video"]) == 2
    assert "no frame could be read" in capsys.readouterr().err


def test_a_single_image_file_runs_as_one_frame(muxspace_images, tmp_path):
    path = muxspace_images[0][0]
    src = open_source(path)
    assert src.kind == "images" and src.count == 1
    (frame,) = list(src)
    assert frame.rgb.shape == cv2.imread(str(path)).shape


def test_unreadable_inputs_get_clear_errors(tmp_path, capsys):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot open|no frame"):
        open_source(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path / "empty")
    with pytest.raises(SourceError, match="no such camera"):
        open_source("/dev/video99")
    assert main(["run", str(junk), "-o", str(tmp_path / "o")]) == 2
    assert "junk.mp4" in capsys.readouterr().err


def test_run_on_a_compressed_bag_replays_it_compressed(video, tmp_path):
    from emotion_perception.bags import video_to_bag

    bag = tmp_path / "bag"
    video_to_bag(video("single_face.mp4"), bag, compressed=True, storage="mcap", max_frames=6)
    out = tmp_path / "out"
    assert main(["run", str(bag), "-o", str(out), "--quiet", "--no-lstm", "--no-transformer", "--no-frame",
                 "--no-fusion", "--no-attention"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_kind"] == "rosbag2" and summary["compressed"] is True
    assert summary["frames"] == 6 and summary["frames_with_face"] == 6
    assert set(summary["nodes"]) == {"landmark", "image_emotion"}
    assert summary["faces"]["face_1"]["majority"]["image"]  # crops of the decompressed frames reached image_emotion
