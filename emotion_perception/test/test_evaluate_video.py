"""Labelled-video evaluation: the scoring rules on made-up runs (core), and
`emotion-perception evaluate-video` through the real nodes on fixture clips (product)."""

import json

import numpy as np
import pytest

from emotion_perception import video_eval
from emotion_perception.cli import main
from emotion_perception.fusion import PoolingParams
from emotion_perception.types import EMOTIONS_7


def _est(model, probs, confident=True, classes=EMOTIONS_7):
    return {"model": model, "label": classes[int(np.argmax(probs))], "confidence": float(max(probs)),
            "confident": confident, "probabilities": dict(zip(classes, map(float, probs))), "frames_used": 1}


def _one_hot(label, high=0.7, classes=EMOTIONS_7):
    p = np.full(len(classes), (1 - high) / (len(classes) - 1))
    p[classes.index(label)] = high
    return p


def _records(per_frame):
    """per_frame: list of {key: estimate dict} for the main face, plus a smaller second face."""
    recs = []
    for i, ests in enumerate(per_frame):
        fused = ests.pop("fused", None)
        faces = [{"face_id": "face_1", "bbox": [0, 0, 100, 100], "emotions": ests, "fused": fused},
                 {"face_id": "face_2", "bbox": [200, 0, 20, 20], "emotions": {"image": _est("image-cnn", _one_hot(
                     "surprise", 0.99))}, "fused": None}]
        recs.append({"frame": i, "time_s": i / 25, "stamp_ns": 1_000_000_000 + i * 40_000_000, "faces": faces})
    return recs


def test_clip_label_is_the_argmax_of_the_mean_and_the_main_face_is_scored():
    # two confident angry frames at 0.4, one happy frame at 0.95: the mean says happy
    # (0.4+0.4+0.0083 vs 0.1+0.1+0.95 split); the small face's surprise is ignored
    frames = [{"image": _est("image-cnn", _one_hot("angry", 0.4))} for _ in range(2)]
    frames.append({"image": _est("image-cnn", _one_hot("happy", 0.95))})
    s = video_eval.streams(_records(frames))
    assert set(s) == {"image"} and s["image"]["model"] == "image-cnn"
    mean = (2 * _one_hot("angry", 0.4) + _one_hot("happy", 0.95)) / 3
    label, m = video_eval.clip_decision(s["image"]["p"])
    assert label == EMOTIONS_7[int(np.argmax(mean))] == "happy"
    np.testing.assert_allclose(m, mean, atol=1e-6)
    assert video_eval.clip_decision(np.zeros((0, 7))) == (None, None)


def test_the_other_clip_rules_are_reported_beside_the_documented_one():
    # 3 frames angry at 0.5 (flagged confident), 1 frame happy at 0.97, angry at 1e-5
    # (unflagged): the mean says angry, the mean of logs lets the one frame veto angry,
    # the vote of confident frames says angry; without a flagged frame the vote falls
    # back to the mean
    p = np.array([_one_hot("angry", 0.5)] * 3 + [_one_hot("happy", 0.97)])
    p[3, EMOTIONS_7.index("angry")] = 1e-5
    conf = np.array([True, True, True, False])
    d = video_eval.clip_decisions(p, conf)
    assert list(d) == list(video_eval.CLIP_RULES)
    assert d["mean_probability"] == video_eval.clip_decision(p)[0] == "angry"
    assert d["mean_log_probability"] != "angry"
    assert d["vote_of_confident_frames"] == "angry"
    only_happy_flagged = video_eval.clip_decisions(p, ~conf)
    assert only_happy_flagged["vote_of_confident_frames"] == "happy"
    assert video_eval.clip_decisions(p, np.zeros(4, bool))["vote_of_confident_frames"] == "angry"
    assert video_eval.clip_decisions(np.zeros((0, 7)), None) == {r: None for r in video_eval.CLIP_RULES}


def test_members_with_fewer_classes_are_mapped_onto_the_seven():
    six = EMOTIONS_7[:6]
    s = video_eval.streams(_records([{"transformer": _est("transformer", _one_hot("sad", 0.9, six), classes=six)}]))
    p = s["transformer"]["p"][0]
    assert p.shape == (7,) and p[EMOTIONS_7.index("surprise")] == pytest.approx(1 / 7, abs=1e-6)
    assert EMOTIONS_7[int(np.argmax(p))] == "sad"


