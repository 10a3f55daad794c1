"""Tests of lltax.data.cells: dataset loading (real parsers on tiny files), subsets, label noise, batch transforms."""

from __future__ import annotations

import logging
import os
import pickle
import random
import struct

import numpy as np
import pytest
import torch

from lltax.data import loaders
from lltax.data import mnist1d as mnist1d_cache
from lltax.data.augment import augment_batch
from lltax.data.cells import corrupt_labels, load_dataset, redraw_labels, rounded_count, subset_indices
from lltax.data.loaders import DATASETS, NORMALIZATION
from lltax.data.mnist1d import mnist1d_cache_path
from lltax.metrics.mixup import mixup_batches

# ---------------------------------------------------------------------------------------------
# MNIST-1D (generated once per test session, ~3-9 s on a 2-core VM)


@pytest.fixture(scope="session")
def mnist1d_root(tmp_path_factory):
    """A data folder with MNIST-1D generated into it; records whether the global RNGs survived."""
    root = tmp_path_factory.mktemp("data")
    np.random.seed(123)
    random.seed(123)
    load_dataset("mnist1d", root)
    # The generator seeds NumPy's and Python's global RNGs; lltax must restore them.
    root_rng_restored = np.random.random() == np.random.RandomState(123).random_sample() and random.random() == random.Random(123).random()
    return root, root_rng_restored


def test_mnist1d_is_generated_with_the_package_defaults(mnist1d_root):
    root, _ = mnist1d_root
    dataset = load_dataset("mnist1d", root)
    assert dataset.name == "mnist1d"
    assert dataset.x_train.shape == (4000, 1, 40) and dataset.x_test.shape == (1000, 1, 40)
    assert dataset.x_train.dtype == torch.float32 and dataset.y_train.dtype == torch.int64
    assert dataset.input_shape == (1, 40) and dataset.num_classes == 10
    assert set(dataset.y_train.tolist()) == set(range(10)) and set(dataset.y_test.tolist()) == set(range(10))
    # The generator standardizes train + test together to mean 0, std 1.
    everything = torch.cat([dataset.x_train, dataset.x_test]).double()
    assert abs(everything.mean().item()) < 1e-6
    assert everything.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(dataset.y_train, dataset.y_train_clean)


def test_mnist1d_generation_restores_global_rngs(mnist1d_root):
    _, restored = mnist1d_root
    assert restored


def test_mnist1d_second_load_reads_the_cache(mnist1d_root, monkeypatch):
    root, _ = mnist1d_root
    assert mnist1d_cache_path(root).is_file()
    assert mnist1d_cache_path(root).parent == root / "mnist1d"
    first = load_dataset("mnist1d", root)

    def must_not_run(*args, **kwargs):
        raise AssertionError("MNIST-1D was generated again although it is cached")

    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "make_dataset", must_not_run)
    second = load_dataset("mnist1d", root, download=True)  # download is ignored for mnist1d
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


def test_mnist1d_is_generated_when_the_cache_is_missing(tmp_path, monkeypatch, caplog):
    # A stand-in generator keeps this fast; the real one runs in the session fixture.
    import mnist1d.data

    calls = []

    def fake_make_dataset(args):
        calls.append(args.seed)
        rng = np.random.default_rng(0)
        return {"x": rng.normal(size=(20, 40)), "y": np.arange(20) % 10, "x_test": rng.normal(size=(5, 40)), "y_test": np.arange(5)}

    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_make_dataset)
    dataset = load_dataset("mnist1d", tmp_path)
    assert calls == [42]  # the package's default seed
    assert dataset.x_train.shape == (20, 1, 40)
    assert [p.name for p in (tmp_path / "mnist1d").iterdir()] == [mnist1d_cache_path(tmp_path).name]  # no temp file left
    load_dataset("mnist1d", tmp_path)
    assert calls == [42]
    # A cache that no longer matches its checksum is not trusted: generated again, with a log line.
    path = mnist1d_cache_path(tmp_path)
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["y"] = (arrays["y"] + 1) % 10
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with caplog.at_level(logging.WARNING, logger="lltax.data.mnist1d"):
        again = load_dataset("mnist1d", tmp_path)
    assert calls == [42, 42] and "does not match its checksum" in caplog.text
    assert torch.equal(again.y_train, dataset.y_train)


