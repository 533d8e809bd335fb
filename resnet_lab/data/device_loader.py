"""A device-resident CIFAR loader: data moved once, augmentation as whole-batch tensor ops.

The idea is airbench's `CifarLoader` (Keller Jordan, 2024); the code is written
fresh. The lab's PIL pipeline (RandomCrop(32, padding=4), RandomHorizontalFlip,
ToTensor, Normalize) spends its time in per-image Python; here one epoch is a
few tensor ops per batch and no Python per image.

How a batch is made (the fastest correct variant in `scripts/probe_fastloader.py`):

* At construction the split is zero-padded once to (N, H+8, W+8, 3) uint8 and
  stored next to its horizontal mirror, so a flip is a choice of source image,
  not a data pass.
* In HWC layout one image row of the crop is W*3 contiguous bytes. A strided
  view of the flat store has a row starting at *every* byte offset, so one
  `index_select` of B*H row-start offsets gathers the whole augmented batch in
  a single copy. Shift, flip and shuffle are all folded into those offsets.
  On the CPU that is one gather per batch (it stays in cache); on a GPU one
  gather per epoch (one kernel instead of a launch per batch).
* The random draws for an epoch (order, shift, flip) come from a CPU generator
  seeded by (seed, epoch), so the stream is reproducible and identical on every
  device; they reach the device in one copy per epoch, never a sync per batch.

Normalization is not done here: the train step calls `normalize_batch` on the
device, where it fuses with the dtype cast.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from .transforms import CIFAR10_MEAN, CIFAR10_STD  # the lab's Normalize constants, defined once

# RandomCrop(32, padding=4): a shift of -PAD..PAD pixels per axis, zero fill.
PAD = 4
SHIFTS_PER_AXIS = 2 * PAD + 1  # 9, so 81 crop positions

Batch = tuple[torch.Tensor, torch.Tensor]


def _as_tensor(array: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(array).__name__}")
    if array.dtype.kind not in "biufc":  # torch cannot wrap object, string or datetime arrays
        raise ValueError(f"{name} must be a numeric array, got numpy dtype {array.dtype}")
    with warnings.catch_warnings():
        # A read-only array (np.load with mmap, say) makes from_numpy warn; the
        # loader only ever reads it (it copies into its own store or clones).
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(array))


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8:
        raise ValueError(
            f"images must be uint8 (as torchvision's CIFAR10.data), got {images.dtype}; "
            "convert 0..255 pixel data with .astype(np.uint8)"
        )
    if images.dim() != 4 or images.shape[-1] != 3 or images.shape[1] < 1 or images.shape[2] < 1:
        raise ValueError(
            f"images must have shape (N, H, W, 3) in HWC layout (e.g. (N, 32, 32, 3)), got {tuple(images.shape)}; "
            "a CHW array needs .transpose(0, 2, 3, 1)"
        )
    if images.shape[0] < 1:
        raise ValueError("images is empty: the loader needs at least one image")


def _check_labels(labels: torch.Tensor, count: int) -> None:
    if labels.dim() != 1:
        raise ValueError(f"labels must be one-dimensional (N,), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.shape[0] != count:
        raise ValueError(f"images and labels differ in length: {count} images, {labels.shape[0]} labels")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch) into independent streams; seed*K + epoch
    # would make (seed, epoch) pairs collide.
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def _padded_with_mirror(images: torch.Tensor) -> torch.Tensor:
    """(2N, H+2P, W+2P, 3) uint8: the zero-padded images, then their horizontal mirrors."""
    n, h, w, c = images.shape
    store = torch.zeros((2, n, h + 2 * PAD, w + 2 * PAD, c), dtype=torch.uint8, device=images.device)
    store[0, :, PAD : PAD + h, PAD : PAD + w] = images
    store[1] = store[0].flip(2)
    return store.view(2 * n, h + 2 * PAD, w + 2 * PAD, c)


class DeviceLoader:
    """Iterates (x, y) batches of a split held on `device`.

    x is uint8 (B, 3, H, W) with channels_last strides (a permuted view of the
    HWC batch; no copy); y is int64 (B,). With `train=True` each epoch is a
    fresh permutation with RandomCrop(padding=4) and a horizontal flip with
    p=0.5 per image; with `train=False` the images come unaugmented, in order.
    Every call of `iter()` starts the next epoch; `epoch` says which comes next.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        batch_size: int = 128,
        *,
        train: bool = True,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        images = _as_tensor(images, "images")
        labels = _as_tensor(labels, "labels")
        _check_images(images)
        _check_labels(labels, images.shape[0])

        self.device = torch.device(device)
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.count, self.height, self.width, _ = images.shape
        self.labels = labels.to(self.device, torch.int64)

        images = images.to(self.device)
        if train:
            store = _padded_with_mirror(images)
            self._padded_row_bytes = store.shape[2] * 3
            self._image_bytes = store[0].numel()
            flat = store.view(-1)
            row_bytes = self.width * 3
            # Overlapping view: row r is flat[r : r + row_bytes], for every byte offset r.
            self._rows = flat.as_strided((flat.numel() - row_bytes + 1, row_bytes), (1, 1))
            # Offsets of an image's H crop rows from its first crop row.
            self._row_steps = torch.arange(self.height, device=self.device) * self._padded_row_bytes
        else:
            self._images = images.contiguous()

    def __len__(self) -> int:
        if self.drop_last:
            return self.count // self.batch_size
        return -(-self.count // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        # Not a generator function: the epoch is claimed when iter() is called,
        # not at the first next(), so `epoch` is always the one that comes next.
        epoch, self.epoch = self.epoch, self.epoch + 1
        if self.train:
            return self._train_batches(epoch)
        return self._eval_batches()

    def _batch_bounds(self) -> Iterator[tuple[int, int]]:
        for index in range(len(self)):
            start = index * self.batch_size
            yield start, min(start + self.batch_size, self.count)

    def _eval_batches(self) -> Iterator[Batch]:
        for start, stop in self._batch_bounds():
            # clone: a batch must not alias the loader's store (callers may modify it in place).
            x = self._images[start:stop].clone()
            yield x.permute(0, 3, 1, 2), self.labels[start:stop].clone()

    def epoch_plan(self, epoch: int) -> dict[str, torch.Tensor]:
        """The random draws of `epoch` (CPU tensors): order, shift_y, shift_x in -4..4, flip in {0, 1}.

        `order[k]` is the source index of the k-th image of the epoch; the others
        are indexed by position in the epoch, like `order`.
        """
        generator = _epoch_generator(self.seed, epoch)
        n = self.count
        order = torch.randperm(n, generator=generator)
        # Offsets 0..8 into the padded image = shifts -4..4, as RandomCrop's randint(0, 40 - 32 + 1).
        top = torch.randint(0, SHIFTS_PER_AXIS, (n,), generator=generator)
        left = torch.randint(0, SHIFTS_PER_AXIS, (n,), generator=generator)
        flip = torch.randint(0, 2, (n,), generator=generator)
        return {"order": order, "shift_y": top - PAD, "shift_x": left - PAD, "flip": flip}

    def _first_row_offsets(self, plan: dict[str, torch.Tensor]) -> torch.Tensor:
        """Byte offset in the flat store of each epoch image's first crop row."""
        source = plan["order"] + plan["flip"] * self.count  # mirrors follow the originals
        left = plan["shift_x"] + PAD
        # A flip of the crop at `left` is the crop of the mirror at the reflected offset.
        left = torch.where(plan["flip"].bool(), 2 * PAD - left, left)
        top = plan["shift_y"] + PAD
        return source * self._image_bytes + top * self._padded_row_bytes + left * 3

    def _batches_per_gather(self) -> int:
        # On a CPU one gather per batch stays in cache (one gather per epoch pays page faults and cache misses);
        # on a GPU one gather per epoch is a single kernel, where per-batch launches (host time) are the cost.
        # The measurement (scripts/probe_fastloader.py): results/README.md, "The device-resident loader's gather".
        return 1 if self.device.type == "cpu" else max(1, len(self))

    def _train_batches(self, epoch: int) -> Iterator[Batch]:
        plan = self.epoch_plan(epoch)
        # One host-to-device copy per epoch; per batch only device-side slicing.
        first_rows = self._first_row_offsets(plan).to(self.device)
        labels = self.labels.index_select(0, plan["order"].to(self.device))
        used = len(self) * self.batch_size if self.drop_last else self.count
        chunk = self._batches_per_gather() * self.batch_size
        for chunk_start in range(0, used, chunk):
            chunk_stop = min(chunk_start + chunk, used)
            row_starts = (first_rows[chunk_start:chunk_stop, None] + self._row_steps).view(-1)
            images = self._rows.index_select(0, row_starts).view(-1, self.height, self.width, 3)
            images = images.permute(0, 3, 1, 2)  # NCHW shape, channels_last strides: no copy
            for start in range(chunk_start, chunk_stop, self.batch_size):
                stop = min(start + self.batch_size, chunk_stop)
                yield images[start - chunk_start : stop - chunk_start], labels[start:stop]


@functools.lru_cache(maxsize=16)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached per device: building them per batch would be a host-to-device copy
    # (and on CUDA a sync) every step.
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


def normalize_batch(
    x_uint8: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """(x / 255 - mean) / std per channel, as ToTensor + Normalize, on x's device.

    Computed in float32 in torchvision's order (so it matches ToTensor +
    Normalize to float32 rounding), then cast to `dtype` in `memory_format`.
    """
    if x_uint8.dtype != torch.uint8:
        raise ValueError(f"normalize_batch expects uint8 pixels, got {x_uint8.dtype}")
    if x_uint8.dim() != 4 or x_uint8.shape[1] != 3:
        raise ValueError(f"normalize_batch expects (B, 3, H, W), got {tuple(x_uint8.shape)}")
    mean, std = _mean_std(x_uint8.device)
    # The arithmetic runs in contiguous (NCHW) layout: broadcasting the (1, 3, 1, 1)
    # constants over channels_last strides makes CPU kernels loop over 3-element
    # rows (measured 2x slower than computing NCHW and converting once at the end).
    x = x_uint8.to(dtype=torch.float32, memory_format=torch.contiguous_format)
    x = x.div_(255).sub_(mean).div_(std)
    return x.to(dtype=dtype, memory_format=memory_format)
