"""The fusion core (no rclpy): class mapping, pooling, staleness, smoothing with
hysteresis, confidence, forgetting; and the shipped fused model's numbers on real
RAF-DB / FER-2013 test rows (it must beat each member it fuses)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion_perception.assets import verified_path
from emotion_perception.fusion import EmotionFusion, PoolingParams, load_params, to_7, valence_arousal
from emotion_perception.types import EMOTIONS_3, EMOTIONS_6, EMOTIONS_7, EmotionEstimate

S = 1_000_000_000  # one second in ns
#: With a single member (RAF-DB: only svm-blendshapes) the fused NLL equals the
#: member's up to the refit temperature and bias.
NLL_TOL = 0.005


def est(face, model, probs, classes=EMOTIONS_7, confident=True):
    p = np.asarray(probs, np.float32)
    return EmotionEstimate(face_id=face, class_names=tuple(classes), probabilities=p / p.sum(), model=model,
                           confident=confident)


def onehot(c, strength=0.9, classes=EMOTIONS_7):
    p = np.full(len(classes), (1 - strength) / (len(classes) - 1))
    p[classes.index(c)] = strength
    return p


PARAMS = PoolingParams.single(temperature={"a": 1.0, "b": 1.0, "transformer": 1.0, "lstm-3class": 1.0},
                       weight={"a": 1.0, "b": 1.0, "transformer": 1.0, "lstm-3class": 1.0}, bias=np.zeros(7))


def test_six_and_three_class_models_map_onto_seven():
    p6 = to_7(EMOTIONS_6, onehot("sad", 0.5, EMOTIONS_6))
    assert p6[EMOTIONS_7.index("surprise")] == pytest.approx(1 / 7)
    assert p6.sum() == pytest.approx(1.0) and p6.argmax() == EMOTIONS_7.index("sad")
    p3 = to_7(EMOTIONS_3, [0.2, 0.3, 0.5])
    assert p3[EMOTIONS_7.index("happy")] == pytest.approx(0.2) and p3[EMOTIONS_7.index("sad")] == pytest.approx(0.3)
    for c in ("angry", "disgust", "fear", "neutral", "surprise"):
        assert p3[EMOTIONS_7.index(c)] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        to_7(("happy", "bored"), [0.5, 0.5])
    with pytest.raises(ValueError, match="2 probabilities for 3 classes"):  # zip() once cut the longer one short
        to_7(EMOTIONS_3, [0.5, 0.5])


def test_agreeing_models_give_a_sharper_estimate_than_either():
    f = EmotionFusion(PARAMS, smoothing_tau_s=0.0, warmup_s=0.0)
    f.add(est("face_1", "a", onehot("happy", 0.6)), 1 * S)
    f.add(est("face_1", "b", onehot("happy", 0.6)), 1 * S)
    out = f.fuse("face_1")
    assert out.label == "happy" and out.confidence > 0.6 and out.confident and out.model == "fused"
    assert out.valence > 0.3  # happy is pleasant


def test_one_input_missing_still_publishes_that_input():
    f = EmotionFusion(PARAMS, smoothing_tau_s=0.0, warmup_s=0.0)
    f.add(est("face_1", "transformer", onehot("sad", 0.8, EMOTIONS_6), EMOTIONS_6), 1 * S)
    out = f.fuse("face_1")
    assert out is not None and out.label == "sad"


def test_stale_input_is_dropped_and_all_stale_gives_nothing():
    f = EmotionFusion(PARAMS, stale_after_s=0.5, smoothing_tau_s=0.0, warmup_s=0.0)
    f.add(est("face_1", "a", onehot("angry", 0.9)), 1 * S)
    f.add(est("face_1", "b", onehot("happy", 0.7)), 2 * S)  # a is now 1 s old
    out = f.fuse("face_1")
    assert out.label == "happy"
    assert out.probabilities[EMOTIONS_7.index("happy")] == pytest.approx(0.7, abs=1e-3)  # b alone
    assert f.fuse("face_1", 3 * S) is None  # everything stale


def test_hysteresis_holds_the_label_against_a_small_lead():
    f = EmotionFusion(PARAMS, smoothing_tau_s=0.0, hysteresis=0.2, warmup_s=0.0, min_confidence=0.0)
    f.add(est("face_1", "a", onehot("happy", 0.6)), 1 * S)
    assert f.fuse("face_1").label == "happy"
    p = np.full(7, 0.05)
    p[EMOTIONS_7.index("sad")], p[EMOTIONS_7.index("happy")] = 0.42, 0.33  # sad leads by 0.09 < 0.2
    f.add(est("face_1", "a", p), 2 * S)
    out = f.fuse("face_1")
    assert EMOTIONS_7[int(np.argmax(out.probabilities))] == "sad" and out.label == "happy"
    f.add(est("face_1", "a", onehot("sad", 0.8)), 3 * S)
    assert f.fuse("face_1").label == "sad"


def test_smoothing_follows_with_its_time_constant():
    f = EmotionFusion(PARAMS, smoothing_tau_s=0.5, hysteresis=0.0, warmup_s=0.0)
    f.add(est("face_1", "a", onehot("happy", 0.9)), 1 * S)
    f.fuse("face_1")
    f.add(est("face_1", "a", onehot("sad", 0.9)), 1 * S + S // 10)  # 0.1 s later: mostly still happy
    early = f.fuse("face_1")
    assert early.probabilities[EMOTIONS_7.index("happy")] > early.probabilities[EMOTIONS_7.index("sad")]
    for k in range(2, 30):
        f.add(est("face_1", "a", onehot("sad", 0.9)), 1 * S + k * S // 10)
        late = f.fuse("face_1")
    assert late.label == "sad" and late.probabilities[EMOTIONS_7.index("sad")] > 0.85


def test_weak_or_warming_up_evidence_is_not_confident():
    f = EmotionFusion(PARAMS, smoothing_tau_s=0.0, warmup_s=0.5, min_confidence=0.45)
    f.add(est("face_1", "a", onehot("fear", 0.9)), 1 * S)
    assert not f.fuse("face_1").confident  # just appeared
    f.add(est("face_1", "a", onehot("fear", 0.9)), 2 * S)
    assert f.fuse("face_1").confident
    f.add(est("face_1", "a", np.full(7, 1 / 7)), 3 * S)
    assert not f.fuse("face_1").confident  # flat distribution
    f.add(est("face_2", "a", onehot("fear", 0.9), confident=False), 1 * S)
    f.add(est("face_2", "a", onehot("fear", 0.9), confident=False), 2 * S)
    assert not f.fuse("face_2").confident  # the only input is still warming up


def test_forgetting_faces():
    f = EmotionFusion(PARAMS)
    f.add(est("face_1", "a", onehot("happy")), 1 * S)
    f.add(est("face_2", "a", onehot("sad")), 3 * S)
    assert set(f.face_ids) == {"face_1", "face_2"}
    assert f.forget_stale_faces(3 * S, after_s=1.0) == ["face_1"]
    f.forget("face_2")
    assert f.face_ids == [] and f.fuse("face_2") is None


def test_valence_arousal_table_is_sane():
    v, a = valence_arousal(onehot("happy", 1.0))
    assert v > 0.5 and a > 0
    v, a = valence_arousal(onehot("sad", 1.0))
    assert v < -0.5 and a < 0
    assert valence_arousal(onehot("neutral", 1.0)) == (0.0, 0.0)


def test_a_profile_that_requires_the_image_model_applies_only_with_it():
    """The FER+ profile's weights were fitted beside the image model: without it the
    landmark profile (fitted without it) must apply."""
    prm = PoolingParams.from_json({"profiles": [
        {"name": "ferplus_valid", "members": ["image-cnn", "lstm", "svm-landmarks", "transformer"],
         "temperature": {}, "weight": {"image-cnn": 1.0}, "bias": [0.0] * 7, "requires": ["image-cnn"]},
        {"name": "fer_cal", "members": ["lstm", "svm-landmarks"], "temperature": {}, "weight": {}, "bias": [0.0] * 7},
        {"name": "rafdb_val", "members": ["svm-blendshapes", "lstm"], "temperature": {}, "weight": {},
         "bias": [0.0] * 7}]})
    pick = lambda *present: prm.profile_for(present).name  # noqa: E731
    assert pick("image-cnn", "lstm", "svm-landmarks", "transformer") == "ferplus_valid"
    assert pick("image-cnn", "lstm", "svm-landmarks") == "ferplus_valid"
    assert pick("image-cnn") == "ferplus_valid"
    assert pick("lstm", "svm-landmarks", "transformer") == "fer_cal"
    assert pick("svm-blendshapes", "lstm") == "rafdb_val"


# ---------------------------------------------------------------- the shipped fusion

@pytest.fixture(scope="module")
def fusion_meta():
    return json.loads(verified_path("fusion.json").read_text())


def test_fused_beats_every_member_on_the_test_sets(fusion_meta):
    for split, m in fusion_meta["metrics"].items():
        members = m["fused_members"]
        for name in members:
            if len(members) > 1:
                assert m["fused"]["accuracy"] >= m[name]["accuracy"] - 1e-9, (split, name)
            assert m["fused"]["nll"] <= m[name]["nll"] + NLL_TOL, (split, name)


def test_fused_model_reproduces_its_rafdb_number_on_a_sample(data_dir, fusion_meta):
    from emotion_perception.classifiers import load
    from emotion_perception.training import data as D

    te = D.load_rafdb(data_dir, "test")
    model = load("fused")
    p = model.predict_frames(blendshapes=te["blendshapes"][:300])
    acc = float((np.array(EMOTIONS_7)[p.argmax(1)] == te["label"][:300]).mean())
    assert acc == pytest.approx(fusion_meta["sample_accuracy_first_300_rafdb_test"], abs=0.004)
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)


def test_calibration_lowers_each_members_ece_on_held_out_data(fusion_meta):
    improved = [v["ece_after"] <= v["ece_before"] + 0.01
                for split in fusion_meta["calibration"].values() for v in split.values()]
    assert improved and np.mean(improved) >= 0.5


def test_fusion_was_fitted_on_the_shipped_members(fusion_meta):
    """A member retrained after the fusion was fitted makes fusion.json stale:
    re-run `emotion-perception train fused`."""
    from emotion_perception.assets import models_dir, recorded_sums

    sums = recorded_sums(models_dir())
    from emotion_perception.training.fusion import MEMBER_FILES

    for m, sha in fusion_meta["member_sha256"].items():
        assert sums.get(MEMBER_FILES[m]) == sha, f"{m} changed since the fusion was fitted"


def test_ferplus_profile_is_the_one_its_cross_validation_chose(fusion_meta):
    """The image profile pools the landmark models with the image model only where
    5-fold cross-validation on FER+ valid showed it beats the image model alone on
    accuracy and NLL; otherwise the image model carries the fused emotion."""
    cv = fusion_meta["ferplus_valid_cross_validated"]
    prof = next(p for p in fusion_meta["profiles"] if p["name"] == "ferplus_valid")
    assert prof["requires"] == ["image-cnn"] and "image-cnn" in prof["members"]
    fused, alone = cv["fused_5fold"], cv["image_cnn_alone_calibrated_5fold"]
    if cv["pooling_shipped"]:
        assert fused["accuracy"] > alone["accuracy"] and fused["nll"] < alone["nll"]
    else:
        assert prof["weight"]["image-cnn"] == 1.0
        assert all(w == 0.0 for m, w in prof["weight"].items() if m != "image-cnn")


def test_the_stream_profile_applies_only_once_the_sequence_model_has_seen_enough_frames():
    """A profile with ``min_frames`` (the stream profile) is never picked for stills
    (no frame counts) and picked on a stream once the LSTM rests on that many frames."""
    image = {"name": "ferplus_valid", "members": ["image-cnn", "lstm"], "temperature": {}, "bias": [0.0] * 7,
             "weight": {"image-cnn": 1.0, "lstm": 0.0}, "requires": ["image-cnn"]}
    stream = dict(image, name="video_stream", weight={"image-cnn": 0.0, "lstm": 1.0}, requires=["image-cnn", "lstm"],
                  min_frames={"lstm": 8})
    warmup = dict(image, name="video_warmup", requires=["image-cnn", "lstm"], min_frames={"lstm": 1})
    prm = PoolingParams.from_json({"profiles": [image, stream]})
    assert prm.profile_for({"image-cnn", "lstm"}).name == "ferplus_valid"
    assert prm.profile_for({"image-cnn", "lstm"}, {"image-cnn": 1, "lstm": 7}).name == "ferplus_valid"
    assert prm.profile_for({"image-cnn", "lstm"}, {"image-cnn": 1, "lstm": 8}).name == "video_stream"
    # with a warm-up profile: stills keep the image profile, a stream's first frames
    # get the warm-up one, then the stream profile (whatever the order in the file)
    for order in ([warmup, image, stream], [stream, image, warmup]):
        p3 = PoolingParams.from_json({"profiles": order})
        assert p3.profile_for({"image-cnn", "lstm"}).name == "ferplus_valid"
        assert p3.profile_for({"image-cnn", "lstm"}, {"image-cnn": 1, "lstm": 1}).name == "video_warmup"
        assert p3.profile_for({"image-cnn", "lstm"}, {"image-cnn": 1, "lstm": 9}).name == "video_stream"
    still = prm.pool({"image-cnn": onehot("sad", 0.8), "lstm": onehot("happy", 0.8)})
    assert EMOTIONS_7[int(np.argmax(still))] == "sad"
    f = EmotionFusion(prm, smoothing_tau_s=0.0, hysteresis=0.0, warmup_s=0.0)
    labels = []
    for i in range(10):
        f.add(est("face_1", "image-cnn", onehot("sad", 0.8)), (i + 1) * S // 25)
        lstm = dataclasses_replace(est("face_1", "lstm", onehot("happy", 0.8)), frames_used=i + 1)
        f.add(lstm, (i + 1) * S // 25)
        labels.append(f.fuse("face_1").label)
    assert labels == ["sad"] * 7 + ["happy"] * 3


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_the_shipped_stream_profile_is_the_one_its_leave_one_actor_out_test_chose(fusion_meta):
    """``train fused --video``: the stream profile ships only where, fitted without each
    actor in turn, it got more of that actor's clips right than the image profile alone."""
    video = fusion_meta.get("video")
    stream = [p for p in fusion_meta["profiles"] if p.get("min_frames")]
    if video is None:
        assert not stream
        return
    loao = video["leave_one_actor_out"]
    assert bool(stream) == video["shipped"] == (loao["fused"]["right"] > loao["image_profile_alone"]["right"])
    assert stream == video["profiles"]
    for p in stream:
        assert p["min_frames"]["lstm"] >= 1 and "lstm" in p["requires"]
    # the member the stream profile was made for earns weight, so it runs by default
    assert stream[0]["name"] == "video_stream" and stream[0]["weight"]["lstm"] > 0