def test_unknown_dataset_lists_the_registry(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'") as error:
        load_dataset("imagenet", tmp_path)
    for name in DATASETS:
        assert name in str(error.value)


# ---------------------------------------------------------------------------------------------
# Subsets and label noise


def test_rounded_count_rounds_halves_up():
    assert rounded_count(0.5, 5) == 3 and rounded_count(0.5, 7) == 4
    assert rounded_count(0.1, 4000) == 400 and rounded_count(0.3, 10) == 3
    assert rounded_count(1.0, 4000) == 4000 and rounded_count(0.0, 4000) == 0


def test_subsets_are_fixed_nested_and_sorted():
    torch.manual_seed(1)
    np.random.seed(1)
    quarter, half, full = (subset_indices(1000, f) for f in (0.25, 0.5, 1.0))
    torch.manual_seed(2)
    np.random.seed(2)
    assert torch.equal(subset_indices(1000, 0.25), quarter)  # independent of the global RNGs
    assert (len(quarter), len(half)) == (250, 500)
    assert torch.equal(full, torch.arange(1000))
    assert set(quarter.tolist()) <= set(half.tolist())
    assert torch.equal(half, half.sort().values) and len(set(half.tolist())) == 500
    # A random subset, not a prefix of the file order.
    assert quarter.max() > 900 and quarter.min() < 100


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_subset_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="train_fraction"):
        subset_indices(100, fraction)


def test_subset_too_small_says_so():
    with pytest.raises(ValueError, match="leaves none"):
        subset_indices(100, 0.001)


def test_load_dataset_subset_matches_the_full_training_set(mnist1d_root):
    root, _ = mnist1d_root
    full = load_dataset("mnist1d", root)
    part = load_dataset("mnist1d", root, train_fraction=0.3)
    indices = subset_indices(4000, 0.3)
    assert len(part.x_train) == 1200
    assert torch.equal(part.x_train, full.x_train[indices])
    assert torch.equal(part.y_train_clean, full.y_train[indices])
    assert torch.equal(part.y_train, part.y_train_clean)
    assert torch.equal(part.x_test, full.x_test) and torch.equal(part.y_test, full.y_test)


def test_label_noise_is_exact_fixed_nested_and_leaves_the_test_set_clean(mnist1d_root):
    root, _ = mnist1d_root
    clean = load_dataset("mnist1d", root, train_fraction=0.5)
    torch.manual_seed(0)
    low = load_dataset("mnist1d", root, label_noise=0.1, train_fraction=0.5)
    torch.manual_seed(1)
    np.random.seed(1)
    low_again = load_dataset("mnist1d", root, label_noise=0.1, train_fraction=0.5)
    high = load_dataset("mnist1d", root, label_noise=0.35, train_fraction=0.5)

    assert torch.equal(low.y_train, low_again.y_train)  # same noisy labels for every seed
    for noisy, level in ((low, 0.1), (high, 0.35)):
        assert torch.equal(noisy.y_train_clean, clean.y_train)
        assert torch.equal(noisy.x_train, clean.x_train)
        assert torch.equal(noisy.y_test, clean.y_test) and torch.equal(noisy.x_test, clean.x_test)
        changed = noisy.y_train != noisy.y_train_clean
        assert changed.sum().item() == round(level * 2000)  # exactly; every corrupted label differs
        assert noisy.y_train.min() >= 0 and noisy.y_train.max() < 10
    low_changed, high_changed = low.y_train != clean.y_train, high.y_train != clean.y_train
    assert torch.all(high_changed[low_changed])  # nested across noise levels ...
    assert torch.equal(high.y_train[low_changed], low.y_train[low_changed])  # ... with the same wrong labels


