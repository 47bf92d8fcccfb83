"""The one held-out split of the 60k training images: what `train` validates on, what `export`
calibrates the unsure threshold on, and what the tests rebuild. Seeded by the run's config, so
every stage finds the same 5,000 images from the training record alone. The test set is never here.
"""

from __future__ import annotations

import numpy as np

from fmnist_edge.train.config import TrainConfig

Images = tuple[np.ndarray, np.ndarray]


def split(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig) -> tuple[Images, Images]:
    """Fixed-seed split of the training set into (train, validation), each (images, labels)."""
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.subset is not None:
        train_idx = train_idx[: cfg.subset]
        val_idx = val_idx[: max(1, min(cfg.val_size, cfg.subset // 5))]
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])
