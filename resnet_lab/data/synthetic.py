"""The built-in CIFAR-10 stand-in: same shapes, counts, dtype and label balance, deterministic, learnable.

Every command runs offline on a fresh machine with it; `--data synthetic` is the default everywhere.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .dataset import Splits
from .transforms import CIFAR10_CLASSES, IMAGE_SHAPE, NUM_CLASSES

_SYNTH_PAD = 4  # same as RandomCrop's padding: each image is a random 32x32 window of a 40x40 class canvas
_SYNTH_CHUNK = 2048  # images per vectorized step: bounds float32 scratch memory to ~25 MB


def synthetic_splits(seed: int, train_size: int, test_size: int) -> Splits:
    """Built-in CIFAR-10 stand-in: per-class colour and stripe pattern, plus per-image shift, brightness and noise.

    The class cue (a distinct hue per class, plus a low-frequency stripe pattern) survives crop and
    flip augmentation, so a ResNet-18 learns it within a few hundred steps; the per-image jitter keeps
    the images from being constant. Train and test share the class canvases but draw different images.
    """
    canvas_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    canvases = _synthetic_canvases(np.random.default_rng(canvas_seq))
    train_images, train_labels = _synthetic_images(canvases, train_size, np.random.default_rng(train_seq))
    test_images, test_labels = _synthetic_images(canvases, test_size, np.random.default_rng(test_seq))
    return Splits(train_images, train_labels, test_images, test_labels, CIFAR10_CLASSES, "synthetic")


def _synthetic_canvases(rng: np.random.Generator) -> np.ndarray:
    """(10, 40, 40, 3) float32 class canvases on the 0-255 scale."""
    size = 32 + 2 * _SYNTH_PAD
    hue_offset = rng.random()
    # Ten evenly spaced hues: colour alone separates the classes (10 iterations, not a per-image loop).
    base = np.array([colorsys.hsv_to_rgb((k + hue_offset) / NUM_CLASSES % 1.0, 0.6, 0.65) for k in range(NUM_CLASSES)])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    freq = rng.integers(1, 4, size=(NUM_CLASSES, 2)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=NUM_CLASSES)
    stripes = np.sin(
        2 * np.pi * (freq[:, 0, None, None] * xx + freq[:, 1, None, None] * yy) / size + phase[:, None, None]
    )
    tint = rng.uniform(-1.0, 1.0, size=(NUM_CLASSES, 3))
    canvases = base[:, None, None, :] + 0.2 * stripes[..., None] * tint[:, None, None, :]
    return (255.0 * canvases).astype(np.float32)


def _synthetic_images(canvases: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = _balanced_labels(n, rng)
    images = np.empty((n, *IMAGE_SHAPE), dtype=np.uint8)
    # windows[c, dy, dx] is canvas c shifted by (dy, dx): a view, so no per-shift copies.
    windows = np.lib.stride_tricks.sliding_window_view(canvases, (32, 32), axis=(1, 2))  # (10, 9, 9, 3, 32, 32)
    shifts = 2 * _SYNTH_PAD + 1
    for start in range(0, n, _SYNTH_CHUNK):
        stop = min(start + _SYNTH_CHUNK, n)
        count = stop - start
        dy, dx = rng.integers(0, shifts, size=(2, count))
        batch = windows[labels[start:stop], dy, dx].transpose(0, 2, 3, 1)  # (count, 32, 32, 3), a copy
        batch *= rng.uniform(0.75, 1.25, size=(count, 1, 1, 1)).astype(np.float32)  # brightness
        batch += rng.uniform(-12, 12, size=(count, 1, 1, 3)).astype(np.float32)  # colour cast
        # Uniform noise in [-48, 48] from uint8 draws: ~5x faster than float normals, same purpose.
        noise = rng.integers(0, 256, size=batch.shape, dtype=np.uint8)
        batch += noise.astype(np.float32) * np.float32(96 / 255) - np.float32(48)
        np.clip(batch, 0, 255, out=batch)
        images[start:stop] = batch  # float -> uint8 truncation is fine for noise-jittered pixels
    return images, labels


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Labels 0..9, counts differing by at most one (exactly equal when n % 10 == 0), shuffled."""
    return rng.permutation(np.arange(n, dtype=np.int64) % NUM_CLASSES)
