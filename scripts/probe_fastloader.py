"""Probe: images/s of the lab's PIL DataLoader vs device-resident loader variants.

Every variant delivers one full augmented training epoch (shuffle, RandomCrop(32,
padding=4), flip p=0.5) of full-size random CIFAR-shaped uint8 data; the PIL
baseline also normalizes (that is what the lab's pipeline does per image), the
device variants leave normalization to the train step. The variants other than
`DeviceLoader` exist only here, to show why `resnet_lab.data.device_loader` is built
the way it is.

    python scripts/probe_fastloader.py [--images 50000] [--device cpu] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from resnet_lab.data import CIFAR10_MEAN, CIFAR10_STD
from resnet_lab.data.device_loader import PAD, DeviceLoader

BATCH = 128


class PilCifar(Dataset):
    """What torchvision's CIFAR10.__getitem__ does: PIL image from HWC uint8, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def images_per_s(batches: Callable[[], Iterable], sync: Callable[[], None]) -> float:
    """Images/s of one full pass over `batches()`."""
    sync()
    start = time.perf_counter()
    count = sum(x.shape[0] for x, _ in batches())
    sync()
    return count / (time.perf_counter() - start)


def epoch_plan(n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    order = torch.randperm(n, generator=generator)
    top = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    flip = torch.randint(0, 2, (n,), generator=generator).bool()
    return order, top, left, flip


def grouped_offsets(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> Callable[[], Iterator]:
    """Reference variant: one slice-copy per (top, left) group of images in each batch."""
    n = images.shape[0]
    padded_all = torch.nn.functional.pad(images.permute(0, 3, 1, 2), (PAD,) * 4)  # NCHW, once

    def epoch() -> Iterator:
        order, top, left, flip = (t.to(images.device) for t in epoch_plan(n, generator))
        for start in range(0, n, BATCH):
            idx = order[start : start + BATCH]
            src = padded_all.index_select(0, idx)
            out = torch.empty((len(idx), 3, 32, 32), dtype=torch.uint8, device=images.device)
            key = (top[start : start + BATCH] * 9 + left[start : start + BATCH]).tolist()  # host sync: CPU-only idea
            groups: dict[int, list[int]] = {}
            for i, k in enumerate(key):
                groups.setdefault(k, []).append(i)
            for k, members in groups.items():
                dy, dx = divmod(k, 9)
                m = torch.tensor(members, device=images.device)
                out[m] = src[m, :, dy : dy + 32, dx : dx + 32]
            f = flip[start : start + BATCH]
            yield torch.where(f[:, None, None, None], out.flip(3), out), labels[idx]

    return epoch


def row_gather(
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    use_index_select: bool,
    per_epoch: bool,
    mirror: bool,
) -> Callable[[], Iterator]:
    """Padded HWC store, overlapping 96-byte row view, one gather of row starts.

    mirror=True keeps a flipped copy so flips are offsets; mirror=False flips with torch.where after the gather.
    """
    n = images.shape[0]
    padded = torch.zeros((2 if mirror else 1, n, 40, 40, 3), dtype=torch.uint8, device=images.device)
    padded[0, :, PAD:-PAD, PAD:-PAD] = images
    if mirror:
        padded[1] = padded[0].flip(2)
    flat = padded.view(-1)
    rows = flat.as_strided((flat.numel() - 95, 96), (1, 1))
    steps = torch.arange(32, device=images.device) * 120

    def gather(row_starts: torch.Tensor) -> torch.Tensor:
        return rows.index_select(0, row_starts) if use_index_select else rows[row_starts]

    def epoch() -> Iterator:
        order, top, left, flip = (t.to(images.device) for t in epoch_plan(n, generator))
        src = order + flip * n if mirror else order
        left = torch.where(flip, 2 * PAD - left, left) if mirror else left
        first = src * 4800 + top * 120 + left * 3
        y = labels[order]
        if per_epoch:
            every = gather((first[:, None] + steps).view(-1)).view(n, 32, 32, 3)
        for start in range(0, n, BATCH):
            if per_epoch:
                x = every[start : start + BATCH]
            else:
                x = gather((first[start : start + BATCH, None] + steps).view(-1)).view(-1, 32, 32, 3)
            if not mirror:
                f = flip[start : start + BATCH, None, None, None]
                x = torch.where(f, x.flip(2), x)
            yield x.permute(0, 3, 1, 2), y[start : start + BATCH]

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000, metavar="N", help="Images in the split. Default: 50000.")
    parser.add_argument(
        "--device", default="cpu", metavar="DEV", help="Device of the device-resident variants. Default: cpu."
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[0, 2],
        metavar="W",
        help="num_workers values for the PIL DataLoader baseline. Default: 0 2.",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, metavar="R", help="Epochs timed per device variant (best kept). Default: 3."
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    sync = sync_for(device)
    rng = np.random.default_rng(0)
    images_np = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    labels_np = rng.integers(0, 10, size=args.images, dtype=np.int64)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images, batch {BATCH}, "
        f"device variants on {device}"
    )

    results: dict[str, float] = {}
    for workers in args.workers:
        loader = DataLoader(PilCifar(images_np, labels_np), batch_size=BATCH, shuffle=True, num_workers=workers)
        results[f"pil_dataloader_w{workers}"] = images_per_s(loader.__iter__, lambda: None)
        print(
            f"{'pil_dataloader_w' + str(workers):32s} {results[f'pil_dataloader_w{workers}']:>12,.0f} images/s",
            flush=True,
        )

    images = torch.from_numpy(images_np).to(device)
    labels = torch.from_numpy(labels_np).to(device)
    generator = torch.Generator().manual_seed(0)
    # Setup (padding, stores) happens here, outside the timed epochs, as DeviceLoader does at construction.
    variants: dict[str, Callable[[], Iterable]] = {
        "row_gather_isel_batch_mirror": row_gather(
            images, labels, generator, use_index_select=True, per_epoch=False, mirror=True
        ),
        "row_gather_index_batch_mirror": row_gather(
            images, labels, generator, use_index_select=False, per_epoch=False, mirror=True
        ),
        "row_gather_isel_epoch_mirror": row_gather(
            images, labels, generator, use_index_select=True, per_epoch=True, mirror=True
        ),
        "row_gather_isel_batch_where_flip": row_gather(
            images, labels, generator, use_index_select=True, per_epoch=False, mirror=False
        ),
    }
    if device.type == "cpu":  # its grouping reads offsets on the host: a sync per batch on CUDA
        variants["grouped_offsets"] = grouped_offsets(images, labels, generator)
    fast = DeviceLoader(images, labels, BATCH, device=device)
    variants["DeviceLoader (resnet_lab.data.device_loader)"] = lambda: fast
    for name, batches in variants.items():
        best = max(images_per_s(batches, sync) for _ in range(args.repeats))
        results[name] = best
        print(f"{name:40s} {best:>12,.0f} images/s", flush=True)

    base = results.get("pil_dataloader_w0")
    if base:
        print("\nratio to pil_dataloader_w0:")
        for name, value in results.items():
            print(f"  {name:40s} {value / base:8.1f}x")


if __name__ == "__main__":
    main()
