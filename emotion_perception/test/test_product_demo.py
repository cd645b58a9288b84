"""`make demo`: the CREMA-D clips are checked against the fetch script's sha256 table
and run through the pipeline; the table names the acted and predicted emotion."""

import shutil

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
    assert (tmp_path / "1001_DFA_HAP_XX" / "summary.json").is_file()
    assert main(["demo", "--clip", "nope.flv", "-o", str(tmp_path)]) == 2


def test_prediction_prefers_the_fused_majority():
    s = {"faces": {"face_1": {"frames": 10, "majority": {"fused": "sad", "lstm": "happy"},
                              "label_counts": {"lstm": {"happy": 10}}, "mean_fused_probabilities": {"sad": 0.6}}}}
    assert demo.predicted(s) == ("sad", 0.6, "fused")
    del s["faces"]["face_1"]["majority"]["fused"]
    assert demo.predicted(s) == ("happy", 1.0, "lstm")
    assert demo.predicted({"faces": {}}) == (None, 0.0, "-")
