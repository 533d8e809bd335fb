"""The device-resident loader against the lab's PIL pipeline: the same training batches, in distribution.

Two kinds of evidence (issue 19, item 2):

* Same draws, exact: the PIL pipeline (LabDataset + train_transform() + make_train_loader) draws its
  own order, crops and flips; they are read back from coded images and handed to DeviceLoader in
  place of its own epoch plan. Its batches, normalized as the train step normalizes them, must then
  equal the PIL batches bit for bit, labels included, the last partial batch included.
* Own draws, statistical: each loader draws with its own generator, so their crop offsets and flips
  are compared by chi-square tests of homogeneity, and each shuffle by rank correlations. The power
  of each test against named alternatives is computed here from the sample sizes (noncentral
  chi-square) and asserted, so shrinking the samples cannot make a test blind unnoticed.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from codedimages import coded_images, decode, indexed_images, source_index, unnormalize
from scipy import stats

from resnet_lab.data import LabDataset, LoaderConfig, make_train_loader, train_transform
from resnet_lab.data.device_loader import PAD, DeviceLoader, normalize_batch
from resnet_lab.engine.run import LabRun, RunConfig

ALPHA = 1e-3  # a correct pair of loaders fails a homogeneity test with probability 1e-3 (fixed seeds: never here)


def pil_loader(images: np.ndarray, labels: np.ndarray, batch: int, seed: int, drop_last: bool = False):
    dataset = LabDataset(images, labels, [str(c) for c in range(10)], "coded", train_transform())
    return make_train_loader(dataset, LoaderConfig(batch_size=batch, num_workers=0, seed=seed, drop_last=drop_last))


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, y) for x, y in loader]


def pil_draws(epoch_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """An epoch plan (DeviceLoader.epoch_plan's form) read back from the PIL pipeline's batches of id-labelled coded
    images."""
    x = torch.cat([unnormalize(x) for x, _ in epoch_batches])
    shift_y, shift_x, flipped = decode(x)
    return {
        "order": torch.cat([y for _, y in epoch_batches]),
        "shift_y": shift_y,
        "shift_x": shift_x,
        "flip": flipped.long(),
    }


@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
def test_pil_draws_fed_to_the_device_loader_give_the_same_batches_bit_for_bit(
    drop_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, batch = 300, 64  # 64, 64, 64, 64 and a partial 44
    images, ids = coded_images(n), np.arange(n)
    pil = pil_loader(images, ids, batch, seed=4, drop_last=drop_last)
    device = DeviceLoader(images, ids, batch, seed=4, drop_last=drop_last)
    assert len(device) == len(pil)
    for epoch in range(2):
        expected = batches(pil)
        draws = pil_draws(expected)
        if drop_last:  # the plan covers the whole epoch; the PIL loader never showed the dropped images
            rest = torch.from_numpy(np.setdiff1d(ids, draws["order"].numpy()))
            zeros = torch.zeros_like(rest)
            draws = {"order": torch.cat([draws["order"], rest])} | {
                k: torch.cat([draws[k], zeros]) for k in ("shift_y", "shift_x", "flip")
            }
        monkeypatch.setattr(
            device,
            "epoch_plan",
            lambda e, draws=draws, epoch=epoch: draws if e == epoch else pytest.fail(f"plan of epoch {e}"),
        )
        got = batches(device)
        assert [y.shape[0] for _, y in got] == [y.shape[0] for _, y in expected]
        assert sum(y.shape[0] for _, y in got) == (n // batch * batch if drop_last else n)
        for (x, y), (x_pil, y_pil) in zip(got, expected, strict=True):
            assert torch.equal(y, y_pil)
            # The step's normalization (engine/step.to_device) against ToTensor + Normalize: equal, not close.
            assert torch.equal(normalize_batch(x), x_pil)


def test_the_pil_draws_read_back_are_the_pipelines_own() -> None:
    # decode/unnormalize must read back what RandomCrop and RandomHorizontalFlip drew, or the exact test
    # above would compare the device loader with a misreading: replay the reading with torchvision's ops.
    from torchvision.transforms import functional as TF

    n = 40
    images = coded_images(n)
    epoch_batches = batches(pil_loader(images, np.arange(n), 16, seed=1))
    draws = pil_draws(epoch_batches)
    x_pil = torch.cat([x for x, _ in epoch_batches])
    for k, source in enumerate(draws["order"].tolist()):
        image = TF.to_tensor(images[source])
        crop = TF.crop(TF.pad(image, PAD), int(draws["shift_y"][k]) + PAD, int(draws["shift_x"][k]) + PAD, 32, 32)
        crop = TF.hflip(crop) if draws["flip"][k] else crop
        assert torch.equal(
            TF.normalize(crop, train_transform().transforms[-1].mean, train_transform().transforms[-1].std), x_pil[k]
        )


@pytest.mark.parametrize("loader_kind", ["pil", "device"])
def test_labels_stay_paired_with_their_images(loader_kind: str) -> None:
    n = 250  # indexed_images: channel 2 names the source, so every output's label can be checked
    images = indexed_images(n)
    labels = (np.arange(n) * 7 + 3) % 10  # not the index: a pairing bug cannot hide behind labels == ids
    loader = (
        pil_loader(images, labels, 64, seed=2) if loader_kind == "pil" else DeviceLoader(images, labels, 64, seed=2)
    )
    for _ in range(2):
        for x, y in loader:
            pixels = unnormalize(x) if x.is_floating_point() else x
            assert torch.equal(y, torch.from_numpy(labels)[source_index(pixels)])


# ----------------------------------------------------------------------------- own draws: distribution


N_STAT, EPOCHS_STAT, BATCH_STAT = 2_000, 10, 500  # 20,000 augmented images per loader


@pytest.fixture(scope="module")
def both_streams() -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per loader: (uint8 images, source ids) of each of EPOCHS_STAT epochs, each loader with its own draws."""
    images, ids = coded_images(N_STAT), np.arange(N_STAT)
    pil = pil_loader(images, ids, BATCH_STAT, seed=0)
    device = DeviceLoader(images, ids, BATCH_STAT, seed=0)
    streams: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"pil": [], "device": []}
    for _ in range(EPOCHS_STAT):
        got = batches(pil)
        streams["pil"].append((torch.cat([unnormalize(x) for x, _ in got]), torch.cat([y for _, y in got])))
        got = batches(device)
        streams["device"].append((torch.cat([x for x, _ in got]), torch.cat([y for _, y in got])))
    return streams


