"""`make demo`: the CREMA-D clips are checked against the fetch script's sha256 table
and run through the pipeline; the table names the acted and predicted emotion."""

import shutil

import numpy as np
import pytest

from emotion_perception.cli import demo, main

CLIPS = demo.REPO / ".cache" / "cremad"


def test_clip_table_is_the_fetch_scripts():
    table = demo.clip_table()
    assert len(table) == 6 and {lab for lab, _ in table.values()} == {"angry", "disgust", "fear", "happy",
                                                                       "neutral", "sad"}


def test_clips_are_verified(tmp_path):
    assert demo.verify_clips(CLIPS)["1001_DFA_HAP_XX.flv"] == "happy"  # fetched by make setup
    for name in demo.clip_table():
        shutil.copy(CLIPS / name, tmp_path / name)
    with open(tmp_path / "1001_DFA_SAD_XX.flv", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="1001_DFA_SAD_XX.flv: sha256"):
        demo.verify_clips(tmp_path)
    (tmp_path / "1001_DFA_ANG_XX.flv").unlink()
    with pytest.raises(FileNotFoundError, match="make setup"):
        demo.verify_clips(tmp_path)


def test_demo_on_one_clip_prints_the_table_and_credit(tmp_path, capsys):
    assert main(["demo", "--clip", "1001_DFA_HAP_XX.flv", "--no-video", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("1001_DFA_HAP_XX.flv"))
    assert row.split()[1] == "happy"
    assert "CREMA-D" in out and "Open Database License" in out
    assert "with their actor left out of that fit it gets" in out  # the shipped fit's record names the clip
    assert (tmp_path / "1001_DFA_HAP_XX" / "summary.json").is_file()
    assert main(["demo", "--clip", "nope.flv", "-o", str(tmp_path)]) == 2


def _record(i, fused, image, lstm):
    """One frame of ``frames.jsonl`` with one face: 7-class probability vectors per output."""
    from emotion_perception.types import EMOTIONS_7

    def est(model, p):
        return {"model": model, "label": EMOTIONS_7[int(np.argmax(p))], "confidence": float(max(p)),
                "confident": True, "probabilities": dict(zip(EMOTIONS_7, map(float, p))), "frames_used": 1}

    emotions = {k: est(k, p) for k, p in (("image", image), ("lstm", lstm)) if p is not None}
    face = {"face_id": "face_1", "bbox": [0, 0, 100, 100], "emotions": emotions,
            "fused": est("fused", fused) if fused is not None else None}
    return {"frame": i, "time_s": i / 25, "stamp_ns": i, "faces": [face], "missing": [], "latency_ms": {}}


def _p(**kw):
    from emotion_perception.types import EMOTIONS_7

    p = np.full(7, 0.0)
    for k, v in kw.items():
        p[EMOTIONS_7.index(k)] = v
    rest = (1 - p.sum()) / np.count_nonzero(p == 0)
    return np.where(p == 0, rest, p)


def test_the_table_shows_the_clip_label_that_evaluate_video_scores_not_the_majority_of_frames():
    from emotion_perception import video_eval
    from emotion_perception.run_output import summarise

    # two frames lean neutral a little, one is sad for sure: the majority of frames says
    # neutral, the mean of the probabilities (the documented clip rule) says sad
    fused = [_p(neutral=0.45, sad=0.4), _p(neutral=0.45, sad=0.4), _p(sad=0.94)]
    image = [_p(happy=0.6)] * 3
    records = [_record(i, f, im, None) for i, (f, im) in enumerate(zip(fused, image))]
    face = summarise(records, {})["faces"]["face_1"]
    assert face["majority"]["fused"] == "neutral"
    assert face["clip_label"]["fused"] == "sad" == video_eval.clip_decision(video_eval.streams(records)["fused"]["p"])[0]
    label, p, source = demo.predicted(summarise(records, {}))
    assert (label, source) == ("sad", "fused") and p == pytest.approx(np.mean([0.4, 0.4, 0.94]), abs=1e-3)

    # no fused estimate: the image model before the LSTM
    records = [_record(i, None, _p(happy=0.6), _p(angry=0.9)) for i in range(3)]
    assert demo.predicted(summarise(records, {}))[::2] == ("happy", "image")
    records = [_record(i, None, None, _p(angry=0.9)) for i in range(3)]
    assert demo.predicted(summarise(records, {}))[::2] == ("angry", "lstm")
    assert demo.predicted({"faces": {}}) == (None, 0.0, "-")


def test_held_out_count_comes_from_the_fusion_record(monkeypatch):
    import emotion_perception.fusion as fusion

    record = {"video": {"leave_one_actor_out": {"fused": {"clips": [
        {"clip": "a.flv", "label": "sad", "decided": "sad"}, {"clip": "b.flv", "label": "fear", "decided": "sad"}]}}}}
    monkeypatch.setattr(fusion, "load_params", lambda: (None, record))
    assert demo.held_out_right(["a.flv", "b.flv"]) == (1, 2)
    assert demo.held_out_right(["a.flv", "c.flv"]) is None  # a clip the fit never saw: no claim
    monkeypatch.setattr(fusion, "load_params", lambda: (None, {}))
    assert demo.held_out_right(["a.flv"]) is None