def test_a_sample_gets_the_same_wrong_label_in_every_cell(mnist1d_root):
    root, _ = mnist1d_root
    whole = load_dataset("mnist1d", root, label_noise=0.2)
    part = load_dataset("mnist1d", root, label_noise=0.2, train_fraction=0.5)
    indices = subset_indices(4000, 0.5)
    in_both = (part.y_train != part.y_train_clean) & (whole.y_train[indices] != whole.y_train_clean[indices])
    assert in_both.sum() > 50  # about 0.2 * 0.2 * 2000 = 80 such samples
    assert torch.equal(part.y_train[in_both], whole.y_train[indices][in_both])


def test_corrupt_labels_draws_every_other_class_uniformly():
    num_classes, total = 4, 30000
    labels = torch.arange(total) % num_classes
    noisy = corrupt_labels(labels, 0.5, num_classes)
    changed = noisy != labels
    assert changed.sum().item() == total // 2
    offsets = (noisy[changed] - labels[changed]) % num_classes
    counts = torch.bincount(offsets, minlength=num_classes).tolist()
    assert counts[0] == 0
    # Each of the 3 other classes: Binomial(15000, 1/3); allow 5 standard deviations.
    expected, sd = 15000 / 3, (15000 * (1 / 3) * (2 / 3)) ** 0.5
    assert all(abs(count - expected) < 5 * sd for count in counts[1:])


def test_corrupt_labels_with_two_classes_flips():
    labels = torch.tensor([0, 1] * 50)
    noisy = corrupt_labels(labels, 0.3, 2)
    changed = noisy != labels
    assert changed.sum() == 30 and torch.equal(noisy[changed], 1 - labels[changed])


def test_corrupt_labels_of_a_subset_selects_within_it():
    labels = torch.arange(100) % 10
    indices = torch.tensor([3, 10, 20, 55, 70, 99])
    noisy = corrupt_labels(labels, 0.5, 10, indices)
    assert noisy.shape == (6,) and (noisy != labels[indices]).sum() == 3
    assert torch.equal(corrupt_labels(labels, 0.0, 10, indices), labels[indices])


@pytest.mark.parametrize("noise", [-0.1, 1.0])
def test_corrupt_labels_rejects_bad_noise(noise):
    with pytest.raises(ValueError, match="label_noise"):
        corrupt_labels(torch.zeros(10, dtype=torch.int64), noise, 10)


# ---------------------------------------------------------------------------------------------
# torchvision loaders on tiny files written in the real on-disk formats