def homogeneity_power(p_a: np.ndarray, p_b: np.ndarray, n_a: int, n_b: int, alpha: float = ALPHA) -> float:
    """Power of the chi-square homogeneity test of two samples (sizes n_a, n_b) drawn from p_a and p_b.

    The statistic is asymptotically noncentral chi-square with (cells - 1) degrees of freedom and
    noncentrality n_a n_b / (n_a + n_b) * sum((p_a - p_b)^2 / p_pooled).
    """
    pooled = (n_a * p_a + n_b * p_b) / (n_a + n_b)
    keep = pooled > 0
    noncentrality = n_a * n_b / (n_a + n_b) * float(((p_a - p_b)[keep] ** 2 / pooled[keep]).sum())
    dof = int(keep.sum()) - 1
    return float(stats.ncx2.sf(stats.chi2.isf(alpha, dof), dof, noncentrality))


def offset_cells(x: torch.Tensor) -> np.ndarray:
    shift_y, shift_x, _ = decode(x)
    return np.bincount(((shift_y + PAD) * (2 * PAD + 1) + shift_x + PAD).numpy(), minlength=(2 * PAD + 1) ** 2)


def uniform_on(shifts: range) -> np.ndarray:
    """Crop-offset cell probabilities when both shifts are uniform on `shifts` (a subset of -4..4)."""
    p = np.zeros((2 * PAD + 1, 2 * PAD + 1))
    for dy in shifts:
        for dx in shifts:
            p[dy + PAD, dx + PAD] = 1
    return (p / p.sum()).ravel()


def test_crop_offsets_have_the_same_distribution_in_both_loaders(both_streams) -> None:
    counts = np.stack([sum(offset_cells(x) for x, _ in both_streams[kind]) for kind in ("pil", "device")])
    n = N_STAT * EPOCHS_STAT
    assert counts.sum(axis=1).tolist() == [n, n] and (counts > 0).all()  # all 81 offsets seen by both
    p_value = stats.chi2_contingency(counts).pvalue
    assert p_value > ALPHA, f"crop offsets differ between the loaders (chi-square homogeneity p = {p_value:.2e})"
    # Power at these sizes, alternatives a fast loader could plausibly get wrong:
    lab = uniform_on(range(-PAD, PAD + 1))
    assert homogeneity_power(lab, uniform_on(range(-PAD, PAD)), n, n) > 0.999  # randint(0, 8): shifts -4..3
    assert homogeneity_power(lab, uniform_on(range(-3, 4)), n, n) > 0.999  # padding 3
    centre_heavy = lab.copy()
    centre_heavy[40] += 0.02  # 2% of the images left unshifted on top of the lab's draws (1%: power 0.71)
    assert homogeneity_power(lab, centre_heavy / centre_heavy.sum(), n, n) > 0.99


