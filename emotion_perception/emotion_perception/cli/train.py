"""``emotion-perception train``: reproduce a shipped model from the shared data.

Each target is the command its model card (``emotion_perception/models/*.md``) names:

- ``transformer``: the landmark-sequence transformer (6 classes);
- ``lstm`` and ``lstm-3class``: the blendshape LSTMs (7 classes; happy, sad, unknown);
- ``svm-landmarks``, ``svm-blendshapes``: the frame classifiers (scikit-learn, skops);
- ``gnn-landmarks``: the mesh graph network (measured, not fused);
- ``image-cnn``: the face-crop CNN on FER+ (checkpointed: the same command resumes);
- ``fused``: the fusion's pooling parameters, fitted on the shipped members' held-out
  outputs (``--video`` adds the stream profile fitted on labelled clips).

Each writes its model files (``.tflite``, ``.skops``, JSON, ``.npz``) into ``--out``,
updates ``SHA256SUMS`` there and prints the held-out metrics it reached. Training uses
TensorFlow/Keras and scikit-learn (imported only here); inference uses LiteRT.
``--quick`` trains a tiny model on a small subset in seconds (for tests), not a model
to ship.
"""

from __future__ import annotations

import argparse

from .args import positive_int

TARGETS = ("transformer", "lstm", "lstm-3class")
#: Frame, image and fusion targets (issue 4), trained by ``training.train_frame_image``.
FRAME_IMAGE_TARGETS = ("svm-landmarks", "svm-blendshapes", "gnn-landmarks", "image-cnn", "fused")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="reproduce a shipped model (sequence, frame, image or fusion) from the shared data",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", choices=TARGETS + FRAME_IMAGE_TARGETS, help="which model")
    p.add_argument("--data", default=None,
                   help="shared data directory (default: $EMOTION_PERCEPTION_DATA or ../shared/data from the repo); for image-cnn the ferplus folder or the folder holding it")
    p.add_argument("--out", default=None, help="output directory (default: the package's models directory)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the shipped recipe's)")
    p.add_argument("--quick", action="store_true", help="tiny data and model, for smoke tests")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    g = p.add_argument_group("image-cnn (the face-image CNN, trained on FER+ aligned face crops)")
    g.add_argument("--arch", default="vgg", choices=("vgg", "resnet", "mobilenetv2"),
                   help="network (default vgg, the shipped one)")
    g.add_argument("--checkpoint-dir", default=None,
                   help="where each epoch's state is kept; an interrupted run given the same directory resumes "
                        "(default: .cache/image-cnn-ARCH under the repository)")
    g.add_argument("--quant", default="int8", choices=("float32", "float16", "int8"),
                   help="weights of the exported .tflite (default int8: as accurate as float16 on FER+ valid, a quarter of the size, faster)")
    g.add_argument("--no-tta", action="store_true", help="export without averaging the mirrored crop")
    g = p.add_argument_group("fused")
    g.add_argument("--video", nargs="+", default=None, metavar="RUNS",
                   help="`evaluate-video --output` folders of labelled clips: the stream profiles are also fitted on "
                        "the members' recorded outputs there, judged leave-one-actor-out (models/fused.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pathlib
    import sys

    from ..assets import models_dir
    from ..training.data import DATA_ENV, default_data_dir

    data = pathlib.Path(args.data) if args.data else default_data_dir()
    if not data.exists():
        print(f"emotion-perception train: no training data at {data}: pass --data DIR or set {DATA_ENV} "
              "(the shared data folder; each model card says which part it reads)", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out) if args.out else models_dir()
    out.mkdir(parents=True, exist_ok=True)
    try:
        if args.target in FRAME_IMAGE_TARGETS:
            from ..training.train_frame_image import run_target

            return run_target(args, data, out)
        if args.target == "transformer":
            from ..training.transformer import train
        else:
            from ..training.lstm import train
        result = train(args.target, data_dir=data, out_dir=out, epochs=args.epochs, quick=args.quick,
                       seed=args.seed)
    except FileNotFoundError as e:  # a part of the data folder missing: which file
        what = f"{e.filename}: missing from the training data" if e.filename else str(e)
        print(f"emotion-perception train: {what}", file=sys.stderr)
        return 2
    for k, v in result.items():
        print(f"{k}: {v}")
    return 0
