"""Batch augmentation in numpy, seeded, so a run is reproducible from its seed alone.

What suits Fashion-MNIST (see shared/TRAINING-NOTES.md): horizontal flips, small shifts (pad and
crop) and random erasing. Rotation and shear hurt on this data, so they are absent.
"""

from __future__ import annotations

import numpy as np

from fmnist_edge.train.config import AugmentConfig


def augment_batch(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig,
                  flips: np.ndarray | None = None) -> np.ndarray:
    """images: uint8 [N, H, W]. Returns a new uint8 array of the same shape. `flips` (bool [N]): which
    images to mirror, decided by the caller (alternating flips); else drawn from `rng` when cfg.flip."""
    n, h, w = images.shape
    out = images
    if cfg.flip:
        flip = rng.random(n) < 0.5 if flips is None else flips
        out = np.where(flip[:, None, None], out[:, :, ::-1], out)
    if cfg.max_shift > 0:
        s = cfg.max_shift
        padded = np.pad(out, ((0, 0), (s, s), (s, s)))
        dy = rng.integers(0, 2 * s + 1, n)
        dx = rng.integers(0, 2 * s + 1, n)
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if cfg.erase_prob > 0:
        out = out.copy() if out is images else out
        area = rng.uniform(*cfg.erase_area, n) * h * w
        log_aspect = rng.uniform(np.log(cfg.erase_aspect[0]), np.log(cfg.erase_aspect[1]), n)
        aspect = np.exp(log_aspect)
        eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(int)
        ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(int)
        y0 = (rng.random(n) * (h - eh + 1)).astype(int)
        x0 = (rng.random(n) * (w - ew + 1)).astype(int)
        yy = np.arange(h)[None, :, None]
        xx = np.arange(w)[None, None, :]
        mask = (
            (yy >= y0[:, None, None])
            & (yy < (y0 + eh)[:, None, None])
            & (xx >= x0[:, None, None])
            & (xx < (x0 + ew)[:, None, None])
            & (rng.random(n) < cfg.erase_prob)[:, None, None]
        )
        noise = rng.integers(0, 256, out.shape, dtype=np.uint8)
        out = np.where(mask, noise, out)
    return np.ascontiguousarray(out)
