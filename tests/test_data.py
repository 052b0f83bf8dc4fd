"""grader.data loads the real MNIST files, verifies them and explains every failure."""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from grader import data
from grader.data import MNISTError


def test_train_and_test_splits():
    X, y = data.load_mnist("train")
    assert X.shape == (60000, 784) and X.dtype == torch.float32
    assert y.shape == (60000,) and y.dtype == torch.int64
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert int(y[0]) == 5
    assert y.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    Xt, yt = data.load_mnist("test")
    assert Xt.shape == (10000, 784) and yt.shape == (10000,) and int(yt[0]) == 7


def test_returns_fresh_copies():
    X, _ = data.load_mnist("test")
    X.zero_()
    assert float(data.load_mnist("test")[0].max()) == 1.0


def test_bad_split_and_unknown_file():
    with pytest.raises(ValueError, match="split must be 'train', 'fit', 'val' or 'test'"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="unknown MNIST file"):
        data.file_path("nope")


def _copy(tmp_path):
    for name in data.FILES:
        shutil.copy(data.file_path(name), tmp_path / f"{name}.gz")
    return tmp_path


def test_missing_file_says_which_and_how_to_fix(tmp_path):
    with pytest.raises(MNISTError, match=r"MNIST file missing: expected .*t10k-images-idx3-ubyte.gz.*Copy the four"):
        data.load_mnist("test", folder=tmp_path)


def test_corrupt_files_are_rejected(tmp_path):
    folder = _copy(tmp_path)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(target.read_bytes())
    target.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(MNISTError, match="expected 10,008 bytes once decompressed, got 9,998"):
        data.load_mnist("test", folder=folder)
    target.write_bytes(gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 256])))
    with pytest.raises(MNISTError, match="sha256 of its decompressed bytes"):
        data.load_mnist("test", folder=folder)
    target.write_bytes(b"not gzip at all")
    with pytest.raises(MNISTError, match="cannot be decompressed"):
        data.load_mnist("test", folder=folder)


def test_uncompressed_files_are_accepted(tmp_path):
    folder = _copy(tmp_path)
    for name in data.SPLITS["test"]:
        gz = folder / f"{name}.gz"
        (folder / name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    X, y = data.load_mnist("test", folder=folder)
    assert X.shape == (10000, 784) and int(y[0]) == 7


def test_parse_idx_checks_header_and_size():
    good = bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (300).to_bytes(4, "big") + bytes(range(256)) * 2 + bytes(88)
    t = data.parse_idx(good)
    assert t.shape == (2, 300) and t.dtype == torch.uint8 and int(t[0, 255]) == 255
    with pytest.raises(MNISTError, match="should start with 00 00 08"):
        data.parse_idx(b"\x00\x00\x09\x01" + good[4:])
    with pytest.raises(MNISTError, match="truncated or padded"):
        data.parse_idx(good[:-1])
    with pytest.raises(MNISTError, match="got nothing"):
        data.parse_idx(b"")


def test_data_dir_can_be_moved(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path


def test_fit_and_validation_split_the_training_images():
    load_mnist = data.load_mnist
    X, y = load_mnist("train")
    X_fit, y_fit = load_mnist("fit")
    X_val, y_val = load_mnist("val")
    assert X_fit.shape == (50_000, 784) and X_val.shape == (10_000, 784)
    fit, val = data.validation_indices()
    assert len(set(fit.tolist()) | set(val.tolist())) == 60_000        # disjoint, every image once
    assert torch.equal(X_val, X[val]) and torch.equal(y_fit, y[fit])
    assert torch.equal(data.validation_indices()[1], val)              # the same split every call
    counts = torch.bincount(y_val, minlength=10)
    assert counts.min() > 800, f"validation digits unbalanced: {counts.tolist()}"
    X_val[0, 0] = 5.0
    assert load_mnist("val")[0][0, 0] != 5.0                           # a fresh copy