def test_scores_count_clips_frames_and_the_confident_flag():
    # clip A (happy): image right on 3 frames, confident on 2 of them; fused wrong
    # clip B (sad): image says neutral confidently (the failure), no fused output
    a = [{"image": _est("image-cnn", _one_hot("happy"), confident=c), "fused": _est("fused", _one_hot("neutral"))}
         for c in (True, True, False)]
    b = [{"image": _est("image-cnn", _one_hot("neutral", 0.99), confident=True)} for _ in range(2)]
    clips = [{"name": "a.mp4", "label": "happy", "subject": "x", "streams": video_eval.streams(_records(a))},
             {"name": "b.mp4", "label": "sad", "subject": "y", "streams": video_eval.streams(_records(b))}]
    r = video_eval.score_clips(clips)
    img, fused = r["models"]["image"], r["models"]["fused"]
    assert img["clip"]["right"] == 1 and img["clip"]["accuracy"] == 0.5
    assert img["clip"]["confusion"] == {"happy": {"happy": 1}, "sad": {"neutral": 1}}
    assert fused["clip"]["right"] == 0 and fused["clip"]["no_estimate"] == 1
    assert fused["clip"]["confusion"]["sad"] == {"none": 1}
    assert img["clip"]["right_by_rule"] == {r: 1 for r in video_eval.CLIP_RULES}
    assert fused["clip"]["right_by_rule"] == {r: 0 for r in video_eval.CLIP_RULES}
    f = img["frame"]
    assert f["n"] == 5 and f["accuracy"] == 0.6
    assert f["confident_share"] == 0.8 and f["accuracy_when_confident"] == 0.5
    assert f["accuracy_when_not_confident"] == 1.0
    # over-confident wrong frames make a large calibration error
    assert f["ece"] > 0.3
    rows = {row["clip"]: row for row in r["clips"]}
    assert rows["b.mp4"]["image"] == "neutral" and rows["b.mp4"]["fused"] is None
    assert rows["a.mp4"]["image_frames"] == 3
    assert "image" in video_eval.table(r) and "fused" in video_eval.table(r)


def test_replay_fusion_follows_the_pooling_weights():
    frames = [{"image": _est("image-cnn", _one_hot("sad", 0.6)), "lstm": _est("lstm", _one_hot("happy", 0.9))}
              for _ in range(10)]
    recs = _records(frames)
    image_only = PoolingParams.single({"image-cnn": 1.0, "lstm": 1.0}, {"image-cnn": 1.0, "lstm": 0.0}, np.zeros(7))
    lstm_heavy = PoolingParams.single({"image-cnn": 1.0, "lstm": 1.0}, {"image-cnn": 0.2, "lstm": 1.0}, np.zeros(7))
    a = video_eval.replay_fusion(recs, image_only, smoothing_tau_s=0.0, warmup_s=0.0, min_confidence=0.5)
    b = video_eval.replay_fusion(recs, lstm_heavy, smoothing_tau_s=0.0, warmup_s=0.0, min_confidence=0.5)
    assert len(a["p"]) == 10 and list(a["frame"]) == list(range(10))
    assert video_eval.clip_decision(a["p"])[0] == "sad"
    np.testing.assert_allclose(a["p"][0], _one_hot("sad", 0.6), atol=1e-5)
    assert video_eval.clip_decision(b["p"])[0] == "happy"
    assert a["confident"].all()  # 0.6 >= min_confidence 0.5
    assert not video_eval.replay_fusion(recs, image_only, smoothing_tau_s=0.0, warmup_s=0.0,
                                        min_confidence=0.7)["confident"].any()


