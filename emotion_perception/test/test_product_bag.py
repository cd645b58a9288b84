"""Bag round trip on a real clip: video -> rosbag2 (sqlite3/mcap, Image/CompressedImage)
-> replay into the running nodes -> evaluation report; loops and time jumps; bags
with several topics as `ros2 bag record` writes them."""

import json

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer

from emotion_perception.bags import flicker_per_minute, read_labels, video_to_bag
from emotion_perception.cli import main
from emotion_perception.sources import BagSource, SourceError, bag_typestore, open_source

FRAMES = 24  # 0.8 s of single_face.mp4 keeps the four round trips quick


@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("mcap", True)])
def test_round_trip_report(video, tmp_path, storage, compressed):
    bag = tmp_path / "bag"
    args = ["bag", "from-video", str(video("single_face.mp4")), str(bag), "--storage", storage,
            "--max-frames", str(FRAMES)] + (["--compressed"] if compressed else [])
    assert main(args) == 0
    with Reader(bag) as r:
        (conn,) = r.connections
        assert conn.msgtype == ("sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image")
        assert conn.topic == ("/camera/image_raw/compressed" if compressed else "/camera/image_raw")
        assert r.message_count == FRAMES
    frames = list(open_source(bag))
    ref = list(open_source(video("single_face.mp4"), max_frames=FRAMES))
    steps = np.diff([f.stamp_ns for f in frames]) / 1e9
    assert np.allclose(steps, 1 / 30, atol=2e-3)  # the video's own frame times
    err = np.abs(frames[5].rgb.astype(int) - ref[5].rgb.astype(int)).mean()
    assert err == 0 if not compressed else err < 3
    labels = tmp_path / "labels.csv"
    labels.write_text("start_s,end_s,label\n0,0.4,happy\n0.4,10,neutral\n")
    out = tmp_path / "report"
    assert main(["bag", "evaluate", str(bag), "--labels", str(labels), "-o", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["frames"] == FRAMES and rep["frames_dropped"] == 0 and rep["frames_with_face"] == FRAMES
    assert rep["labelled_frames"] == FRAMES and set(rep["per_class_accuracy"]) == {"happy", "neutral"}
    assert 0 <= rep["macro_f1"] <= 1 and len(rep["spans"]) == 2
    assert rep["latency_ms"]["n"] == FRAMES and rep["latency_ms"]["median"] > 0
    assert rep["stamps_not_increasing"] == 0
    for f in ("report.md", "confusion.png", "latency.png", "frames.jsonl", "timeline.png"):
        assert (out / f).stat().st_size > 0, f
    assert "macro-F1" in (out / "report.md").read_text()


def test_looping_bag_with_stamps_jumping_back(video, tmp_path):
    bag = tmp_path / "loop"
    info = video_to_bag(video("single_face.mp4"), bag, max_frames=8, loops=3)
    assert info["frames"] == 24
    frames = list(BagSource(bag))
    stamps = [f.stamp_ns for f in frames]
    assert stamps[8] < stamps[7] and stamps[16] < stamps[15]  # header time jumps back twice
    assert all(b.time_s > a.time_s for a, b in zip(frames, frames[1:]))  # recording time goes on
    # as recorded: every frame is replayed and accounted for; the landmark node starts
    # a new face id after each jump back (its tracker restarts); nodes that refuse
    # older stamps show up as missing outputs, not as a crash or mixed-up frames
    out = tmp_path / "r"
    assert main(["bag", "evaluate", str(bag), "-o", str(out), "--quiet", "--frame-timeout", "1"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["stamps_not_increasing"] == 2 and rep["frames"] == 24 and rep["frames_with_face"] == 24
    lines = [json.loads(x) for x in (out / "frames.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(24))
    assert all("faces/mesh" not in r["missing"] and r["face_count"] == 1 for r in lines)
    assert rep["frames_dropped"] == sum(1 for r in lines if r["missing"])
    # restamped from the recording time: a clean replay, nothing dropped
    out2 = tmp_path / "r2"
    assert main(["bag", "evaluate", str(bag), "--stamps", "recording", "-o", str(out2), "--quiet"]) == 0
    rep2 = json.loads((out2 / "report.json").read_text())
    assert rep2["stamps"] == "recording" and rep2["frames_dropped"] == 0 and rep2["frames_with_face"] == 24
    lines = [json.loads(x) for x in (out2 / "frames.jsonl").read_text().splitlines()]
    ids = [(r["frame"], r["faces"][0]["face_id"]) for r in lines]
    assert len({i for _, i in ids}) == 1, f"one person, tracked throughout: {ids}"


def test_ros2_bag_record_style_bag_with_several_topics(video, tmp_path):
    """Two image topics and a string topic, bgr8, as a camera driver records them."""
    ts = bag_typestore()
    Image, Header, Time = (ts.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                  "builtin_interfaces/msg/Time"))
    String = ts.types["std_msgs/msg/String"]
    frames = list(open_source(video("single_face.mp4"), max_frames=3))
    bag = tmp_path / "rec"
    with Writer(bag, version=8) as w:
        cam = w.add_connection("/cam/color/image_raw", Image.__msgtype__, typestore=ts)
        depth = w.add_connection("/cam/depth/image_raw", Image.__msgtype__, typestore=ts)
        log = w.add_connection("/rosout_text", String.__msgtype__, typestore=ts)
        for i, f in enumerate(frames):
            t = 5_000_000_000 + i * 33_000_000
            h, wd = f.rgb.shape[:2]
            msg = Image(header=Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id="cam"), height=h,
                        width=wd, encoding="bgr8", is_bigendian=0, step=wd * 3,
                        data=np.ascontiguousarray(f.rgb[:, :, ::-1]).reshape(-1))
            w.write(cam, t, ts.serialize_cdr(msg, Image.__msgtype__))
            w.write(depth, t, ts.serialize_cdr(msg, Image.__msgtype__))
            w.write(log, t, ts.serialize_cdr(String(data="hi"), String.__msgtype__))
    with pytest.raises(SourceError, match="several image topics"):
        BagSource(bag)
    with pytest.raises(SourceError, match="no sensor_msgs"):
        BagSource(bag, topic="/rosout_text")
    src = BagSource(bag, topic="/cam/color/image_raw")
    got = list(src)
    assert len(got) == 3 and got[1].stamp_ns == 5_033_000_000 and got[0].frame_id == "cam"
    assert np.array_equal(got[0].rgb, frames[0].rgb)  # bgr8 decoded back to the same RGB
    out = tmp_path / "o"
    assert main(["bag", "evaluate", str(bag), "--topic", "/cam/color/image_raw", "-o", str(out), "--quiet"]) == 0
    assert json.loads((out / "report.json").read_text())["frames_with_face"] == 3


def test_labels_files(tmp_path):
    spans = tmp_path / "s.csv"
    spans.write_text("start_s,end_s,label\n0,1,Happy\n2,3,sad\n")
    at, layout, _ = read_labels(spans, "bag")
    assert layout == "spans" and at(0.5) == "happy" and at(1.5) is None and at(2.0) == "sad"
    clips = tmp_path / "c.csv"
    clips.write_text("clip,label\n1001_DFA_ANG_XX.flv,angry\n")
    at, layout, _ = read_labels(clips, "1001_DFA_ANG_XX")
    assert layout == "clip" and at(123.0) == "angry"
    with pytest.raises(ValueError, match="no row"):
        read_labels(clips, "other")
    bad = tmp_path / "b.csv"
    bad.write_text("start_s,end_s,label\n2,1,sad\n")
    with pytest.raises(ValueError, match="not after"):
        read_labels(bad, "x")


def test_flicker_counts_label_changes_per_minute():
    assert flicker_per_minute([0, 1, 2, 3], ["a", "b", "b", "a"]) == pytest.approx(40.0)
    assert flicker_per_minute([0, 1], [None, "a"]) == 0.0


def test_from_video_refuses_to_overwrite(video, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["bag", "from-video", str(video("single_face.mp4")), str(tmp_path / "x")]) == 2
    assert "exists" in capsys.readouterr().err


def test_recorded_rate_replay_counts_what_the_nodes_missed(video, tmp_path):
    bag = tmp_path / "b"
    video_to_bag(video("single_face.mp4"), bag, max_frames=15, storage="mcap")
    out = tmp_path / "r"
    assert main(["bag", "evaluate", str(bag), "--rate", "recorded", "-o", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["rate"] == "recorded" and rep["frames_in_bag"] == 15
    # at the recorded 30 Hz a node that keeps only the latest frame may skip some; every
    # frame is accounted for either way
    lines = [json.loads(x) for x in (out / "frames.jsonl").read_text().splitlines()]
    assert rep["frames_dropped"] == sum(1 for r in lines if r["missing"]) + (15 - len(lines))
    assert rep["frames_with_face"] >= 1 and rep["wall_time_s"] >= 0.45  # 14 frame gaps of 33 ms


def test_an_undecodable_message_in_a_bag_is_left_out_and_counted(video, tmp_path, capsys):
    """One corrupt JPEG among good ones (a recorder's dropped bytes): the replay goes on
    past it, and the report counts it apart from frames the nodes dropped."""
    good = tmp_path / "good"
    video_to_bag(video("single_face.mp4"), good, compressed=True, max_frames=6)
    ts = bag_typestore()
    bag = tmp_path / "one_bad"
    with Reader(good) as r, Writer(bag, version=8) as w:
        (conn,) = r.connections
        out = w.add_connection(conn.topic, conn.msgtype, typestore=ts)
        for i, (_, t, raw) in enumerate(r.messages()):
            if i == 3:
                msg = ts.deserialize_cdr(raw, conn.msgtype)
                msg.data = np.frombuffer(b"\xff\xd8 not a jpeg", dtype=np.uint8)
                raw = ts.serialize_cdr(msg, conn.msgtype)
            w.write(out, t, raw)
    src = BagSource(bag)
    frames = list(src)
    assert len(frames) == 5 and [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert len(src.skipped) == 1 and src.skipped[0][0].startswith(f"{src.topic} message 3 ")
    out = tmp_path / "report"
    assert main(["bag", "evaluate", str(bag), "-o", str(out), "--quiet"]) == 0
    assert "left out" in capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["frames"] == 5 and rep["frames_dropped"] == 0 and len(rep["inputs_skipped"]) == 1
    assert "messages left out, not decodable | 1 |" in (out / "report.md").read_text()
