"""Training of the landmark sequence transformer (``transformer``, 6 classes).

Follows the published reference: one number per landmark per frame (here the
position- and size-invariant :func:`features.landmark_distances`), normalisation
with precomputed global mean and std, positional encoding, Transformer encoder
blocks (multi-head self-attention, layer norm, dropout), a dense softmax over
``angry disgust fear happy neutral sad``, exported to TFLite with batch 1.

Sized for the < 3 ms inference budget: a linear projection of the 478 features to
``D_MODEL``, ``BLOCKS`` encoder blocks, and a window of ``WINDOW`` frames taken every
``STRIDE`` frames (about 2 s of a 30 fps stream) instead of 300 frames.

Data: FER-2013 train and the muxspace photos' training subjects (the held-out
subjects of ``training.data.load_muxspace`` stay out), turned into synthetic
onset-apex-offset clips (``training.sequences``) starting from the most similar of
``NEUTRAL_CANDIDATES`` random neutral faces of the same data set, with horizontal
flips (landmark indices mirrored) and the tracker jitter measured on the shared
videos.

Reproduce the shipped files::

    nice emotion-perception train transformer
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from ..features import landmark_distances
from ..types import EMOTIONS_6
from . import sequences
from .data import load_fer, load_muxspace

WINDOW = 32
STRIDE = 2
D_MODEL = 48
HEADS = 4
FF_UNITS = 96
BLOCKS = 2
DROPOUT = 0.15
EPOCHS = 14
BATCH = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-3
PATIENCE = 5
VAL_FRACTION = 0.1
CLASS_WEIGHT_POWER = 0.5
NEUTRAL_CANDIDATES = 8
#: Per-frame jitter of the landmark-distance feature (inter-ocular units): the largest
#: per-video mean measured on cap13_edit2, WolfgangLanger_Pexels and single_face
#: (0.0012, 0.0021, 0.0009), rounded up.
JITTER = 0.0025
#: Per-clip feature noise (augmentation), inter-ocular units.
CLIP_NOISE = 0.01
MAX_TRAIN_S = 720


def positional_encoding(length: int, depth: int) -> np.ndarray:
    """Sinusoidal positional encoding (Vaswani et al.), (length, depth) float32."""
    pos = np.arange(length)[:, None]
    i = np.arange(depth)[None, :]
    angle = pos / np.power(10000.0, (2 * (i // 2)) / depth)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


def build(keras, window: int, n_features: int, n_classes: int, d_model=D_MODEL, heads=HEADS, ff=FF_UNITS,
          blocks=BLOCKS, batch_size=None):
    inp = keras.Input((window, n_features), batch_size=batch_size, name="clip")
    x = keras.layers.Dense(d_model, name="embed")(inp)
    pe = positional_encoding(window, d_model)
    x = keras.layers.Lambda(lambda t: t + pe, name="positional_encoding")(x)
    for b in range(blocks):
        a = keras.layers.MultiHeadAttention(heads, d_model // heads, dropout=DROPOUT, name=f"mhsa_{b}")(x, x)
        x = keras.layers.LayerNormalization(epsilon=1e-5, name=f"ln_a{b}")(x + keras.layers.Dropout(DROPOUT)(a))
        f = keras.layers.Dense(ff, activation="relu", name=f"ff1_{b}")(x)
        f = keras.layers.Dense(d_model, name=f"ff2_{b}")(f)
        x = keras.layers.LayerNormalization(epsilon=1e-5, name=f"ln_f{b}")(x + keras.layers.Dropout(DROPOUT)(f))
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(DROPOUT)(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out)


def _six(d: dict) -> dict:
    m = np.isin(d["label"], EMOTIONS_6)
    return {k: (v[m] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(m) else v) for k, v in d.items()}


def features_of(d: dict) -> np.ndarray:
    return landmark_distances(d["landmarks"].astype(np.float32), d["image_wh"])


def train(target: str, data_dir, out_dir, epochs: int | None = None, quick: bool = False, seed: int = 0) -> dict:
    """Train and export ``transformer``; returns the measured metrics."""
    from .augment import mesh_mirror_map
    from ..assets import record_sums
    from .keras_seq import class_weights, export_tflite, fit_best, make_dataset, one_frame_metrics, setup_tf

    tf, keras = setup_tf(seed)
    out_dir = pathlib.Path(out_dir)
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    fer, mux = _six(load_fer(data_dir, "train")), _six(load_muxspace(data_dir, "train"))
    if quick:
        fer = {k: v[:400] if isinstance(v, np.ndarray) and v.ndim else v for k, v in fer.items()}
        mux = {k: v[:200] if isinstance(v, np.ndarray) and v.ndim else v for k, v in mux.items()}
    mirror = mesh_mirror_map(fer["landmarks"][:500].astype(np.float32), fer["image_wh"][:500])
    window, d_model, blocks, ff = (WINDOW, D_MODEL, BLOCKS, FF_UNITS) if not quick else (6, 8, 1, 8)
    epochs = epochs or (2 if quick else EPOCHS)
    x = np.concatenate([features_of(fer), features_of(mux)])
    y = np.array([EMOTIONS_6.index(v) for v in np.concatenate([fer["label"], mux["label"]])])
    source = np.concatenate([np.zeros(len(fer["label"]), int), np.ones(len(mux["label"]), int)])
    n_cls = len(EMOTIONS_6)
    val = np.zeros(len(y), bool)
    for c in range(n_cls):
        idx = np.flatnonzero(y == c)
        val[rng.choice(idx, int(round(len(idx) * VAL_FRACTION)), replace=False)] = True
    mean, std = x[~val].mean(0), x[~val].std(0) + 1e-3
    xt, yt, st = x[~val], y[~val], source[~val]
    neutral_idx = [np.flatnonzero((yt == EMOTIONS_6.index("neutral")) & (st == s)) for s in (0, 1)]
    neutral_idx = [n if len(n) else np.arange(len(yt)) for n in neutral_idx]
    cw = class_weights(yt, n_cls, CLASS_WEIGHT_POWER)

    def make_batch(idx, r):
        apex = xt[idx]
        # neutral start: the most similar of a few random neutral faces of the same data set
        cand = np.stack([neutral_idx[s][r.integers(0, len(neutral_idx[s]), NEUTRAL_CANDIDATES)] for s in st[idx]])
        dist = np.linalg.norm(xt[cand] - apex[:, None, :], axis=-1)
        neu = xt[cand[np.arange(len(idx)), dist.argmin(1)]]
        f = r.random(len(idx)) < 0.5
        apex = np.where(f[:, None], apex[:, mirror], apex)
        neu = np.where(f[:, None], neu[:, mirror], neu)
        apex = apex + r.standard_normal(apex.shape).astype(np.float32) * CLIP_NOISE
        clips = sequences.synthesize(apex, neu, window, JITTER, r, p_steady=0.3)
        return (clips - mean) / std, keras.utils.to_categorical(yt[idx], n_cls), cw[yt[idx]]

    def steady(v):
        return np.repeat(((v - mean) / std)[:, None, :], window, axis=1).astype(np.float32)

    model = build(keras, window, x.shape[1], n_cls, d_model, HEADS if not quick else 2, ff, blocks)
    optimizer = keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY, clipnorm=1.0)
    hist = fit_best(keras, model, optimizer, make_dataset(keras, make_batch, len(xt), BATCH, seed),
                    (steady(x[val]), keras.utils.to_categorical(y[val], n_cls)), epochs, PATIENCE, MAX_TRAIN_S)
    export = build(keras, window, x.shape[1], n_cls, d_model, HEADS if not quick else 2, ff, blocks, batch_size=1)
    export.set_weights(model.get_weights())
    tfl = out_dir / "transformer.tflite"
    export_tflite(tf, export, (window, x.shape[1]), tfl)

    def predict(v):  # mirror-averaged, as the LiteRT wrapper does
        return 0.5 * (model.predict(steady(v), batch_size=256, verbose=0)
                      + model.predict(steady(v[:, mirror]), batch_size=256, verbose=0))

    fer_test = _six(load_fer(data_dir, "public_test"))
    mux_test = _six(load_muxspace(data_dir, "heldout"))
    if quick:
        fer_test = {k: v[:200] if isinstance(v, np.ndarray) and v.ndim else v for k, v in fer_test.items()}
        mux_test = {k: v[:200] if isinstance(v, np.ndarray) and v.ndim else v for k, v in mux_test.items()}
    metrics = {
        "fer2013_public_test_one_frame": one_frame_metrics(
            predict, features_of(fer_test), np.array([EMOTIONS_6.index(v) for v in fer_test["label"]]), EMOTIONS_6),
        "muxspace_heldout_one_frame": one_frame_metrics(
            predict, features_of(mux_test), np.array([EMOTIONS_6.index(v) for v in mux_test["label"]]), EMOTIONS_6),
        "validation_one_frame": one_frame_metrics(predict, x[val], y[val], EMOTIONS_6),
    }
    meta = {
        "model": "transformer", "class_names": list(EMOTIONS_6), "window": window, "stride": STRIDE,
        "feature": "features.landmark_distances: 3-D distance of each landmark to the nose tip (1) "
                   "in inter-ocular distances (outer eye corners 33-263), pixel-aspect-correct",
        "flip": mirror.tolist(),
        "mean": mean.round(6).tolist(), "std": std.round(6).tolist(),
        "padding": "the buffer is left-padded by repeating its oldest frame",
        "training": {"data": "FER-2013 train + muxspace train subjects (6 classes), 10% stratified validation",
                     "d_model": d_model, "blocks": blocks, "heads": HEADS, "ff_units": ff,
                     "epochs_run": len(hist.history["loss"]), "jitter_std": JITTER, "clip_noise": CLIP_NOISE,
                     "seed": seed, "quick": quick, "wall_s": round(time.monotonic() - t0, 1)},
        "metrics_keras": metrics,
    }
    meta_path = out_dir / "transformer.json"
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    record_sums([tfl, meta_path])
    return {"tflite": str(tfl), "meta": str(meta_path), **metrics, "wall_s": meta["training"]["wall_s"]}