def test_weighted_models_count_the_profiles_a_stream_can_reach():
    """A model of weight 0 in the stills' profile but weight in the stream profile (the
    LSTM of the shipped file) still counts: the fusion node must keep feeding it, or the
    stream profile never applies. A model of weight 0 in every reachable profile does
    not; a stream profile whose required members are not running is not reachable."""
    image = {"name": "ferplus_valid", "members": ["image-cnn", "lstm", "transformer"], "temperature": {},
             "bias": [0.0] * 7, "weight": {"image-cnn": 1.0, "lstm": 0.0, "transformer": 0.0},
             "requires": ["image-cnn"]}
    stream = dict(image, name="video_stream", weight={"image-cnn": 0.4, "lstm": 0.8, "transformer": 0.0},
                  requires=["image-cnn", "lstm"], min_frames={"lstm": 8})
    prm = PoolingParams.from_json({"profiles": [image, stream]})
    assert prm.weighted_models({"image-cnn", "lstm", "transformer"}) == {"image-cnn", "lstm"}
    # without the image model the stream profile is out of reach and no profile fits:
    # every model then pools with the default weight
    assert prm.weighted_models({"lstm", "transformer"}) == {"lstm", "transformer"}
    still_only = PoolingParams.from_json({"profiles": [image]})
    assert still_only.weighted_models({"image-cnn", "lstm", "transformer"}) == {"image-cnn"}
    shipped, _ = load_params()
    assert shipped.weighted_models({"image-cnn", "lstm", "transformer", "svm-landmarks"}) == {"image-cnn", "lstm"}