def test_flips_have_the_same_rate_in_both_loaders(both_streams) -> None:
    flips = np.array([[int(sum(decode(x)[2].sum() for x, _ in both_streams[kind]))] for kind in ("pil", "device")])
    n = N_STAT * EPOCHS_STAT
    counts = np.hstack([flips, n - flips])
    p_value = stats.chi2_contingency(counts, correction=False).pvalue
    assert p_value > ALPHA, f"flip rates differ: {counts[:, 0] / n} (p = {p_value:.2e})"
    # Power: a flip rate of 0.47 instead of 0.5 is caught with probability > 0.99 at these sizes.
    assert homogeneity_power(np.array([0.5, 0.5]), np.array([0.47, 0.53]), n, n) > 0.99


def test_flip_is_independent_of_the_crop_offset(both_streams) -> None:
    # A loader that flips only some offsets (or reflects the offset wrongly for flips) keeps both
    # marginals right; the 81 x 2 table within each loader shows it.
    for kind, epochs in both_streams.items():
        x = torch.cat([x for x, _ in epochs])
        table = np.stack([offset_cells(x[~decode(x)[2]]), offset_cells(x[decode(x)[2]])])
        p_value = stats.chi2_contingency(table).pvalue
        assert p_value > ALPHA, f"{kind}: flip depends on the crop offset (p = {p_value:.2e})"


def test_each_epoch_is_a_fresh_uniform_shuffle_in_both_loaders(both_streams) -> None:
    # Every image once per epoch; the order uncorrelated with the index and with the previous epoch's.
    # Under a uniform shuffle Spearman's rho has sd 1/sqrt(N - 1) (0.022 here), so |rho| < 5 sd fails
    # a correct loader with probability < 1e-6, while no shuffle, or the same shuffle every epoch, gives rho = 1.
    bound = 5 / math.sqrt(N_STAT - 1)
    for kind, epochs in both_streams.items():
        orders = [ids for _, ids in epochs]
        for order in orders:
            assert torch.equal(order.sort().values, torch.arange(N_STAT)), f"{kind}: an epoch is not a permutation"
            assert abs(stats.spearmanr(order.numpy(), np.arange(N_STAT)).statistic) < bound, (
                f"{kind}: order follows the index"
            )
        for before, after in pairwise(orders):
            position_before, position_after = torch.argsort(before), torch.argsort(after)
            rho = stats.spearmanr(position_before.numpy(), position_after.numpy()).statistic
            assert abs(rho) < bound, f"{kind}: an epoch's order repeats the previous one (rho {rho:.3f})"


def test_augmentation_is_drawn_afresh_per_epoch_in_both_loaders(both_streams) -> None:
    # The same image's offset and flip in consecutive epochs agree only by chance (1/81 x 1/2 when uniform).
    for kind, epochs in both_streams.items():
        draws = []
        for x, ids in epochs:
            shift_y, shift_x, flipped = decode(x)
            code = ((shift_y + PAD) * 9 + shift_x + PAD) * 2 + flipped.long()
            draws.append(code[torch.argsort(ids)])  # by source image
        same = sum(int((a == b).sum()) for a, b in pairwise(draws))
        pairs = N_STAT * (EPOCHS_STAT - 1)
        expected, sd = pairs / 162, math.sqrt(pairs / 162 * (1 - 1 / 162))
        assert abs(same - expected) < 5 * sd, f"{kind}: {same} of {pairs} repeat the previous epoch's augmentation"


# ----------------------------------------------------------------------------- the run's wiring


def coded_dataset(n: int) -> LabDataset:
    return LabDataset(coded_images(n), np.arange(n) % 10, [str(c) for c in range(10)], "coded", train_transform())


@pytest.mark.parametrize("device_loader", [False, True], ids=["pil", "device"])
def test_a_run_builds_either_loader_from_the_same_loader_settings(device_loader: bool) -> None:
    # One LoaderConfig for both: batch size, drop_last and the seed of shuffle and augmentation.
    loader = LoaderConfig(batch_size=16, num_workers=0, seed=7, drop_last=True)
    config = RunConfig(seed=1, device_loader=device_loader, loader=loader, eval_batches=0)
    run = LabRun(config, coded_dataset(40))
    got = batches(run.train_loader)
    assert [y.shape[0] for _, y in got] == [16, 16]
    if device_loader:
        expected = batches(DeviceLoader(coded_images(40), np.arange(40) % 10, 16, seed=7, drop_last=True))
        for (x, y), (x_ref, y_ref) in zip(got, expected, strict=True):
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    else:
        # The order follows the loader's generator (seed 7); in the main process (0 workers) the crops and
        # flips draw from torch's global generator, which the run seeds (RunConfig.seed) before building the model.
        expected = batches(make_train_loader(coded_dataset(40), loader))
        assert [y.tolist() for _, y in got] == [y.tolist() for _, y in expected]
