"""Training the face-image model (``image-cnn``) on FER+ aligned face crops.

``emotion-perception train image-cnn [--data DIR] [--arch vgg|resnet|mobilenetv2]
[--epochs N] [--checkpoint-dir DIR] [--seed S]`` reproduces the shipped model:

* **Input**: the aligned grey crop of :mod:`emotion_perception.face_crop`, made from
  each FER+ face's MediaPipe landmarks (MediaPipe on the face upscaled 4x); where
  MediaPipe finds no face, the whole 48x48 frame (see :mod:`.ferplus`).
* **Targets**: the FER+ vote distributions over the seven classes (soft targets,
  cross-entropy), see :func:`.ferplus.soft_targets`.
* **Augmentation**, drawn per image and epoch: the crop geometry is jittered (eye-line
  rotation, scale, shift: what landmark noise and head roll do at run time) and the
  crop is cut again from the 48x48 source, mirrored half of the time; brightness and
  contrast; random erasing (an occluding rectangle); optional mixup.
* **Networks** (:data:`ARCHS`): ``vgg`` (3x3 conv pairs with batch norm, made for small
  grey faces), ``resnet`` (a narrow ResNet) and ``mobilenetv2`` (Keras' MobileNetV2
  from random weights: no ImageNet weights exist offline here).
* **Optimiser**: AdamW with a cosine learning-rate decay after a one-epoch warm-up; the
  last epoch's weights are shipped (no selection on ``valid``, which is where the
  card's numbers come from).
* **Resuming**: Keras' ``BackupAndRestore`` writes the model, optimiser and epoch to
  ``--checkpoint-dir`` after every epoch; the same command resumes an interrupted run.

Outputs ``image_cnn.tflite`` (int8 weights and activations calibrated on 300 training
crops, float input and output, batch 1, input (1, S, S, 1) grey levels 0-255), ``image_cnn.json`` (classes, crop size and margin, metrics, wall time) and
``image_cnn_confusion.png`` in ``--out``, recorded in its ``SHA256SUMS``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time

import numpy as np

from ..face_crop import CROP_MARGIN, CropGeometry, crop_geometry, crop_with_geometry, frame_geometry
from ..types import EMOTIONS_7
from . import ferplus

ARCHS = ("vgg", "resnet", "mobilenetv2")
MODEL_STEM = "image_cnn"


@dataclasses.dataclass
class Recipe:
    """Everything that decides the trained weights (stored in the model's JSON)."""

    arch: str = "vgg"
    size: int = 48
    widths: tuple = (32, 64, 128, 256)
    epochs: int = 20
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    dropout: float = 0.4
    label_smoothing: float = 0.0
    targets: str = "soft"  # or "majority"
    crop: str = "aligned"  # or "raw": the whole 48x48 frame (the comparison)
    margin: float = CROP_MARGIN
    flip: bool = True
    rotate_deg: float = 12.0
    scale: float = 0.10
    shift: float = 0.08
    photometric: float = 0.3
    erase_p: float = 0.4
    mixup_alpha: float = 0.0
    train_fraction: float = 1.0
    seed: int = 0

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d


def checkpoint_default(r: Recipe) -> pathlib.Path:
    """``.cache/image-cnn-ARCH`` under the repository."""
    return pathlib.Path(__file__).resolve().parents[3] / ".cache" / f"image-cnn-{r.arch}"


# ----------------------------------------------------------------------------- data


def geometries(images: np.ndarray, faces: dict, crop: str, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) centre x, centre y, side, angle of every face's crop, and the mask of faces
    whose crop came from MediaPipe's landmarks (the rest use the whole frame)."""
    n, h, w = images.shape
    geo = np.zeros((n, 4), np.float64)
    aligned = np.zeros(n, bool)
    whole = frame_geometry((w, h))
    for i in range(n):
        g = whole
        if crop == "aligned" and faces["found"][i]:
            a = crop_geometry(faces["landmarks"][i], (w, h), margin)
            # FER faces fill their frame: a landmark box off the frame or of a very
            # different size is a MediaPipe miss (a drawing, an occluded face).
            if 0 <= a.centre[0] < w and 0 <= a.centre[1] < h and 0.4 * h <= a.side <= 1.6 * h:
                g = a
                aligned[i] = True
        geo[i] = (*g.centre, g.side, g.angle)
    return geo, aligned


def crops(images: np.ndarray, geo: np.ndarray, size: int, flip: bool = False) -> np.ndarray:
    """(N, size, size, 1) float32 crops (grey levels 0-255), no augmentation."""
    out = np.empty((len(images), size, size, 1), np.float32)
    for i, (img, g) in enumerate(zip(images, geo)):
        out[i, :, :, 0] = crop_with_geometry(img, CropGeometry((g[0], g[1]), g[2], g[3]), size, flip)
    return out


def augmented_batch(images, geo, targets, idx, rng: np.random.Generator, r: Recipe):
    """One training batch: jittered crops, photometric changes, erasing, mixup."""
    s = r.size
    x = np.empty((len(idx), s, s, 1), np.float32)
    for k, i in enumerate(idx):
        cx, cy, side, angle = geo[i]
        side_k = side * math.exp(rng.uniform(-1, 1) * math.log1p(r.scale))
        cx += rng.uniform(-1, 1) * r.shift * side
        cy += rng.uniform(-1, 1) * r.shift * side
        angle += math.radians(rng.uniform(-1, 1) * r.rotate_deg)
        flip = bool(r.flip and rng.random() < 0.5)
        c = crop_with_geometry(images[i], CropGeometry((cx, cy), side_k, angle), s, flip).astype(np.float32)
        if r.photometric > 0:
            mean = c.mean()
            c = (c - mean) * math.exp(rng.uniform(-1, 1) * r.photometric) + mean \
                + rng.uniform(-1, 1) * r.photometric * 64.0
        if rng.random() < r.erase_p:
            area = rng.uniform(0.02, 0.2) * s * s
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            eh, ew = min(s, int(round(math.sqrt(area * aspect)))), min(s, int(round(math.sqrt(area / aspect))))
            y0, x0 = rng.integers(0, s - eh + 1), rng.integers(0, s - ew + 1)
            c[y0:y0 + eh, x0:x0 + ew] = rng.uniform(0, 255, (eh, ew))
        x[k, :, :, 0] = np.clip(c, 0, 255)
    y = targets[idx].copy()
    if r.mixup_alpha > 0:
        lam = rng.beta(r.mixup_alpha, r.mixup_alpha, (len(idx), 1))
        perm = rng.permutation(len(idx))
        x = lam[:, :, None, None] * x + (1 - lam[:, :, None, None]) * x[perm]
        y = lam * y + (1 - lam) * y[perm]
    return x, y.astype(np.float32)


# ----------------------------------------------------------------------------- networks


def build(keras, r: Recipe):
    """The classifier: input (S, S, 1) grey levels 0-255 -> 7 softmax probabilities."""
    L = keras.layers
    inp = keras.Input((r.size, r.size, 1), name="face")
    x = L.Rescaling(1.0 / 64.0, offset=-2.0)(inp)  # grey 0..255 -> about [-2, 2]

    def conv_bn(x, f, stride=1, act=True):
        x = L.Conv2D(f, 3, strides=stride, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(x) if act else x

    if r.arch == "vgg":
        for i, f in enumerate(r.widths):
            x = conv_bn(x, f)
            x = conv_bn(x, f)
            x = L.MaxPooling2D()(x)
    elif r.arch == "resnet":
        x = conv_bn(x, r.widths[0])
        for i, f in enumerate(r.widths):
            stride = 1 if i == 0 else 2
            short = x
            if stride != 1 or short.shape[-1] != f:
                short = L.Conv2D(f, 1, strides=stride, use_bias=False)(short)
                short = L.BatchNormalization()(short)
            y = conv_bn(x, f, stride)
            y = conv_bn(y, f, act=False)
            x = L.ReLU()(L.Add()([short, y]))
    elif r.arch == "mobilenetv2":
        base = keras.applications.MobileNetV2(input_shape=(r.size, r.size, 1), include_top=False,
                                              weights=None, alpha=1.0, pooling=None)
        x = base(x)
    else:
        raise ValueError(f"unknown arch {r.arch!r}; choose from {ARCHS}")
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(r.dropout)(x)
    out = L.Dense(len(EMOTIONS_7), activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=f"image_cnn_{r.arch}")


# ----------------------------------------------------------------------------- training


def prepare(data, r: Recipe, splits=("train", "valid"), progress: bool = True) -> dict:
    """Images, targets, majority labels and crop geometries of each split."""
    out = {}
    for split in splits:
        s = ferplus.load_split(data, split)
        faces = ferplus.mediapipe_faces(s, progress=progress)
        soft, usable = ferplus.soft_targets(s["votes"])
        maj = ferplus.majority_labels(s["votes"])
        geo, aligned = geometries(s["image"], faces, r.crop, r.margin)
        out[split] = {"image": s["image"], "soft": soft, "usable": usable, "majority": maj, "geo": geo,
                      "aligned": aligned, "official": ferplus.official_subset(s["votes"]), "faces": faces,
                      "votes": s["votes"], "name": s["name"]}
    return out


def training_rows(d: dict, r: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Indices and targets of the faces trained on."""
    if r.targets == "soft":
        rows = np.flatnonzero(d["usable"])
        t = d["soft"]
    elif r.targets == "majority":
        rows = np.flatnonzero(d["majority"] >= 0)
        t = np.eye(7, dtype=np.float32)[np.maximum(d["majority"], 0)]
    else:
        raise ValueError(f"targets must be soft or majority, not {r.targets!r}")
    if r.train_fraction < 1.0:
        rng = np.random.default_rng(r.seed)
        rows = np.sort(rng.choice(rows, int(len(rows) * r.train_fraction), replace=False))
    return rows, t


def evaluate_probs(proba: np.ndarray, d: dict) -> dict:
    """Majority-label metrics of (N, 7) probabilities on a split: all faces with a
    majority, the FER+ official subset, faces MediaPipe found and the rest."""
    from sklearn.metrics import confusion_matrix, f1_score

    y = d["majority"]
    pred = proba.argmax(1)
    res = {}
    for name, m in (("majority", y >= 0), ("official", d["official"]), ("mediapipe_found", (y >= 0) & d["aligned"]),
                    ("no_face_whole_frame", (y >= 0) & ~d["aligned"])):
        if not m.any():
            continue
        f1 = f1_score(y[m], pred[m], labels=range(7), average="macro", zero_division=0)
        res[name] = {"n": int(m.sum()), "accuracy": round(float((pred[m] == y[m]).mean()), 4),
                     "macro_f1": round(float(f1), 4)}
    m = y >= 0
    cm = confusion_matrix(y[m], pred[m], labels=range(7))
    res["majority"]["recall"] = {c: round(float(cm[i, i] / max(cm[i].sum(), 1)), 4) for i, c in enumerate(EMOTIONS_7)}
    res["majority"]["confusion"] = cm.tolist()
    p = np.clip(proba[m][np.arange(m.sum()), y[m]], 1e-12, 1)
    res["majority"]["nll"] = round(float(-np.log(p).mean()), 4)
    return res


def _callbacks(keras, valid_x, valid_d, log):
    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            p = self.model.predict(valid_x, batch_size=256, verbose=0)
            m = evaluate_probs(p, valid_d)["majority"]
            line = {"epoch": epoch + 1, "loss": round(float(logs.get("loss", float("nan"))), 4),
                    "valid_accuracy": m["accuracy"], "valid_macro_f1": m["macro_f1"],
                    "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                    "time": time.strftime("%H:%M:%S"), "epoch_s": round(time.monotonic() - self.t0, 1)}
            print(json.dumps(line), flush=True)
            if log is not None:
                with open(log, "a") as f:
                    f.write(json.dumps(line) + "\n")

    return [Progress()]


def fit(data, r: Recipe, checkpoint_dir, progress: bool = True, prepared: dict | None = None, log=None,
        callbacks=()):
    """Train (resuming from ``checkpoint_dir``); returns (model, prepared data, seconds).
    ``callbacks``: more Keras callbacks, run after the checkpointing one."""
    from .keras_seq import make_dataset, setup_tf

    tf, keras = setup_tf(r.seed)
    t0 = time.time()
    P = prepared or prepare(data, r, progress=progress)
    tr, va = P["train"], P["valid"]
    rows, targets = training_rows(tr, r)
    steps = math.ceil(len(rows) / r.batch)

    def make_batch(idx, rng):
        return augmented_batch(tr["image"], tr["geo"], targets, rows[idx], rng, r)

    ds = make_dataset(keras, make_batch, len(rows), r.batch, r.seed)
    model = build(keras, r)
    total = r.epochs * steps
    warm = int(r.warmup_epochs * steps)
    sched = keras.optimizers.schedules.CosineDecay(r.lr * 0.1 if warm else r.lr, max(total - warm, 1),
                                                   warmup_target=r.lr if warm else None, warmup_steps=warm)
    opt = keras.optimizers.AdamW(sched, weight_decay=r.weight_decay)
    model.compile(opt, keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing))
    valid_x = crops(va["image"], va["geo"], r.size)
    cbs = _callbacks(keras, valid_x, va, log) + list(callbacks)
    if checkpoint_dir is not None:
        rj = pathlib.Path(checkpoint_dir) / "recipe.json"
        if rj.is_file() and json.loads(rj.read_text()) != r.to_json():
            raise ValueError(f"{checkpoint_dir} holds the checkpoints of another recipe ({rj}); give another "
                             "--checkpoint-dir or remove that one")
        rj.parent.mkdir(parents=True, exist_ok=True)
        if not rj.is_file():  # its time is the start of the training (logged_training_s)
            rj.write_text(json.dumps(r.to_json(), indent=2))
        cbs.insert(0, keras.callbacks.BackupAndRestore(str(checkpoint_dir), save_freq="epoch",
                                                      delete_checkpoint=False))
    if progress:
        print(f"training {r.arch} on {len(rows)} FER+ faces ({tr['aligned'][rows].mean():.1%} aligned on "
              f"MediaPipe landmarks), {r.epochs} epochs of {steps} steps, {model.count_params():,} parameters",
              flush=True)
    from .keras_seq import verbose

    model.fit(ds, epochs=r.epochs, callbacks=cbs, verbose=verbose() if progress else 0)
    return model, P, time.time() - t0


# ----------------------------------------------------------------------------- export


def export(tf, model, r: Recipe, path: pathlib.Path, quant: str = "float16", representative=None,
           tta_flip: bool = False) -> None:
    """Write the batch-1 ``.tflite``: input (1, S, S, 1) float32 grey 0-255, output (1, 7).

    quant: ``float32``, ``float16`` (weights) or ``int8`` (weights and activations,
    calibrated on ``representative`` crops; float input and output).
    tta_flip: average the probabilities of the crop and its mirror image inside the model.
    """
    import tempfile

    import keras

    s = r.size
    inp = keras.Input((s, s, 1), batch_size=1, name="face")
    if tta_flip:
        both = keras.ops.concatenate([inp, keras.ops.flip(inp, axis=2)], axis=0)
        p = keras.ops.mean(model(both, training=False), axis=0, keepdims=True)
    else:
        p = model(inp, training=False)
    served = keras.Model(inp, p)
    with tempfile.TemporaryDirectory() as tmp:
        # Keras' export freezes the variables (a tf.function over the model would keep
        # READ_VARIABLE ops that LiteRT cannot run without TensorFlow's resources).
        served.export(tmp, format="tf_saved_model", verbose=False,
                      input_signature=[tf.TensorSpec((1, s, s, 1), tf.float32, name="face")])
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quant == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif quant == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]

            def rep():
                for x in representative:
                    yield [x[None].astype(np.float32)]

            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        elif quant != "float32":
            raise ValueError(f"quant must be float32, float16 or int8, not {quant!r}")
        path.write_bytes(conv.convert())


def litert_probs(path: pathlib.Path, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Probabilities of a ``.tflite`` on (N, S, S, 1) crops, and its median ms per face (one thread)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = np.empty((len(x), 7), np.float32)
    times = []
    for k in range(len(x)):
        t = time.perf_counter()
        it.set_tensor(i, x[k:k + 1])
        it.invoke()
        out[k] = it.get_tensor(o)[0]
        times.append(time.perf_counter() - t)
    return out, float(np.median(times) * 1000.0)


def confusion_png(cm, path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5.2), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(7):
        for j in range(7):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(7), EMOTIONS_7, rotation=45, ha="right")
    ax.set_yticks(range(7), EMOTIONS_7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("FER+ majority label")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def rep_crops(tr: dict, r: Recipe, n: int = 300) -> np.ndarray:
    """Training crops that calibrate int8 activations."""
    rng = np.random.default_rng(r.seed)
    return crops(tr["image"], tr["geo"][rng.choice(len(tr["geo"]), min(n, len(tr["geo"])), replace=False)], r.size)


def _log_lines(log) -> list[dict]:
    log = pathlib.Path(log)
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.is_file() else []


def logged_epochs(log) -> int:
    return len(_log_lines(log))


def logged_training_s(log) -> float:
    """Training time summed over every run that wrote the checkpoint's log (a resumed
    training counts each part once): the lines' ``epoch_s``; a line without it (older
    logs) counts the clock time since the line before (the first: since ``recipe.json``
    was written at the start)."""
    import datetime as dt

    lines, total = _log_lines(log), 0.0
    prev = dt.datetime.fromtimestamp((pathlib.Path(log).parent / "recipe.json").stat().st_mtime, dt.timezone.utc)
    for d in lines:
        hh, mm, ss = (int(v) for v in d["time"].split(":"))
        now = prev.replace(hour=hh, minute=mm, second=ss)
        if now < prev:
            now += dt.timedelta(days=1)
        total += d["epoch_s"] if "epoch_s" in d else (now - prev).total_seconds()
        prev = now
    return total


def train_image_cnn(data, out, recipe: Recipe | None = None, checkpoint_dir=None, quant: str = "int8",
                    tta_flip: bool = True, register: bool = True, progress: bool = True, callbacks=(),
                    compare_exports: bool = True) -> dict:
    """Train, export, evaluate the exported file with LiteRT on FER+ valid, write the JSON
    and confusion PNG; returns the JSON's content."""
    from ..assets import record_sums
    from .keras_seq import setup_tf

    r = recipe or Recipe()
    t0 = time.time()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = pathlib.Path(checkpoint_dir) / "progress.jsonl" if checkpoint_dir else None
    model, P, train_s = fit(data, r, checkpoint_dir, progress, log=log, callbacks=callbacks)
    tf, _ = setup_tf(r.seed)
    va = P["valid"]
    path = out / f"{MODEL_STEM}.tflite"
    tr = P["train"]
    vx = crops(va["image"], va["geo"], r.size)
    variants = {}  # every export considered, scored the same way: quantisation and mirrored-crop losses
    others = (("float32", True), ("float16", True), ("int8", True), ("float16", False), ("int8", False))
    for q, flip in others if compare_exports else ():
        if (q, flip) == (quant, tta_flip):
            continue
        tmp = out / f".{MODEL_STEM}_{q}_{'tta' if flip else 'plain'}.tflite"
        export(tf, model, r, tmp, q, rep_crops(tr, r) if q == "int8" else None, flip)
        p, t = litert_probs(tmp, vx)
        m = evaluate_probs(p, va)["majority"]
        variants[f"{q}{'' if flip else ', no mirrored crop'}"] = {
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "nll": m["nll"], "litert_ms": round(t, 3),
            "bytes": tmp.stat().st_size}
        tmp.unlink()
    export(tf, model, r, path, quant, rep_crops(tr, r) if quant == "int8" else None, tta_flip)
    proba, ms = litert_probs(path, vx)
    metrics = evaluate_probs(proba, va)
    m = metrics["majority"]
    variants[f"{quant}{'' if tta_flip else ', no mirrored crop'} (shipped)"] = {
        "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "nll": m["nll"], "litert_ms": round(ms, 3),
        "bytes": path.stat().st_size}
    raw_geo = np.array([(*frame_geometry((48, 48)).centre, 48.0, 0.0)] * len(va["image"]))
    raw_proba, _ = litert_probs(path, crops(va["image"], raw_geo, r.size))
    metrics["raw_48x48_frame"] = {k: v for k, v in evaluate_probs(raw_proba, va)["majority"].items()
                                  if k in ("n", "accuracy", "macro_f1")}
    rows = ferplus.fixture_rows(va["votes"], va["faces"]["found"])
    y = va["majority"][rows]
    metrics["test_fixture_sample"] = {
        "what": "the FER+ valid faces of emotion_perception/test/fixtures/data/ferplus/valid.npz "
                "(ferplus.fixture_rows); the test suite checks the shipped file gives these predictions",
        "n": int(len(rows)), "accuracy": round(float((proba[rows].argmax(1) == y).mean()), 4),
        "names": [str(n) for n in va["name"][rows]],
        "predicted": [EMOTIONS_7[int(k)] for k in proba[rows].argmax(1)]}
    png = out / f"{MODEL_STEM}_confusion.png"
    confusion_png(metrics["majority"]["confusion"], png,
                  f"{MODEL_STEM} on FER+ valid (majority label): accuracy {metrics['majority']['accuracy']:.3f}, "
                  f"macro-F1 {metrics['majority']['macro_f1']:.3f}")
    meta = {"model": "image-cnn", "class_names": list(EMOTIONS_7), "input": "aligned grey face crop",
            "input_size": r.size, "crop_margin": r.margin, "input_range": "grey levels 0-255, float32",
            "quantisation": quant, "tta_flip": tta_flip, "parameters": int(model.count_params()),
            "recipe": r.to_json(), "train_faces": int(len(training_rows(tr, r)[0])),
            "train_aligned_fraction": round(float(tr["aligned"].mean()), 4),
            "valid_aligned_fraction": round(float(va["aligned"].mean()), 4),
            "valid": metrics, "exports_compared": variants, "litert_ms_per_face_model_only": round(ms, 3),
            "wall_s_training": round(logged_training_s(log) if log else train_s, 1),
            "epochs_logged": logged_epochs(log) if log else r.epochs,
            "wall_s_this_run": round(time.time() - t0, 1)}
    mpath = out / f"{MODEL_STEM}.json"
    mpath.write_text(json.dumps(meta, indent=2) + "\n")
    if register:
        record_sums([path, mpath, png])
    if progress:
        m = metrics["majority"]
        print(f"FER+ valid (majority label, n={m['n']}): accuracy {m['accuracy']}, macro-F1 {m['macro_f1']}; "
              f"LiteRT {ms:.2f} ms per face; wrote {path}, {mpath}, {png}")
    return meta
