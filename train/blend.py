"""`fmnist-edge blend`: interpolate a fine-tuned model's weights back towards the model it started from.

Fine-tuning on a few hundred photos teaches the model photos and costs it some dataset accuracy.
Averaging the two models' weights, w = (1 - a) * start + a * tuned, trades one for the other
smoothly (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", WiSE-FT): for small `a`
the dataset accuracy comes back almost fully while part of the photo gain stays. The two models
share one architecture and one starting point, which is what makes their average a good model.

`a` is chosen on held-out data only: the largest photo validation accuracy among the blends whose
dataset validation accuracy is within `max_drop` of the starting model's. The test set plays no part.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path, write_text_atomic
from fmnist_edge.common.keras_model import TRAINING_RECORD
from fmnist_edge.runtime.errors import FmnistEdgeError, ModelError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.train import data as fmnist_data
from fmnist_edge.train.photos import VAL_SPLIT, load_split
from fmnist_edge.train.train import config_from_record, split

MODEL_FILE = by_name("keras").filename
ALPHAS = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 11))


@dataclass(frozen=True)
class BlendRow:
    alpha: float
    val_accuracy: float
    photo_val_accuracy: float


def blend(start: Path, tuned: Path, photos: Path, out_dir: Path, max_drop: float = 0.002,
          data_dir: Path | None = None, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Write the chosen blend as `fmnist_cnn.keras` and its record (the tuned model's, plus how it was blended)."""
    model_path, record_path = out_dir / MODEL_FILE, out_dir / TRAINING_RECORD
    if model_path.exists() and not force:
        raise FmnistEdgeError(f"{model_path} exists; pass --force to replace it or choose another --out")
    for path in (start, tuned):
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
    tuned_record_path = tuned.parent / TRAINING_RECORD
    try:
        record = json.loads(tuned_record_path.read_text(encoding="utf-8"))
        cfg = config_from_record(record["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{tuned_record_path}: the tuned model's training record is unreadable ({exc})") from None
    ds = fmnist_data.load(data_dir)
    _, (val_x, val_y) = split(ds.train_images, ds.train_labels, cfg)  # the split the tuned model was selected on
    val_photos = load_split(photos, VAL_SPLIT, log)

    import keras

    from fmnist_edge.common.keras_model import load_keras_model
    from fmnist_edge.train.loop import mirror_accuracy

    start_model, tuned_model = load_keras_model(start), load_keras_model(tuned)
    start_weights, tuned_weights = start_model.get_weights(), tuned_model.get_weights()
    if [w.shape for w in start_weights] != [w.shape for w in tuned_weights]:
        raise ModelError(f"{start} and {tuned} do not share one architecture; they cannot be blended")
    model = keras.models.clone_model(tuned_model)
    rows = []
    for alpha in ALPHAS:
        model.set_weights([(1 - alpha) * s + alpha * t for s, t in zip(start_weights, tuned_weights, strict=True)])
        row = BlendRow(alpha, mirror_accuracy(model, val_x, val_y),
                       mirror_accuracy(model, val_photos.images, val_photos.labels))
        log(f"a = {alpha:.1f}: val {row.val_accuracy:.4f}  photo val {row.photo_val_accuracy:.4f}")
        rows.append(row)
    floor = rows[0].val_accuracy - max_drop
    allowed = [r for r in rows if r.val_accuracy >= floor]
    chosen = max(allowed, key=lambda r: (r.photo_val_accuracy, -r.alpha))
    model.set_weights([(1 - chosen.alpha) * s + chosen.alpha * t
                       for s, t in zip(start_weights, tuned_weights, strict=True)])
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    record["blend"] = {
        "rule": f"largest photo val accuracy with dataset val accuracy >= the starting model's - {max_drop}",
        "start": {"file": str(start), "sha256": _sha256(start)},
        "tuned": {"file": str(tuned), "sha256": _sha256(tuned)},
        "alpha": chosen.alpha,
        "val_accuracy": round(chosen.val_accuracy, 5),
        "photo_val_accuracy": round(chosen.photo_val_accuracy, 5),
        "grid": [vars(r) for r in rows],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from fmnist_edge.train.provenance import git_commit

    record["blend"]["git_commit"] = git_commit(Path(__file__).resolve().parent)
    write_text_atomic(record_path, json.dumps(record, indent=2) + "\n")
    return record


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
