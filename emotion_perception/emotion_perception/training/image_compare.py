"""Short training runs that decided the image model's recipe (``models/image-cnn.md``).

``python -m emotion_perception.training.image_compare [--data DIR] [--only NAME ...]
[--fraction 0.3] [--epochs 6] [--out FILE.jsonl]``

Each run trains from scratch on the same random ``--fraction`` of the FER+ training
faces for ``--epochs`` epochs and is scored on all of FER+ ``valid`` (majority label,
no test-time flip): accuracy, macro-F1, and the same model on the raw 48x48 frames.
One variable changes per run against ``base``; the architecture runs use the base
recipe. Results append to ``--out`` as JSON lines (a finished run is not run again).

``--speed`` instead measures each network's cost without training it: parameters,
Keras training milliseconds per image (2 threads) and LiteRT milliseconds per face
(one thread; float16 weights, with and without the mirrored crop averaged in).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np

from .image import Recipe, crops, evaluate_probs, fit, prepare

SMALL = (16, 32, 64, 128)
#: name -> changes to the base recipe.
VARIANTS = {
    "base": {},
    "majority-targets": {"targets": "majority"},
    "raw-frames": {"crop": "raw"},
    "no-flip": {"flip": False},
    "no-geometric": {"rotate_deg": 0.0, "scale": 0.0, "shift": 0.0},
    "no-photometric": {"photometric": 0.0},
    "no-erasing": {"erase_p": 0.0},
    "mixup-0.2": {"mixup_alpha": 0.2},
    "arch-vgg-32": {"widths": (32, 64, 128, 256)},
    "arch-resnet-24": {"arch": "resnet", "widths": (24, 48, 96, 192)},
    "arch-mobilenetv2-64": {"arch": "mobilenetv2", "size": 64},
}


#: Networks whose cost ``--speed`` measures: name -> recipe changes.
NETWORKS = {"vgg-16 (the short runs)": {"widths": SMALL}, "vgg-32 (shipped)": {},
            "vgg-48": {"widths": (48, 96, 192, 384)}, "resnet-24": {"arch": "resnet", "widths": (24, 48, 96, 192)},
            "mobilenetv2-64": {"arch": "mobilenetv2", "size": 64}}


def speed(out) -> int:
    import tempfile

    from .image import build, export, litert_probs
    from .keras_seq import setup_tf

    tf, keras = setup_tf(0)
    rng = np.random.default_rng(0)
    for name, changes in NETWORKS.items():
        r = dataclasses.replace(Recipe(), **changes)
        keras.backend.clear_session()
        model = build(keras, r)
        model.compile(keras.optimizers.AdamW(1e-3), "categorical_crossentropy")
        x = rng.uniform(0, 255, (64 * 6, r.size, r.size, 1)).astype(np.float32)
        y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, len(x))]
        model.fit(x[:64], y[:64], batch_size=64, verbose=0)
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=64, verbose=0)
        train_ms = (time.perf_counter() - t0) / len(x) * 1000
        row = {"name": name, "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
               "parameters": int(model.count_params()), "keras_train_ms_per_image_2_threads": round(train_ms, 2)}
        with tempfile.TemporaryDirectory() as tmp:
            for flip in (False, True):
                path = pathlib.Path(tmp) / "m.tflite"
                export(tf, model, r, path, "float16", tta_flip=flip)
                _, ms = litert_probs(path, x[:200])
                row[f"litert_ms_float16{'_mirrored' if flip else ''}"] = round(ms, 3)
        row["finished"] = time.strftime("%Y-%m-%d %H:%M")
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


def main(argv=None) -> int:
    from .data import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS))
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", default="image_compare.jsonl")
    ap.add_argument("--speed", action="store_true", help="cost of each network instead (no training)")
    a = ap.parse_args(argv)
    if a.speed:
        return speed(a.out)
    data = pathlib.Path(a.data) if a.data else default_data_dir()
    out = pathlib.Path(a.out)
    done = {json.loads(ln)["name"] for ln in out.read_text().splitlines()} if out.is_file() else set()
    cache: dict = {}
    for name in a.only or VARIANTS:
        if name in done:
            continue
        r = dataclasses.replace(Recipe(widths=SMALL, epochs=a.epochs, train_fraction=a.fraction), **VARIANTS[name])
        key = (r.crop, r.size)
        if key not in cache:
            cache[key] = prepare(data, r, progress=False)
        t0 = time.time()
        import keras

        keras.backend.clear_session()
        model, P, _ = fit(data, r, None, progress=False, prepared=cache[key])
        va = P["valid"]
        m = evaluate_probs(model.predict(crops(va["image"], va["geo"], r.size), batch_size=256, verbose=0), va)
        raw_geo = np.array([((47) / 2, (47) / 2, 48.0, 0.0)] * len(va["image"]))
        m_raw = evaluate_probs(model.predict(crops(va["image"], raw_geo, r.size), batch_size=256, verbose=0), va)
        row = {"name": name, "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in VARIANTS[name].items()},
               "fraction": a.fraction, "epochs": a.epochs, "parameters": int(model.count_params()),
               "valid_accuracy": m["majority"]["accuracy"], "valid_macro_f1": m["majority"]["macro_f1"],
               "valid_nll": m["majority"]["nll"], "valid_on_raw_frames_accuracy": m_raw["majority"]["accuracy"],
               "seconds": round(time.time() - t0, 1), "finished": time.strftime("%Y-%m-%d %H:%M")}
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
