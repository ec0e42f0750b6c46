"""Data layer: real on-disk formats written to tmp_path, augmentation, device batches."""

from __future__ import annotations

import gzip
import io
import pickle
import shutil
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from scnet.data import (
    CIFAR10DataModule,
    DeviceBatches,
    DigitsDataModule,
    MNISTDataModule,
    Split,
    SyntheticDataModule,
    cifar10,
    get_datamodule,
)
from scnet.data import base as data_base
from scnet.data.augment import make_augment, normalize, random_crop, random_hflip
from scnet.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- writers


def write_cifar(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """Write the six CIFAR-10 batch files like the official release; return all data."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    out: dict[str, np.ndarray] = {}
    for name in names:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        out[name + "_x"], out[name + "_y"] = data, np.array(labels)
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize a uint8 array in the IDX format (magic 0x08 type, big-endian dims)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 12, n_test: int = 6, gz: bool = False) -> dict:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        payload = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)
    return arrays


# ------------------------------------------------------------------------------ CIFAR-10


def test_cifar_loads_official_format(tmp_path: Path) -> None:
    ref = write_cifar(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=8)
    dm.setup("fit")
    s = dm.splits
    assert s.train.x.shape == (20, 3, 32, 32) and s.train.x.dtype == torch.uint8
    assert s.test.x.shape == (4, 3, 32, 32) and s.train.y.dtype == torch.int64
    # Rows are R, G, B planes: pixel (c, i, j) is element c*1024 + i*32 + j.
    assert s.train.x[0, 1, 2, 3].item() == ref["data_batch_1_x"][0, 1024 + 2 * 32 + 3]
    expected_y = np.concatenate([ref[f"data_batch_{i}_y"] for i in range(1, 6)])
    assert s.train.y.tolist() == expected_y.tolist()
    assert s.test.y.tolist() == ref["test_batch_y"].tolist()
    assert s.val is s.test  # val_size=0 -> validate on the test set
    assert dm.augment and dm.input_shape == (3, 32, 32) and dm.num_classes == 10

    x, y = next(iter(dm.test_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32) and y.shape == (4,)
    raw = s.test.x.float() / 255
    mean, std = torch.tensor(dm.mean).view(1, 3, 1, 1), torch.tensor(dm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw - mean) / std)


def test_cifar_val_split(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    a = CIFAR10DataModule(root=str(tmp_path), val_size=5, seed=1)
    b = CIFAR10DataModule(root=str(tmp_path), val_size=5, seed=2)
    a.setup()
    b.setup()
    assert a.sizes == {"train": 15, "val": 5, "test": 4}
    # Deterministic and independent of the run seed.
    assert torch.equal(a.splits.val.x, b.splits.val.x)
    # Disjoint and together the whole training set.
    full = torch.cat([a.splits.train.x, a.splits.val.x]).flatten(1)
    assert len(torch.unique(full, dim=0)) == 20
    with pytest.raises(ConfigError, match="val_size"):
        CIFAR10DataModule(root=str(tmp_path), val_size=20).setup()


def test_cifar_missing_is_data_error(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as err:
        dm.setup()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "data.download=true" in msg and "\n" not in msg


def test_cifar_corrupt_pickle_names_file(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match="data_batch_3"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def test_cifar_rejects_unexpected_pickle_objects(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    evil = tmp_path / "cifar-10-batches-py" / "test_batch"
    evil.write_bytes(pickle.dumps({b"data": Path("x")}, protocol=2))
    with pytest.raises(DataError, match="test_batch"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def test_cifar_download_offline_is_data_error(tmp_path: Path, monkeypatch) -> None:
    def no_network(url: str, dest: Path, timeout: float = 60.0) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(data_base, "_fetch", no_network)
    dm = CIFAR10DataModule(root=str(tmp_path), download=True)
    with pytest.raises(DataError, match="could not download CIFAR-10.*no network"):
        dm.prepare_data()
    assert not list(tmp_path.glob("*.part"))


def test_cifar_download_verifies_and_extracts_safely(tmp_path: Path, monkeypatch) -> None:
    write_cifar(tmp_path / "src")
    archive = tmp_path / "release.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        evil = tarfile.TarInfo("../evil.txt")  # path traversal must be skipped
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))

    def fake(url: str, dest: Path, timeout: float = 60.0) -> None:
        assert url == cifar10.URL
        shutil.copyfile(archive, dest)

    monkeypatch.setattr(data_base, "_fetch", fake)
    monkeypatch.setattr(cifar10, "MD5", data_base.file_md5(archive))
    dm = CIFAR10DataModule(root=str(tmp_path / "dl"), download=True)
    dm.prepare_data()
    dm.setup()
    assert dm.sizes["train"] == 20 and not (tmp_path / "evil.txt").exists()


def test_download_rejects_wrong_md5(tmp_path: Path, monkeypatch) -> None:
    def fake(url: str, dest: Path, timeout: float = 60.0) -> None:
        dest.write_bytes(b"not the real file")

    monkeypatch.setattr(data_base, "_fetch", fake)
    dest = tmp_path / "f.gz"
    with pytest.raises(DataError, match="md5"):
        data_base.download(["http://a/f.gz", "http://b/f.gz"], dest, "0" * 32, "test file")
    assert not dest.exists() and not (tmp_path / "f.gz.part").exists()
    kept = tmp_path / "g"
    kept.write_bytes(b"abc")
    with pytest.raises(DataError, match="checksum mismatch"):
        data_base.check_md5(kept, "0" * 32)
    # A file already there with the right checksum is kept, not fetched again.
    data_base.download(["http://a/g"], kept, data_base.file_md5(kept), "g")
    assert kept.read_bytes() == b"abc"


# --------------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_idx(tmp_path: Path, gz: bool) -> None:
    ref = write_mnist(tmp_path, gz=gz)
    dm = MNISTDataModule(root=str(tmp_path), val_size=2)
    dm.setup()
    s = dm.splits
    assert s.train.x.shape == (10, 1, 28, 28) and s.train.x.dtype == torch.uint8
    assert len(s.val) == 2 and s.test.x.shape == (6, 1, 28, 28)
    assert np.array_equal(s.test.x[:, 0].numpy(), ref["t10k-images-idx3-ubyte"])
    assert s.test.y.tolist() == ref["t10k-labels-idx1-ubyte"].tolist()
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and y.dtype == torch.int64


def test_mnist_truncated_idx_names_file(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    bad = tmp_path / "mnist" / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_mnist_truncated_gz_and_bad_magic(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=True)
    bad = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        MNISTDataModule(root=str(tmp_path)).setup()
    bad.write_bytes(gzip.compress(idx_bytes(np.zeros((6, 28, 28), np.uint8))))
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_mnist_missing_and_offline_download(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(DataError) as err:
        MNISTDataModule(root=str(tmp_path)).setup()
    assert str(tmp_path / "mnist") in str(err.value)

    urls: list[str] = []

    def no_network(url: str, dest: Path, timeout: float = 60.0) -> None:
        urls.append(url)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(data_base, "_fetch", no_network)
    with pytest.raises(DataError, match="could not download MNIST"):
        MNISTDataModule(root=str(tmp_path), download=True).setup()
    assert urls[0].startswith("https://ossci-datasets") and "yann.lecun.com" in urls[1]


# -------------------------------------------------------------------------- augmentation


def test_random_crop_shape_identity_and_determinism() -> None:
    x = torch.arange(6 * 3 * 8 * 8, dtype=torch.float32).view(6, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_crop(x, 0, g), x)
    a = random_crop(x, 2, torch.Generator().manual_seed(3))
    b = random_crop(x, 2, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    with pytest.raises(ConfigError):
        random_crop(x, -1, g)


def test_random_crop_is_a_shifted_window() -> None:
    n, p = 64, 2
    x = torch.randint(1, 256, (n, 1, 6, 6), dtype=torch.uint8)  # no zeros: padding is visible
    out = random_crop(x, p, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    offsets = set()
    for i in range(n):
        match = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert match, f"sample {i} is not a window of its padded image"
        offsets.add(match[0])
    assert len(offsets) > 5  # offsets differ per sample


def test_random_hflip_exact_mirrors() -> None:
    x = torch.randn(32, 3, 4, 5)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(32)]
    kept = [torch.equal(out[i], x[i]) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < 32
    again = random_hflip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_normalize_and_make_augment() -> None:
    x = torch.ones(2, 3, 2, 2)
    out = normalize(x, (0.5, 1.0, 0.0), (0.5, 1.0, 2.0))
    assert out[:, 0].eq(1).all() and out[:, 1].eq(0).all() and out[:, 2].eq(0.5).all()
    assert make_augment(0, False) is None
    aug = make_augment(1, True)
    assert aug is not None and aug(x, torch.Generator()).shape == x.shape


# ------------------------------------------------------------------------- DeviceBatches


def _ids(loader: DeviceBatches) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_device_batches_cover_each_sample_once() -> None:
    split = Split(torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1), torch.arange(10))
    loader = DeviceBatches(split, 3, shuffle=True, seed=5)
    assert len(loader) == 4
    e0, e1 = _ids(loader), _ids(loader)
    assert sorted(e0) == sorted(e1) == list(range(10))
    assert e0 != e1  # reshuffled per epoch
    same = DeviceBatches(split, 3, shuffle=True, seed=5)
    assert _ids(same) == e0 and _ids(same) == e1  # same seed, same sequence
    resumed = DeviceBatches(split, 3, shuffle=True, seed=5, epoch=1)
    assert _ids(resumed) == e1
    # Inputs travel with their labels.
    for x, y in DeviceBatches(split, 4, shuffle=True):
        assert torch.equal(x.view(-1), y.float())


def test_device_batches_drop_last_and_order() -> None:
    split = Split(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10))
    loader = DeviceBatches(split, 3, drop_last=True)
    assert len(loader) == 3 and [len(y) for _, y in loader] == [3, 3, 3]
    assert _ids(DeviceBatches(split, 4)) == list(range(10))
    with pytest.raises(ConfigError, match="batch_size"):
        DeviceBatches(split, 0)


def test_train_loader_follows_trainer_epoch() -> None:
    dm = SyntheticDataModule(task="classification", n_train=20, n_test=4, batch_size=4)
    dm.setup()
    loader = dm.train_dataloader()
    first, second = _ids(loader), _ids(loader)  # no trainer: counts iter() calls
    assert first != second

    class FakeTrainer:  # what a resumed trainer at epoch 1 looks like to the data module
        current_epoch = 1

    dm.trainer = FakeTrainer()  # type: ignore[assignment]
    assert _ids(loader) == _ids(loader) == second


def test_lightning_accepts_device_batches() -> None:
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 4)
            self.seen: list[list[float]] = []  # per epoch, the targets' first column

        def training_step(self, batch, i):
            x, y = batch
            if i == 0:
                self.seen.append([])
            self.seen[-1].extend(y[:, 0].tolist())
            return torch.nn.functional.mse_loss(self.net(x.flatten(1)), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val", torch.nn.functional.mse_loss(self.net(x.flatten(1)), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = SyntheticDataModule(n_train=32, n_test=8, dim=4, batch_size=8)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Tiny()
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 8 and len(model.seen) == 2
    # Lightning's extra iter() (its iterability check) must not shift the epochs: epoch e
    # uses seed + e, exactly as a bare loader's e-th pass does.
    dm.trainer = None
    bare = dm.train_dataloader()
    assert [torch.cat([y for _, y in bare])[:, 0].tolist() for _ in range(2)] == model.seen


# ------------------------------------------------------------------- digits / synthetic


def test_digits_split_is_fixed_and_stratified() -> None:
    a = DigitsDataModule(seed=1, val_size=100)
    b = DigitsDataModule(seed=2, val_size=100)
    a.setup()
    b.setup()
    assert sum(a.sizes.values()) == 1797 and a.sizes["val"] == 100
    assert torch.equal(a.splits.test.x, b.splits.test.x)
    assert torch.equal(a.splits.val.y, b.splits.val.y)
    x = a.splits.train.x
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    counts = torch.bincount(a.splits.test.y, minlength=10)
    assert counts.min() >= 30  # stratified: every class well represented
    assert not a.augment and a.num_classes == 10


def test_synthetic_regression_and_classification() -> None:
    reg = SyntheticDataModule()
    reg.setup()
    assert reg.task == "regression" and reg.num_classes == 20 and reg.input_shape == (1, 1, 20)
    assert reg.splits.train.x.shape == (1000, 1, 1, 20) and reg.splits.test.y.shape == (200, 20)
    again = SyntheticDataModule(seed=7)
    again.setup()
    assert torch.equal(reg.splits.train.y, again.splits.train.y)  # data_seed, not seed
    x, y = next(iter(reg.train_dataloader()))
    assert x.shape == (128, 1, 1, 20) and y.dtype == torch.float32
    cls = SyntheticDataModule(task="classification", num_classes=3)
    cls.setup()
    assert cls.task == "classification" and set(cls.splits.train.y.tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"eval_batch_size": -1}, {"val_size": -3}, {"task": "ranking"}],
)
def test_bad_options_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SyntheticDataModule(**kwargs)


def test_get_datamodule() -> None:
    assert isinstance(get_datamodule("digits", batch_size=4), DigitsDataModule)
    with pytest.raises(ConfigError, match="unknown dataset"):
        get_datamodule("imagenet")


def test_val_size_fraction_scales_with_the_dataset():
    """One recipe (He et al.'s 5k of 50k = 0.1) must fit small datasets too (issue 3's quick look)."""
    from scnet.data.digits import DigitsDataModule

    dm = DigitsDataModule(val_size=0.1)
    dm.setup("fit")
    assert dm.sizes["val"] == round(0.1 * 1437) and dm.sizes["train"] == 1437 - dm.sizes["val"]
    for bad in (1.0, -0.5, 1.5, "x", True):
        with pytest.raises(ConfigError, match="data.val_size"):
            DigitsDataModule(val_size=bad).setup("fit")
