"""Augmentation for preprocessed photos (28x28 model inputs), seeded like the dataset's.

A few hundred photos are too few to cover how people shoot: the same garment comes out a little
rotated, larger or smaller, brighter or dimmer, sharper or softer, and with a ragged edge where the
segmentation met a floor of similar colour. Each of those is drawn here at random, on the model
input itself, so training never re-runs the (slow) photo preprocessing.

Rotation is allowed here although it hurts on Fashion-MNIST (TRAINING-NOTES.md): dataset images are
all perfectly upright, photos are not, and preprocessing straightens them only to within a few degrees.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from fmnist_edge.runtime.spec import IMAGE_SIZE
from fmnist_edge.train.config import PhotoAugmentConfig


def augment_photo(image: np.ndarray, rng: np.random.Generator, cfg: PhotoAugmentConfig) -> np.ndarray:
    """uint8 [28, 28] -> uint8 [28, 28], one random draw of every transform."""
    pil = Image.fromarray(image, "L")
    if cfg.flip and rng.random() < 0.5:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-cfg.max_rotation, cfg.max_rotation)
    scale = rng.uniform(*cfg.scale)
    dx, dy = rng.integers(-cfg.max_shift, cfg.max_shift + 1, 2)
    pil = _rotate_scale_shift(pil, angle, scale, int(dx), int(dy))
    if rng.random() < cfg.blur_prob:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, cfg.max_blur)))
    x = np.asarray(pil, dtype=np.float32) / 255.0
    if rng.random() < cfg.edge_noise_prob:
        x = _edge_noise(x, rng)
    x = (x ** rng.uniform(*cfg.gamma)) * rng.uniform(*cfg.gain)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def augment_photos(images: np.ndarray, rng: np.random.Generator, cfg: PhotoAugmentConfig) -> np.ndarray:
    """uint8 [N, 28, 28] -> a new uint8 [N, 28, 28]."""
    return np.stack([augment_photo(image, rng, cfg) for image in images]) if len(images) else images.copy()


def _rotate_scale_shift(image: Image.Image, angle: float, scale: float, dx: int, dy: int) -> Image.Image:
    """About the canvas centre, on a black background, as the dataset's items sit."""
    c = IMAGE_SIZE / 2
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    # The inverse map (output -> input) that Image.transform takes.
    a, b, d, e = cos, sin, -sin, cos
    coeffs = (a, b, c - a * (c + dx) - b * (c + dy), d, e, c - d * (c + dx) - e * (c + dy))
    return image.transform(image.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR, fillcolor=0)


def _edge_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grow or eat the silhouette at random edge pixels, as an imperfect segmentation does."""
    inside = x > 0.05
    grown = np.asarray(Image.fromarray(inside.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3))) > 0
    shrunk = np.asarray(Image.fromarray(inside.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))) > 0
    pick = rng.random(x.shape) < 0.5
    out = x.copy()
    eat = inside & ~shrunk & pick
    out[eat] = 0.0
    grow = grown & ~inside & pick
    neighbour_mean = np.asarray(Image.fromarray(np.round(x * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3)))
    out[grow] = neighbour_mean[grow] / 255.0 * 0.6
    return out
