"""``emotion-perception predict`` and ``evaluate`` on small real-data files, both
array layouts, NaN (no face) rows, and class-set mismatch."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from emotion_perception import classifiers
from emotion_perception.cli import main
from emotion_perception.cli.evaluate import map_labels


@pytest.fixture(scope="module")
def frame_npz(tmp_path_factory, data_dir):
    with np.load(data_dir / "rafdb_blendshapes" / "test.npz", allow_pickle=False) as z:
        b, y = z["blendshapes"][:40].copy(), z["label"][:40]
    b[3] = np.nan  # no face in row 3
    p = tmp_path_factory.mktemp("npz") / "frames.npz"
    np.savez(p, blendshapes=b, label=y)
    return p, b, y


@pytest.fixture(scope="module")
def sequence_npz(tmp_path_factory, data_dir):
    """Three clips of RAF-DB test faces (10 frames each, the second with a gap)."""
    with np.load(data_dir / "rafdb_blendshapes" / "test.npz", allow_pickle=False) as z:
        b, y = z["blendshapes"], z["label"]
    rows, labels = [], []
    for lab in ("happy", "sad", "surprise"):
        i = np.flatnonzero(y == lab)[:10]
        rows.append(b[i])
        labels.append(lab)
    frames = np.concatenate(rows).astype(np.float32)
    frames[14] = np.nan
    p = tmp_path_factory.mktemp("npz") / "clips.npz"
    np.savez(p, blendshapes=frames, timestamp_ms=np.arange(30, dtype=np.int64) * 33,
             sequence_start=np.array([0, 10, 20]), sequence_length=np.array([10, 10, 10]),
             label=np.array(labels), fps=np.full(3, 30.0))
    return p, frames


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_predict_frame_layout(tmp_path, frame_npz):
    path, b, _ = frame_npz
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", "lstm", "--input", str(path), "--output", str(out)]) == 0
    rows = _read(out)
    m = classifiers.load("lstm")
    assert list(rows[0]) == ["index", "label", *m.class_names] and len(rows) == 40
    assert rows[3]["label"] == "" and rows[3]["happy"] == ""
    ok = np.isfinite(b[:, 0])
    expected = m.predict_frames(blendshapes=b[ok])
    got = np.array([[float(r[c]) for c in m.class_names] for r, k in zip(rows, ok) if k])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_predict_sequence_layout_feeds_clips_like_the_node(tmp_path, sequence_npz):
    from emotion_perception.classifiers.base import FrameInput

    path, frames = sequence_npz
    out = tmp_path / "s.csv"
    assert main(["predict", "--model", "lstm", "--input", str(path), "--output", str(out)]) == 0
    rows = _read(out)
    assert len(rows) == 3
    m = classifiers.load("lstm")
    # clip 1 had no face at frame 14: the model forgot the face, so the final estimate
    # rests on frames 15..19 only
    for f in range(15, 20):
        e = m.update("x", FrameInput(blendshapes=frames[f]))
    assert e.frames_used == 5
    np.testing.assert_allclose([float(rows[1][c]) for c in m.class_names], e.probabilities, atol=1e-5)


def test_evaluate_writes_metrics_and_plots(tmp_path, frame_npz):
    path, _, y = frame_npz
    assert main(["evaluate", "--model", "lstm", "--input", str(path), "--output", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_total"] == 40 and m["no_estimate"] == 1 and m["n_scored"] == 39
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
    assert np.sum(m["confusion_matrix"]) == 39
    for f in ("confusion_matrix.png", "roc.png", "predictions.csv"):
        assert (tmp_path / f).stat().st_size > 1000 or f == "predictions.csv"


def test_evaluate_class_mismatch(tmp_path, sequence_npz):
    path, _ = sequence_npz
    # 3-class model: surprise counts as unknown
    assert map_labels(["happy", "surprise", "sad", "contempt"], ("happy", "sad", "unknown")) == [
        "happy", "unknown", "sad", "unknown"]
    # 6-class model: surprise (and contempt) rows are left out and counted
    assert map_labels(["surprise", "fear"], ("angry", "disgust", "fear", "happy", "neutral", "sad")) == [None, "fear"]
    assert main(["evaluate", "--model", "lstm-3class", "--input", str(path), "--output", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_scored"] == 3 and m["excluded_labels"] == {}
    assert sum(m["confusion_matrix"][2]) == 1  # the surprise clip scored as unknown


def test_predict_refuses_missing_inputs(tmp_path, frame_npz, capsys):
    path, _, _ = frame_npz
    assert main(["predict", "--model", "transformer", "--input", str(path), "--output", str(tmp_path / "x.csv")]) == 2
    assert "needs landmarks" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_a_file_that_is_not_a_npz_of_arrays_is_one_line_naming_it(tmp_path, frame_npz, capsys):
    """predict and evaluate: exit status 2 and one line, not numpy's traceback."""
    good, _, _ = frame_npz
    (tmp_path / "text.npz").write_text("not numpy\n")
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:200])
    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "pickled.npz", a=np.array([{"x": 1}], dtype=object))
    (tmp_path / "no_photos").mkdir()
    cases = {"missing.npz": "no such file", "text.npz": "not a .npz of arrays", "cut.npz": "not a .npz of arrays",
             "one.npy": "a single array (.npy)", "pickled.npz": "not a .npz of arrays",
             "no_photos": "no images listed"}
    for name, reason in cases.items():
        for command in ("predict", "evaluate", "attention")[:2 if name == "no_photos" else 3]:
            out = tmp_path / f"{command}-{name}"
            model = [] if command == "attention" else ["--model", "lstm"]
            assert main([command, *model, "--input", str(tmp_path / name), "--output", str(out)]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and name in err and reason in err, err
            assert not out.exists()


def test_train_without_its_data_names_what_is_missing(tmp_path, capsys):
    """A clone without ../shared: train says where it looked and how to point it at the data."""
    assert main(["train", "lstm", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no training data at" in err and "--data" in err and "EMOTION_PERCEPTION_DATA" in err
    (tmp_path / "data").mkdir()
    for target, missing in (("lstm", "rafdb_blendshapes/train.npz"), ("image-cnn", "train.npz")):
        assert main(["train", target, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and missing in err, err
    assert not any((tmp_path / "out").glob("*.tflite"))
