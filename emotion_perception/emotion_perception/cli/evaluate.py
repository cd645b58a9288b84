"""``emotion-perception evaluate``: score a model on a labelled .npz.

Runs the model exactly as ``predict`` does (frame layout: each row a one-frame
sequence; sequence layout: each clip fed in order, final estimate scored) and writes
to ``--output DIR``: ``metrics.json`` (accuracy, macro-F1, per-class report, confusion
matrix, ROC AUC, counts), ``confusion_matrix.png``, ``roc.png`` and
``predictions.csv``.

Class-set mismatch (a model that does not know every label of the file):
- a true label the model knows is scored as it is;
- otherwise, if the model has an ``unknown`` class (the 3-class LSTM), the label is
  mapped to ``unknown`` (so angry, fear, neutral, ... count as ``unknown``);
- otherwise the row is left out (e.g. ``surprise`` for the 6-class transformer,
  ``contempt`` for every model) and counted in ``metrics.json`` under
  ``excluded_labels``. Rows or clips without a face (no estimate) are left out too
  and counted as ``no_estimate``. Macro-F1 averages over the model's classes that
  occur among the scored rows.
"""

from __future__ import annotations

import argparse

from .args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ..classifiers import MODELS

    p = sub.add_parser("evaluate", help="accuracy, macro-F1, confusion matrix and ROC of a model on a labelled .npz",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=list(MODELS), help="model name")
    p.add_argument("--input", required=True,
                   help="labelled .npz (frame or sequence layout), or a folder of photos with a labels.csv")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--limit", type=positive_int, default=None, help="score only the first N rows/clips")
    p.set_defaults(func=run)


def map_labels(labels, class_names) -> list[str | None]:
    """True labels in the model's class set (None: row left out); see module doc."""
    known = set(class_names)
    out = []
    for lab in labels:
        lab = str(lab)
        if lab in known:
            out.append(lab)
        elif "unknown" in known:
            out.append("unknown")
        else:
            out.append(None)
    return out


def score(class_names, probs, true_labels) -> dict:
    """Metrics of ``probs`` (M, C) against ``true_labels`` (M,), mismatch-handled.

    Returns:
        dict with accuracy, macro_f1, report, confusion_matrix, roc_auc, counts.
    """
    import collections

    import numpy as np
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, roc_auc_score

    mapped = map_labels(true_labels, class_names)
    excluded = collections.Counter(str(t) for t, m in zip(true_labels, mapped) if m is None)
    has_est = np.all(np.isfinite(probs), axis=1)
    keep = np.array([m is not None for m in mapped]) & has_est
    y_true = np.array([m for m, k in zip(mapped, keep) if k])
    p = probs[keep]
    y_pred = np.array([class_names[i] for i in np.argmax(p, axis=1)]) if len(p) else np.array([])
    present = [c for c in class_names if c in set(y_true)]
    result = {"n_total": int(len(true_labels)), "n_scored": int(keep.sum()),
              "no_estimate": int((~has_est).sum()), "excluded_labels": dict(excluded),
              "class_names": list(class_names)}
    if not len(y_true):
        return result | {"accuracy": float("nan"), "macro_f1": float("nan")}
    result["accuracy"] = float(accuracy_score(y_true, y_pred))
    result["macro_f1"] = float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    result["report"] = classification_report(y_true, y_pred, labels=list(class_names), output_dict=True,
                                             zero_division=0)
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=list(class_names)).tolist()
    auc = {}
    for i, c in enumerate(class_names):
        pos = y_true == c
        if 0 < pos.sum() < len(pos):
            auc[c] = float(roc_auc_score(pos, p[:, i]))
    result["roc_auc"] = auc
    result["_y_true"], result["_p"] = y_true, p
    return result


def plot(result: dict, out_dir, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import roc_curve

    names = result["class_names"]
    cm = np.array(result["confusion_matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    y_true, p = result["_y_true"], result["_p"]
    for i, c in enumerate(names):
        if c in result["roc_auc"]:
            fpr, tpr, _ = roc_curve(y_true == c, p[:, i])
            ax.plot(fpr, tpr, label=f"{c} (AUC {result['roc_auc'][c]:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title}: one-vs-rest ROC")
    if result["roc_auc"]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import json
    import pathlib
    import sys

    from .. import classifiers
    from ..assets import ModelFileError
    from .predict import is_sequence_layout, load_arrays, predict_arrays, write_csv

    try:
        arrays = load_arrays(args.input)
    except (OSError, ValueError) as e:  # OSError: a photo folder with nothing to read
        print(f"emotion-perception evaluate: {e}", file=sys.stderr)
        return 2
    if "label" not in arrays:
        print(f"emotion-perception evaluate: {args.input} has no 'label' array: nothing to evaluate against",
              file=sys.stderr)
        return 2
    if args.limit:
        if is_sequence_layout(arrays):
            for k in ("sequence_start", "sequence_length", "label", "fps", "source", "subject", "image_wh"):
                if k in arrays:
                    arrays[k] = arrays[k][:args.limit]
        else:
            arrays = {k: (v[:args.limit] if v.ndim and len(v) == len(arrays["label"]) else v)
                      for k, v in arrays.items()}
    try:
        model = classifiers.load(args.model)
        probs, labels = predict_arrays(model, arrays)
    except (ValueError, ModelFileError) as e:
        print(f"emotion-perception evaluate: {e}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "predictions.csv", model.class_names, probs, labels)
    result = score(model.class_names, probs, arrays["label"])
    result["model"], result["input"] = args.model, str(args.input)
    if result["n_scored"]:
        plot(result, out, f"{args.model} on {pathlib.Path(args.input).name}")
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    (out / "metrics.json").write_text(json.dumps(clean, indent=2) + "\n")
    print(f"{args.model} on {args.input}: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
          f"({result['n_scored']} scored of {result['n_total']}; excluded {result['excluded_labels'] or 'none'}; "
          f"no estimate {result['no_estimate']}) -> {out}")
    return 0