def write_cifar(root, cls, images_per_file, label_key, meta_key, num_classes, rng):
    """Tiny CIFAR files as torchvision expects them; returns (train uint8 NCHW, train labels, test ..)."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    arrays = {}
    for split, files in (("train", cls.train_list), ("test", cls.test_list)):
        images, labels = [], []
        for file_name, _ in files:
            batch = rng.integers(0, 256, size=(images_per_file, 3 * 32 * 32), dtype=np.uint8)
            batch_labels = rng.integers(0, num_classes, size=images_per_file).tolist()
            with open(folder / file_name, "wb") as handle:
                pickle.dump({"data": batch, label_key: batch_labels}, handle)
            images.append(batch)
            labels += batch_labels
        arrays[split] = (np.concatenate(images).reshape(-1, 3, 32, 32), np.array(labels))
    with open(folder / cls.meta["filename"], "wb") as handle:
        pickle.dump({meta_key: [f"class{c}" for c in range(num_classes)]}, handle)
    return arrays


def skip_checksums(monkeypatch, module):
    # torchvision compares the md5 sums of CIFAR's / SVHN's files with those of the real
    # downloads, which tiny stand-in files cannot match. Only that comparison is replaced (by
    # "the file exists"); torchvision's parsing of the files runs for real.
    monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def expected_images(raw_uint8_nchw, name):
    mean, std = (np.array(v).reshape(1, -1, 1, 1) for v in NORMALIZATION[name])
    return torch.from_numpy((raw_uint8_nchw / 255.0 - mean) / std)


@pytest.mark.parametrize(
    "name, class_name, label_key, meta_key, num_classes",
    [("cifar10", "CIFAR10", "labels", "label_names", 10), ("cifar100", "CIFAR100", "fine_labels", "fine_label_names", 100)],
)
def test_cifar_loaders_parse_the_real_format(tmp_path, monkeypatch, name, class_name, label_key, meta_key, num_classes):
    import torchvision.datasets
    import torchvision.datasets.cifar

    cls = getattr(torchvision.datasets, class_name)
    skip_checksums(monkeypatch, torchvision.datasets.cifar)
    images_per_file = 12 if name == "cifar10" else 60
    arrays = write_cifar(tmp_path, cls, images_per_file, label_key, meta_key, num_classes, np.random.default_rng(0))

    dataset = load_dataset(name, tmp_path)
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test"]
    assert dataset.num_classes == num_classes and dataset.input_shape == (3, 32, 32)
    assert len(dataset.x_train) == 60 and len(dataset.x_test) == images_per_file
    assert dataset.x_train.dtype == torch.float32
    torch.testing.assert_close(dataset.x_train.double(), expected_images(train_images, name), rtol=0, atol=1e-5)
    torch.testing.assert_close(dataset.x_test.double(), expected_images(test_images, name), rtol=0, atol=1e-5)
    assert dataset.y_train.tolist() == train_labels.tolist() and dataset.y_test.tolist() == test_labels.tolist()

    noisy = load_dataset(name, tmp_path, label_noise=0.25, train_fraction=0.5)
    assert len(noisy.y_train) == 30 and (noisy.y_train != noisy.y_train_clean).sum() == round(0.25 * 30)
    torch.testing.assert_close(noisy.x_train, dataset.x_train[subset_indices(60, 0.5)], rtol=0, atol=0)


def test_images_normalized_on_the_device_equal_the_normalized_loader_bit_for_bit(tmp_path, monkeypatch):
    """load_dataset keeps the images uint8 until they are on the device and normalizes the
    cell's subset there: the same values and memory layout as normalizing the whole set first
    (what lltax did before), and the files are read once per process."""
    import torchvision.datasets
    import torchvision.datasets.cifar

    skip_checksums(monkeypatch, torchvision.datasets.cifar)
    write_cifar(tmp_path, torchvision.datasets.CIFAR10, 12, "labels", "label_names", 10, np.random.default_rng(1))
    normalized = loaders.load_cifar10(tmp_path)  # the whole set normalized on the CPU, as before
    calls = []
    monkeypatch.setitem(loaders.DATASETS, "cifar10", lambda *a, **k: calls.append(k) or loaders.load_cifar10(*a, **k))
    for fraction in (0.5, 1.0):
        cell = load_dataset("cifar10", tmp_path, train_fraction=fraction)
        before = normalized.x_train[subset_indices(60, fraction)]
        assert torch.equal(cell.x_train, before) and cell.x_train.stride() == before.stride()
        assert torch.equal(cell.x_test, normalized.x_test) and cell.x_test.dtype == torch.float32
        assert cell.normalization is None
    assert calls == [{"download": False, "normalize": False}]  # read once for both cells


def write_idx(path, array):
    """An MNIST idx file: big-endian magic (0, 0, uint8 type 0x08, number of dims), sizes, bytes."""
    path.write_bytes(struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def test_mnist_loader_parses_idx_files_and_pads_to_32(tmp_path):
    # MNIST's idx files are only checked for existence, so nothing needs patching.
    rng = np.random.default_rng(1)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for prefix, count in (("train", 30), ("t10k", 7)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = (images, labels)

    dataset = load_dataset("mnist", tmp_path)
    assert dataset.input_shape == (1, 32, 32) and dataset.num_classes == 10
    assert dataset.x_train.shape == (30, 1, 32, 32) and dataset.x_test.shape == (7, 1, 32, 32)
    for x, (images, labels), y in ((dataset.x_train, arrays["train"], dataset.y_train), (dataset.x_test, arrays["t10k"], dataset.y_test)):
        padded = np.zeros((len(images), 1, 32, 32))
        padded[:, 0, 2:30, 2:30] = images
        torch.testing.assert_close(x.double(), expected_images(padded, "mnist"), rtol=0, atol=1e-5)
        assert y.tolist() == labels.tolist()
    # The 2-pixel border is background: raw 0, i.e. -mean/std after normalization.
    assert torch.allclose(dataset.x_train[:, :, :2, :], torch.tensor(-0.1307 / 0.3081))


def test_svhn_loader_parses_mat_files_and_maps_label_10_to_0(tmp_path, monkeypatch):
    scipy_io = pytest.importorskip("scipy.io")
    import torchvision.datasets.svhn

    skip_checksums(monkeypatch, torchvision.datasets.svhn)
    rng = np.random.default_rng(2)
    arrays = {}
    for split, count in (("train", 11), ("test", 4)):
        images = rng.integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)
        digits = np.arange(count) % 10
        # SVHN's .mat layout: X is (H, W, C, N); y is (N, 1) with digit 0 stored as 10.
        scipy_io.savemat(
            tmp_path / f"{split}_32x32.mat",
            {"X": images.transpose(2, 3, 1, 0), "y": np.where(digits == 0, 10, digits)[:, None].astype(np.uint8)},
        )
        arrays[split] = (images, digits)

    dataset = load_dataset("svhn", tmp_path)
    assert dataset.input_shape == (3, 32, 32)
    torch.testing.assert_close(dataset.x_train.double(), expected_images(arrays["train"][0], "svhn"), rtol=0, atol=1e-5)
    torch.testing.assert_close(dataset.x_test.double(), expected_images(arrays["test"][0], "svhn"), rtol=0, atol=1e-5)
    assert dataset.y_train.tolist() == arrays["train"][1].tolist() and dataset.y_test.tolist() == arrays["test"][1].tolist()


@pytest.mark.parametrize(
    "name, folder",
    [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"), ("mnist", "MNIST/raw"), ("svhn", ".")],
)
def test_missing_dataset_names_the_folder_and_how_to_get_it(tmp_path, name, folder):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(name, tmp_path)  # download=False: no network is touched
    message = str(error.value)
    assert str(tmp_path / folder) in message
    assert "dataset.download: true" in message and "place the files" in message


# ---------------------------------------------------------------------------------------------
# augment_batch


def crops_and_flips(x, padding=4):
    """Every (shift_y, shift_x, flip) variant of all samples, by plain slicing: 162 tensors like x."""
    height, width = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, :, dy : dy + height, dx : dx + width]
            yield crop
            yield crop.flip(-1)


def test_augment_batch_is_a_crop_and_flip_of_each_sample_and_covers_them_all():
    count = 4000  # about 25 draws of each of the 162 variants
    x = torch.randn(count, 1, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = augment_batch(x, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    matches = torch.stack([(variant == out).flatten(1).all(dim=1) for variant in crops_and_flips(x)])  # (162, N)
    assert torch.all(matches.sum(dim=0) == 1)  # each sample is exactly one variant of itself
    chosen = matches.int().argmax(dim=0)
    assert set(chosen.tolist()) == set(range(162))  # every shift and flip occurs
    flipped = (chosen % 2 == 1).sum().item()
    assert abs(flipped - count / 2) < 5 * (count * 0.25) ** 0.5


def augment_one_by_one(x, generator, padding=4):
    """Plain per-sample reference of augment_batch, drawing the same numbers in the same order."""
    count, _, height, width = x.shape
    shifts = torch.randint(0, 2 * padding + 1, (2, count), generator=generator)
    flips = torch.randint(0, 2, (count,), generator=generator)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    out = torch.empty_like(x)
    for i in range(count):
        crop = padded[i, :, shifts[0, i] : shifts[0, i] + height, shifts[1, i] : shifts[1, i] + width]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def test_augment_batch_equals_a_per_sample_loop():
    x = torch.randn(40, 3, 12, 10, dtype=torch.float64)
    expected = augment_one_by_one(x, torch.Generator().manual_seed(11))
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(11)), expected)


def test_augment_batch_is_deterministic_given_the_generator():
    x = torch.randn(64, 3, 8, 8)
    first = augment_batch(x, torch.Generator().manual_seed(3))
    torch.manual_seed(99)
    assert torch.equal(first, augment_batch(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment_batch(x, torch.Generator().manual_seed(4)))


def test_augment_batch_leaves_1d_data_alone():
    x = torch.randn(10, 1, 40)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert augment_batch(x, generator) is x
    assert torch.equal(generator.get_state(), state)


def test_augment_batch_rejects_other_shapes():
    with pytest.raises(ValueError, match="got shape"):
        augment_batch(torch.randn(10, 40), torch.Generator())


# ---------------------------------------------------------------------------------------------
# mixup_batches


def one_hot_inputs(count):
    """Sample i is e_i, so a mixed sample shows which two inputs were mixed, and with which weights."""
    return torch.eye(count, dtype=torch.float64).reshape(count, 1, count)


def test_mixup_batches_are_fixed_by_the_seed_alone():
    x = torch.randn(300, 1, 40)
    first = mixup_batches(x, 200, 32, 16.0, seed=5)
    torch.manual_seed(1)
    np.random.seed(1)
    assert torch.equal(first, mixup_batches(x, 200, 32, 16.0, seed=5))
    assert not torch.equal(first, mixup_batches(x, 200, 32, 16.0, seed=6))
    assert first.shape == (200, 1, 40) and first.dtype == x.dtype


def test_mixup_batches_are_convex_combinations_within_a_batch():
    count, num_samples, batch_size = 400, 390, 8  # the last batch is partial (6 samples)
    mixed = mixup_batches(one_hot_inputs(count), num_samples, batch_size, 16.0, seed=0).reshape(num_samples, count)
    assert mixed.shape == (num_samples, count)
    assert torch.all(mixed >= 0) and torch.all(mixed <= 1)
    torch.testing.assert_close(mixed.sum(dim=1), torch.ones(num_samples, dtype=torch.float64))
    assert torch.all((mixed > 0).sum(dim=1) <= 2)

    sources, lams = set(), []
    for start in range(0, num_samples, batch_size):
        batch = mixed[start : start + batch_size]
        members = set(batch.nonzero()[:, 1].tolist())
        assert len(members) == len(batch)  # a permutation within the batch: exactly its own inputs
        sources |= members
        weights = batch[batch > 0]
        # A sample the permutation maps to itself has weight lam + (1 - lam) = 1 (up to rounding).
        mixed_weights = weights[(weights - 1).abs() > 1e-9]
        if len(mixed_weights) == 0:
            continue
        lam = mixed_weights.max().item()
        # One lam per batch: every other weight is lam or 1 - lam.
        assert all(min(abs(w - lam), abs(w - (1 - lam))) < 1e-12 for w in mixed_weights.tolist())
        lams.append(lam)
    assert len(sources) == num_samples  # distinct inputs
    # lam and 1 - lam are both Beta(16, 16); the larger of the two has mean 0.5 + E|lam - 0.5|.
    # Check the spread instead: Var(lam) = 1 / (4 (2 alpha + 1)) = 1/132.
    deviations = torch.tensor(lams) - 0.5
    assert len(lams) >= 45
    variance = (deviations**2).mean().item()
    # Standard error of a variance estimate of a near-Gaussian: sqrt(2/n) * variance.
    assert abs(variance - 1 / 132) < 4 * (2 / len(lams)) ** 0.5 / 132


def test_mixup_batches_use_all_inputs_when_asked_for_more(caplog):
    x = one_hot_inputs(50)
    with caplog.at_level(logging.WARNING, logger="lltax.metrics.mixup"):
        mixed = mixup_batches(x, 768, 128, 16.0, seed=0)
    assert mixed.shape == (50, 1, 50)
    assert "only 50 training inputs" in caplog.text
    assert torch.all(mixed.reshape(50, 50).sum(dim=0) > 0)  # every input is used


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"batch_size": 0}, {"num_samples": 0}])
def test_mixup_batches_reject_bad_settings(kwargs):
    settings = {"num_samples": 10, "batch_size": 4, "alpha": 16.0, "seed": 0} | kwargs
    with pytest.raises(ValueError):
        mixup_batches(torch.randn(20, 1, 40), **settings)


def test_registry_loaders_accept_root_and_download():
    import inspect

    for name, loader in DATASETS.items():
        parameters = list(inspect.signature(loader).parameters)
        assert parameters[:2] == ["root", "download"], name
    assert loaders.DATASETS["mnist1d"] is loaders.load_mnist1d


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_match_the_cpu_ones(mnist1d_root):
    root, _ = mnist1d_root
    on_gpu = load_dataset("mnist1d", root, label_noise=0.1, train_fraction=0.5, device="cuda")
    on_cpu = load_dataset("mnist1d", root, label_noise=0.1, train_fraction=0.5)
    assert on_gpu.x_train.is_cuda and on_gpu.y_train.is_cuda and on_gpu.x_test.is_cuda
    assert torch.equal(on_gpu.y_train.cpu(), on_cpu.y_train)
    images = torch.randn(64, 3, 8, 8)
    # The training loop draws from a CPU generator while the batch lives on the GPU.
    augmented = augment_batch(images.cuda(), torch.Generator().manual_seed(0))
    assert augmented.is_cuda and torch.equal(augmented.cpu(), augment_batch(images, torch.Generator().manual_seed(0)))
    mixed = mixup_batches(on_gpu.x_train, 100, 32, 16.0, seed=0)
    assert mixed.is_cuda
    torch.testing.assert_close(mixed.cpu(), mixup_batches(on_cpu.x_train, 100, 32, 16.0, seed=0))


def test_paper_label_noise_redraws_over_all_classes_with_probability_p():
    num_classes, total = 10, 40000
    labels = torch.arange(total) % num_classes
    noisy = redraw_labels(labels, 0.2, num_classes)
    # A label is redrawn with p = 0.2 and lands on a wrong class 9/10 of the time: 18 % wrong.
    wrong = (noisy != labels).float().mean().item()
    sd = (0.18 * 0.82 / total) ** 0.5
    assert abs(wrong - 0.18) < 5 * sd
    # p = 1: labels independent of the inputs, still 1/C right by chance.
    everything = redraw_labels(labels, 1.0, num_classes)
    assert abs((everything == labels).float().mean().item() - 0.1) < 5 * (0.09 / total) ** 0.5
    # Fixed and nested: whatever is wrong at 0.2 is wrong, with the same label, at 0.5.
    higher = redraw_labels(labels, 0.5, num_classes)
    changed = noisy != labels
    assert torch.equal(higher[changed], noisy[changed])
    assert torch.equal(redraw_labels(labels, 0.2, num_classes), noisy)
    with pytest.raises(ValueError, match="label_noise"):
        redraw_labels(labels, 1.5, num_classes)


def test_dataset_label_noise_mode_paper(mnist1d_root):
    root, _ = mnist1d_root
    paper = load_dataset("mnist1d", root, label_noise=1.0, label_noise_mode="paper")
    wrong = (paper.y_train != paper.y_train_clean).float().mean().item()
    assert 0.85 < wrong < 0.95  # 90 % expected on 4000 samples
    with pytest.raises(ValueError, match="label_noise_mode"):
        load_dataset("mnist1d", root, label_noise=0.1, label_noise_mode="approximate")


# Dataset builders outside lltax, named in a config as "test_data:<function>" (importable under
# that name while pytest runs, as an installed package would be for a job).
def blobs_dataset(root, download=False):
    """Three Gaussian blobs in 8 dimensions: numpy arrays, as a user's own loader might give."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 1, 8)) * 3

    def split(n):
        labels = rng.integers(0, 3, size=n)
        return (centers[labels] + rng.normal(size=(n, 1, 8))).astype(np.float32), labels

    x_train, y_train = split(300)
    x_test, y_test = split(100)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "num_classes": 3}


