"""The lab's CIFAR-10 constants and PIL transforms (LAB_SPEC), defined once for every loader."""

from __future__ import annotations

from torchvision import transforms

# LAB_SPEC's normalization constants (the lab's values, as used by kuangliu/pytorch-cifar;
# the std is not the exact per-channel std of CIFAR-10, but the lab prescribes it).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = len(CIFAR10_CLASSES)


def train_transform() -> transforms.Compose:
    """LAB_SPEC's training augmentation: pad-4 random crop, horizontal flip, then normalize."""
    return transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(0.5),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )


def test_transform() -> transforms.Compose:
    """LAB_SPEC's evaluation transform: no augmentation, same normalization."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


# Not a test: keep pytest from collecting it when a test module imports it by name.
test_transform.__test__ = False  # type: ignore[attr-defined]  # tells pytest this is not a test