def test_labels_file_is_checked(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("path,label\nx.mp4,bored\n")
    with pytest.raises(ValueError, match="bored"):
        video_eval.read_labels(bad)
    crema = tmp_path / "crema.csv"
    crema.write_text("clip,label\n1001_DFA_ANG_XX.flv,Angry\n")
    assert video_eval.read_labels(crema)[0]["path"] == "1001_DFA_ANG_XX.flv"
    assert video_eval.read_labels(crema)[0]["label"] == "angry"


# ---------------------------------------------------------------- product: the real nodes

@pytest.fixture(scope="module")
def labelled_folder(video, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for name in ("single_face.mp4", "no_face.mp4"):
        (folder / name).symlink_to(video(name))
    (folder / "labels.csv").write_text("path,label,subject\nsingle_face.mp4,neutral,a\nno_face.mp4,happy,\n")
    return folder


def test_evaluate_video_runs_the_nodes_and_reuses_its_cache(labelled_folder, tmp_path, monkeypatch, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["evaluate-video", str(labelled_folder), "--output", str(out), "--cache", str(cache),
            "--max-frames", "12", "--quiet"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_clips"] == 2
    # every classifier node's output and the fusion's are scored
    assert {"fused", "image", "frame", "lstm", "transformer"} <= set(m["models"])
    rows = {r["clip"]: r for r in m["clips"]}
    assert rows["single_face.mp4"]["image_frames"] == 12 and rows["single_face.mp4"]["fused_frames"] == 12
    assert rows["single_face.mp4"]["fused"] in EMOTIONS_7
    assert rows["no_face.mp4"]["fused"] is None and m["models"]["fused"]["clip"]["no_estimate"] == 1
    assert m["models"]["fused"]["frame"]["n"] == 12
    assert (out / "clips.csv").read_text().startswith("clip,label,subject")
    assert "clips right" in capsys.readouterr().out
    # the second evaluation reads the cached runs: no node runs
    from emotion_perception.cli import evaluate_video

    def no_run(*a, **k):
        raise AssertionError("clip run again despite the cache")

    monkeypatch.setattr(evaluate_video, "run_clip", no_run)
    out2 = tmp_path / "out2"
    assert main(args[:3] + [str(out2)] + args[4:] + ["--subject", "x"]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["models"] == m["models"]
    # --subject names the person of rows without one, and only those
    assert [r["subject"] for r in m["clips"]] == ["a", ""]
    assert [r["subject"] for r in m2["clips"]] == ["a", "x"]


def test_evaluate_video_keeps_the_nodes_start_up_lines_out_unless_asked(labelled_folder, tmp_path, capfd):
    """Each clip starts the nodes again: at the default level (warn, as ``run``) their
    INFO start-up lines do not repeat for every clip; ``--log-level info`` shows them."""
    args = ["evaluate-video", str(labelled_folder), "--max-frames", "3", "--quiet"]
    assert main(args + ["--output", str(tmp_path / "a")]) == 0
    quiet = capfd.readouterr()
    assert "clips right" in quiet.out
    assert "[INFO]" not in quiet.err + quiet.out
    assert main(args + ["--output", str(tmp_path / "b"), "--log-level", "info"]) == 0
    loud = capfd.readouterr()
    assert "[INFO]" in loud.err + loud.out and "landmark_node" in loud.err + loud.out


def test_evaluate_video_refuses_a_missing_clip(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("path,label\nnot_there.mp4,sad\n")
    assert main(["evaluate-video", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "not_there.mp4: no such file" in capsys.readouterr().err
    (tmp_path / "labels.csv").unlink()
    assert main(["evaluate-video", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "labels.csv: no labels file" in err and "--labels" in err
    assert main(["evaluate-video", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    assert "nope: no such folder" in capsys.readouterr().err


def test_stream_profile_fit_gives_weight_to_the_member_that_reads_video(tmp_path):
    """training.fusion_video on made-up runs: the LSTM names each clip's emotion, the
    image model says neutral; fitted without each actor in turn, the stream profile
    gets the held-out actors' clips right where the image profile alone does not."""
    from emotion_perception.training import fusion_video as V

    rng = np.random.default_rng(0)
    rows = []
    clips = tmp_path / "run" / "clips"
    for actor in ("a", "b", "c"):
        for label in ("happy", "sad", "angry"):
            name = f"{actor}_{label}.mp4"
            frames = [{"image": _est("image-cnn", _one_hot("neutral", 0.8)),
                       "lstm": dict(_est("lstm", _one_hot(label, 0.5)), frames_used=i + 1)} for i in range(20)]
            (clips / f"{actor}_{label}").mkdir(parents=True)
            (clips / f"{actor}_{label}" / "frames.jsonl").write_text(
                "\n".join(json.dumps(r) for r in _records(frames)) + "\n")
            rows.append({"clip": name, "label": label, "subject": actor})
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"clips": rows}))
    members = ["image-cnn", "lstm"]
    vs = V.video_set([tmp_path / "run"], members)
    assert len(vs["clips"]) == 9 and len(vs["y"]) == 9 * (20 - V.STREAM_MIN_FRAMES + 1)
    # FER+-like stills where the image model is right and the LSTM is noise
    y = rng.integers(0, 7, 400)
    fer = {"image-cnn": np.array([_one_hot(EMOTIONS_7[k], 0.8) for k in y]),
           "lstm": rng.dirichlet(np.ones(7), 400)}
    temps = {"image-cnn": 1.0, "lstm": 1.0}
    prof = V.fit_profile(fer, y, vs, members, temps)
    assert prof["min_frames"] == {"lstm": V.STREAM_MIN_FRAMES} and prof["weight"]["lstm"] > 0.5
    image = {"name": "ferplus_valid", "members": members, "temperature": temps, "bias": [0.0] * 7,
             "weight": {"image-cnn": 1.0, "lstm": 0.0}, "requires": ["image-cnn"]}
    lo = V.leave_one_actor_out(fer, y, vs, members, temps, image)
    assert lo["image_profile_alone"]["right"] == 0
    assert lo["fused"]["right"] == 9 and set(lo["weights_per_actor_left_out"]) == {"a", "b", "c"}