def blobs_with_a_bad_label(root, download=False):
    return {**blobs_dataset(root), "y_test": np.full(100, 3)}


def blobs_with_nan(root, download=False):
    data = blobs_dataset(root)
    data["x_train"][5, 0, 0] = np.nan
    return data


def blobs_without_test(root, download=False):
    return {key: value for key, value in blobs_dataset(root).items() if key != "x_test"}


def test_own_dataset_by_import_path_gets_the_grids_subset_and_noise(tmp_path):
    full = load_dataset("test_data:blobs_dataset", tmp_path)
    assert full.num_classes == 3 and full.input_shape == (1, 8) and len(full.y_train) == 300
    cell = load_dataset("test_data:blobs_dataset", tmp_path, label_noise=0.2, train_fraction=0.5)
    assert len(cell.y_train) == 150 and len(cell.y_test) == 100
    assert int((cell.y_train != cell.y_train_clean).sum()) == 30  # exact mode: round(0.2 x 150)
    assert torch.equal(cell.x_test, full.x_test) and torch.equal(cell.y_test, full.y_test)
    # the same cell again: the same subset and the same noisy labels
    again = load_dataset("test_data:blobs_dataset", tmp_path, label_noise=0.2, train_fraction=0.5)
    assert torch.equal(again.x_train, cell.x_train) and torch.equal(again.y_train, cell.y_train)


@pytest.mark.parametrize(
    "name,message",
    [
        ("test_data:blobs_with_a_bad_label", r"y_test has labels outside \[0, 3\)"),
        ("test_data:blobs_with_nan", "x_train has NaN"),
        ("test_data:blobs_without_test", "must return a mapping with keys"),
        ("test_data:no_such_builder", "has no callable 'no_such_builder'"),
        ("no_such_package.data:load", "cannot import 'no_such_package.data'"),
        ("my data", "package.module:function"),
    ],
)
def test_own_dataset_errors_name_the_problem(tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(name, tmp_path)


def test_own_dataset_trains_through_the_cli(tmp_path):
    """A job trains on a dataset and a model that lltax has never heard of."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from lltax.config.schema import validate_config

    dataset = {"name": "test_data:blobs_dataset"}
    config = validate_config(
        {
            "experiment": "t",
            "dataset": dataset,
            "model": {"name": "test_models:tiny_relu_net"},
            "seeds": 2,
            "grid": {"width": [4], "batch_size": [32]},
            "train": {"epochs": 2},
        }
    )
    assert config["dataset"]["name"] == "test_data:blobs_dataset"
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{tests}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cell = "width=4/batch_size=32/label_noise=0.0/train_fraction=1.0/learning_rate=0.05/weight_decay=0.0005"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lltax.cli",
            "train",
            "--cell",
            cell,
            "--seeds",
            "0",
            "--dataset-settings",
            json.dumps(dataset),
            "--model",
            "test_models:tiny_relu_net",
            "--settings",
            json.dumps({"epochs": 2}),
            "--data-dir",
            str(tmp_path),
            "--device",
            "cpu",
            "--out-dir",
            str(tmp_path / "run"),
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["final"]["train_acc"] > 50  # three well-separated blobs


def test_pinned_mnist1d_arguments_are_the_packages_defaults():
    """lltax pins MNIST-1D's generator arguments (no mnist1d import to name the cache); they
    are the installed package's defaults, so the data is the package's standard MNIST-1D."""
    from mnist1d.data import get_dataset_args

    defaults = get_dataset_args(as_dict=True)
    defaults.pop("url", None)
    assert mnist1d_cache.mnist1d_generator_args() == defaults
