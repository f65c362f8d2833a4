"""Datasets: determinism, shapes, the common options, IDX and CSV parsing and their errors.

No test touches the network: MNIST loads use ``download=False`` or a patched
``urlopen`` that raises.
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from nets import data as ds
from nets.data import DATASETS, MNIST_FILES, Data, read_idx, write_idx
from nets.registry import ConfigError

REAL_MNIST = Path("/work/shared/data/mnist")


def rng(seed=0):
    return np.random.default_rng(seed)


def tiny_mnist(directory: Path, split="train", n=30, seed=0, gz=True):
    """Write a small, well-formed IDX image/label pair under the canonical names."""
    r = np.random.default_rng(seed)
    images = r.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    img, lab = MNIST_FILES[split]
    if not gz:
        img, lab = img.removesuffix(".gz"), lab.removesuffix(".gz")
    write_idx(directory / img, images)
    write_idx(directory / lab, labels)
    return images, labels


def mnist(directory, **kw):
    kw = {"path": str(directory), "cache_dir": str(directory), "download": False,
          "verify": False, **kw}
    return DATASETS.build({"name": "mnist", **kw})


def write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def small_spec(name: str, tmp_path: Path) -> dict:
    """A quick-to-load spec for every registered dataset (files written in tmp_path)."""
    if name == "mnist":
        tiny_mnist(tmp_path, n=40)
        return {"name": name, "path": str(tmp_path), "cache_dir": str(tmp_path),
                "download": False, "verify": False}
    if name == "csv":
        r = np.random.default_rng(0)
        rows = np.c_[np.arange(30) % 3, r.integers(0, 256, (30, 12))]
        p = tmp_path / "d.csv"
        np.savetxt(p, rows, fmt="%d", delimiter=",")
        return {"name": name, "path": str(p), "image_shape": [3, 2, 2]}
    if name == "shapes":
        return {"name": name, "n_samples": 64, "n_classes": 8, "height": 12, "width": 16}
    return {"name": name}


# ---------------------------------------------------------------------------------------
# Every registered dataset

@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_shapes_and_dtypes(name, tmp_path):
    data = DATASETS.build(small_spec(name, tmp_path)).load(rng())
    assert isinstance(data, Data) and data.name == name
    assert data.task in ("classification", "regression")
    for X, y in ((data.X_train, data.y_train), (data.X_val, data.y_val)):
        assert X.dtype == np.float64 and X.ndim == 2 and len(X) == len(y) > 0
        assert X.shape[1] == data.X_train.shape[1] == data.n_features
        assert np.isfinite(X).all()
        if data.task == "classification":
            assert y.dtype == np.int64 and y.ndim == 1
            assert 0 <= y.min() and y.max() < data.n_classes
        else:
            assert data.n_classes is None
            assert y.dtype == np.float64 and y.ndim == 2 and y.shape[1] == data.n_outputs
    if data.image_shape is not None:
        assert len(data.image_shape) == 3 and np.prod(data.image_shape) == data.n_features


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_is_deterministic_and_round_trips(name, tmp_path):
    spec = small_spec(name, tmp_path)
    obj = DATASETS.build(spec)
    again = DATASETS.build(obj.hparams())
    assert again.hparams() == obj.hparams()
    a, b = obj.load(rng(3)), again.load(rng(3))
    for field in ("X_train", "y_train", "X_val", "y_val"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_uses_only_the_generator(name, tmp_path):
    spec = small_spec(name, tmp_path)
    np.random.seed(0)
    a = DATASETS.build(spec).load(rng(5))
    np.random.seed(1)
    b = DATASETS.build(spec).load(rng(5))
    np.testing.assert_array_equal(a.X_train, b.X_train)


@pytest.mark.parametrize("name", ["digits", "mnist", "csv", "blobs", "moons", "spirals",
                                  "xor", "shapes"])
def test_different_seed_gives_different_split(name, tmp_path):
    spec = small_spec(name, tmp_path)
    a, b = (DATASETS.build(spec).load(rng(s)) for s in (0, 1))
    assert a.X_train.shape != b.X_train.shape or not np.array_equal(a.X_train, b.X_train)


def test_unknown_dataset_and_parameter_are_one_line_errors():
    with pytest.raises(ConfigError, match="choose one of: .*digits"):
        DATASETS.build("mnsit")
    with pytest.raises(ConfigError, match=r"dataset\.n_sample.*valid: .*n_samples"):
        DATASETS.build({"name": "blobs", "n_sample": 5})


# ---------------------------------------------------------------------------------------
# Common options

@pytest.mark.parametrize("key,value", [("val_fraction", 1.0), ("val_fraction", -0.1),
                                       ("val_fraction", "0.2"), ("subsample", 0),
                                       ("subsample", 2.5), ("scaling", "zscore")])
def test_common_options_are_validated(key, value):
    with pytest.raises(ConfigError, match=rf"^dataset\.{key}=.* is not valid"):
        DATASETS.build({"name": "blobs", key: value})


def test_val_fraction_zero_validates_on_the_training_set():
    data = DATASETS.build({"name": "blobs", "n_samples": 50, "val_fraction": 0}).load(rng())
    assert data.X_val is data.X_train and data.y_val is data.y_train
    assert len(data.X_train) == 50


def test_val_fraction_split_is_disjoint_exact_and_stratified():
    data = DATASETS.build({"name": "blobs", "n_samples": 300, "n_classes": 3,
                           "val_fraction": 0.2}).load(rng())
    assert (len(data.X_train), len(data.X_val)) == (240, 60)
    assert np.bincount(data.y_val).tolist() == [20, 20, 20]
    train, val = set(map(tuple, data.X_train)), set(map(tuple, data.X_val))
    assert not train & val and len(train) + len(val) == 300


def test_split_keeps_at_least_one_sample_on_each_side():
    data = DATASETS.build({"name": "tiny_regression", "val_fraction": 0.1}).load(rng())
    assert len(data.X_train) == len(data.X_val) == 1
    with pytest.raises(ConfigError, match="val_fraction=0.9.*no training samples out of 2"):
        DATASETS.build({"name": "tiny_regression", "val_fraction": 0.9}).load(rng())


def test_subsample_before_split():
    obj = DATASETS.build({"name": "digits", "subsample": 100, "val_fraction": 0.25})
    data = obj.load(rng())
    assert (len(data.X_train), len(data.X_val)) == (75, 25)
    again = obj.load(rng(1))
    assert not np.array_equal(np.sort(data.X_train, axis=0), np.sort(again.X_train, axis=0))
    with pytest.raises(ConfigError, match="subsample=5000.*at most 1797"):
        DATASETS.build({"name": "digits", "subsample": 5000}).load(rng())


def test_standard_scaling_uses_training_statistics_and_survives_constant_features():
    data = DATASETS.build({"name": "digits", "scaling": "standard"}).load(rng())
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_val).all()
    mean, std = data.X_train.mean(axis=0), data.X_train.std(axis=0)
    np.testing.assert_allclose(mean, 0, atol=1e-12)
    # digits has always-zero corner pixels: they stay 0 instead of becoming NaN
    assert ((np.abs(std - 1) < 1e-9) | (std == 0)).all() and (std == 0).any()
    assert not np.allclose(data.X_val.mean(axis=0), 0, atol=1e-3)  # val stats not used


def test_minmax_scaling_and_alias_when_val_is_train():
    data = DATASETS.build({"name": "random_regression", "scaling": "minmax"}).load(rng())
    assert data.X_val is data.X_train
    assert data.X_train.min(axis=0).tolist() == [0.0] * 7
    assert data.X_train.max(axis=0).tolist() == [1.0] * 7
    raw = DATASETS.build({"name": "tiny_regression", "scaling": "minmax"}).load(rng())
    np.testing.assert_array_equal(raw.X_train, ds.TinyRegression.X)  # already 0/1


def test_load_accepts_an_int_seed_but_not_none():
    obj = DATASETS.build("moons")
    np.testing.assert_array_equal(obj.load(7).X_train, obj.load(rng(7)).X_train)
    with pytest.raises(ConfigError, match="rng"):
        obj.load(None)


# ---------------------------------------------------------------------------------------
# Story 2 and the synthetic sets

def test_random_regression_matches_story_2():
    data = DATASETS.build("random_regression").load(rng())
    assert data.X_train.shape == (20, 7) and data.y_train.shape == (20, 2)
    assert data.X_val is data.X_train
    assert 0 <= data.X_train.min() and data.X_train.max() < 1
    assert 0 <= data.y_train.min() and data.y_train.max() < 1


def test_tiny_regression_is_the_documented_fixed_set():
    data = DATASETS.build("tiny_regression").load(rng(123))
    np.testing.assert_array_equal(data.X_train, [[1, 0, 1, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(data.y_train, [[0.1, 0.9, 0.2, 0.8], [0.9, 0.1, 0.8, 0.2]])
    assert data.y_val is data.y_train and data.n_outputs == 4


@pytest.mark.parametrize("name,k", [("blobs", 3), ("moons", 2), ("spirals", 3), ("xor", 2)])
def test_synthetic_classes_are_balanced(name, k):
    data = DATASETS.build({"name": name, "n_samples": 120, "val_fraction": 0}).load(rng())
    assert data.n_classes == k and np.bincount(data.y_train).tolist() == [120 // k] * k


def test_xor_without_noise_is_the_four_points():
    data = DATASETS.build({"name": "xor", "noise": 0, "val_fraction": 0}).load(rng())
    X, y = data.X_train, data.y_train
    assert set(map(tuple, X)) == {(-1, -1), (-1, 1), (1, -1), (1, 1)}
    np.testing.assert_array_equal(y, (X[:, 0] != X[:, 1]).astype(int))


def test_shapes_defaults_match_the_cnn_story():
    obj = DATASETS.build("shapes")
    data = obj.load(rng())
    assert data.image_shape == (1, 24, 32) and data.n_classes == 13
    assert len(data.X_train) + len(data.X_val) == 1300
    assert -1 < data.X_train.min() and data.X_train.max() < 2
    # the classes differ in their mean image
    X = np.r_[data.X_train, data.X_val]
    y = np.r_[data.y_train, data.y_val]
    means = np.stack([X[y == c].mean(axis=0) for c in range(13)])
    assert np.ptp(means, axis=0).max() > 0.3


def test_shapes_channels_and_limits():
    data = DATASETS.build({"name": "shapes", "n_samples": 32, "channels": 3, "height": 10,
                           "width": 12, "n_classes": 16}).load(rng())
    assert data.image_shape == (3, 10, 12) and data.n_features == 360
    with pytest.raises(ConfigError, match=r"dataset\.n_classes=17.*\[2, 16\]"):
        DATASETS.build({"name": "shapes", "n_classes": 17})


# ---------------------------------------------------------------------------------------
# IDX / MNIST

def test_write_then_read_idx_round_trips(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", a)
    write_idx(tmp_path / "x", a)
    assert (tmp_path / "x.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "x").read_bytes()[:4] == b"\x00\x00\x08\x03"
    for p in ("x.gz", "x"):
        np.testing.assert_array_equal(read_idx(tmp_path / p, 0x803), a)


def test_tiny_idx_pair_loads(tmp_path):
    images, labels = tiny_mnist(tmp_path, n=30)
    data = mnist(tmp_path, val_fraction=0).load(rng())
    assert data.image_shape == (1, 28, 28) and data.n_classes == 10
    np.testing.assert_allclose(data.X_train, images.reshape(30, -1) / 255.0)
    np.testing.assert_array_equal(data.y_train, labels)


def test_unzipped_idx_files_and_split_all(tmp_path):
    tiny_mnist(tmp_path, "train", n=20, gz=False)
    tiny_mnist(tmp_path, "test", n=10, seed=1)
    data = mnist(tmp_path, split="all", val_fraction=0).load(rng())
    assert len(data.X_train) == 30


def test_cache_dir_is_the_second_place_looked(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    tiny_mnist(cache, n=20)
    data = mnist(tmp_path / "elsewhere", cache_dir=str(cache), val_fraction=0).load(rng())
    assert len(data.X_train) == 20


def test_bad_magic_names_the_file(tmp_path):
    tiny_mnist(tmp_path)
    labels = tmp_path / MNIST_FILES["train"][1]
    write_idx(tmp_path / MNIST_FILES["train"][0], np.zeros(30, np.uint8))  # labels, not images
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte\.gz: bad magic number "
                                          r"0x00000801, expected 0x00000803"):
        mnist(tmp_path).load(rng())
    assert labels.exists()


def test_truncated_file_names_the_file(tmp_path):
    tiny_mnist(tmp_path, n=30)
    img = tmp_path / MNIST_FILES["train"][0]
    raw = gzip.decompress(img.read_bytes())
    img.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte\.gz: truncated: .*"
                                          r"30x28x28 = 23520 bytes.* has 23420"):
        mnist(tmp_path).load(rng())


def test_broken_gzip_is_a_clear_error(tmp_path):
    tiny_mnist(tmp_path, n=30)
    img = tmp_path / MNIST_FILES["train"][0]
    img.write_bytes(img.read_bytes()[:50])
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte\.gz: cannot read it"):
        mnist(tmp_path).load(rng())


def test_count_mismatch_names_both_files(tmp_path):
    tiny_mnist(tmp_path, n=30)
    write_idx(tmp_path / MNIST_FILES["train"][1], np.zeros(29, np.uint8))
    with pytest.raises(ConfigError, match=r"has 30 images but .*train-labels-idx1-ubyte\.gz "
                                          r"has 29 labels"):
        mnist(tmp_path).load(rng())


def test_checksum_mismatch_names_the_file(tmp_path):
    tiny_mnist(tmp_path, n=30)
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte\.gz: MD5 [0-9a-f]{32} "
                                          r"does not match .*verify=false"):
        mnist(tmp_path, verify=True).load(rng())


def test_missing_files_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(ConfigError) as e:
        mnist(tmp_path / "data", cache_dir=str(tmp_path / "cache"), split="test").load(rng())
    msg = str(e.value)
    assert "\n" not in msg
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz not found" in msg
    assert "download is off" in msg and msg.endswith(f"put them in {tmp_path / 'data'}")


def test_failed_download_says_where_to_put_them_and_leaves_no_file(tmp_path, monkeypatch):
    calls = []

    def offline(url, *a, **k):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    obj = DATASETS.build({"name": "mnist", "cache_dir": str(cache)})  # download=True
    with pytest.raises(ConfigError) as e:
        obj.load(rng())
    msg = str(e.value)
    assert "\n" not in msg and "downloading from https://ossci-datasets" in msg
    assert "name resolution" in msg and msg.endswith(f"put them in {cache}")
    assert calls == [ds.MNIST_URL + "train-images-idx3-ubyte.gz"]
    assert list(cache.iterdir()) == []  # the temporary file was removed


class _FakeResponse:
    def __init__(self, payload: bytes):
        self.payload = payload

    def read(self, n=-1):
        out, self.payload = self.payload[:n], self.payload[n:]
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    # Serve tiny files and pretend their MD5s are the official ones.
    src = tmp_path / "src"
    src.mkdir()
    tiny_mnist(src, "test", n=20)
    md5 = {n: hashlib.md5((src / n).read_bytes()).hexdigest() for n in MNIST_FILES["test"]}
    monkeypatch.setattr(ds.images, "MNIST_MD5", md5)
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse(
                            (src / url.rsplit("/", 1)[1]).read_bytes()))
    cache = tmp_path / "cache"
    data = DATASETS.build({"name": "mnist", "split": "test", "cache_dir": str(cache),
                           "val_fraction": 0}).load(rng())
    assert len(data.X_train) == 20
    assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_FILES["test"])

    # A corrupt download is rejected and nothing is left under the real name.
    for p in cache.iterdir():
        p.unlink()
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse(b"garbage"))
    with pytest.raises(ConfigError, match="has MD5 .*expected .*nothing was saved"):
        DATASETS.build({"name": "mnist", "split": "test", "cache_dir": str(cache)}).load(rng())
    assert list(cache.iterdir()) == []


def test_mnist_options_are_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset\.split='val'.*train, test, all"):
        DATASETS.build({"name": "mnist", "split": "val"})
    with pytest.raises(ConfigError, match=r"dataset\.download='no'.*true or false"):
        DATASETS.build({"name": "mnist", "download": "no"})
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="a directory"):
        mnist(f).load(rng())


def test_real_mnist_test_split():
    if not (REAL_MNIST / MNIST_FILES["test"][0]).is_file():
        pytest.skip(f"no MNIST files in {REAL_MNIST}")
    data = DATASETS.build({"name": "mnist", "path": str(REAL_MNIST), "split": "test",
                           "download": False, "verify": True,
                           "val_fraction": 0}).load(rng())
    assert data.X_train.shape == (10_000, 784) and data.image_shape == (1, 28, 28)
    assert np.bincount(data.y_train).tolist()[0] == 980  # story 4's 9.8%
    assert data.X_train.min() == 0.0 and data.X_train.max() == 1.0
    split = DATASETS.build({"name": "mnist", "path": str(REAL_MNIST), "split": "test",
                            "download": False}).load(rng())
    assert (len(split.X_train), len(split.X_val)) == (8000, 2000)
    assert np.bincount(split.y_val)[0] == 196  # stratified: 20% of 980


# ---------------------------------------------------------------------------------------
# CSV

def csv_data(path, **kw):
    return DATASETS.build({"name": "csv", "path": str(path), "val_fraction": 0, **kw}).load(rng())


def test_csv_label_first_column_and_255_scaling(tmp_path):
    p = write_csv(tmp_path / "m.csv", "5,0,255,51\n0,255,0,0\n3,102,0,255\n")
    data = csv_data(p, scale=0.00392156862745098)
    np.testing.assert_array_equal(data.y_train, [5, 0, 3])
    np.testing.assert_allclose(data.X_train, [[0, 1, 0.2], [1, 0, 0], [0.4, 0, 1]])
    assert data.n_classes == 6 and data.image_shape is None


def test_csv_label_last_column_and_regression(tmp_path):
    p = write_csv(tmp_path / "r.csv", "1,2,0.5\n3,4,-1.25\n")
    data = csv_data(p, label_column=-1, task="regression")
    np.testing.assert_array_equal(data.X_train, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(data.y_train, [[0.5], [-1.25]])
    assert data.task == "regression" and data.n_classes is None


def test_csv_header_auto_detected_or_forced(tmp_path):
    p = write_csv(tmp_path / "h.csv", "label,p0,p1\n1,2,3\n0,4,5\n")
    assert len(csv_data(p).X_train) == 2
    assert len(csv_data(p, header=True).X_train) == 2
    with pytest.raises(ConfigError, match=r"h\.csv line 1, column 1: 'label' is not a number"):
        csv_data(p, header=False)
    q = write_csv(tmp_path / "n.csv", "1,2,3\n0,4,5\n")
    assert len(csv_data(q).X_train) == 2
    assert len(csv_data(q, header=True).X_train) == 1  # forced: the first row is skipped


def test_csv_image_shape_is_checked(tmp_path):
    p = write_csv(tmp_path / "i.csv", "1," + ",".join(["0"] * 12) + "\n")
    assert csv_data(p, image_shape=[3, 2, 2]).image_shape == (3, 2, 2)
    with pytest.raises(ConfigError, match=r"image_shape=\[1, 3, 3\].*12 feature columns"):
        csv_data(p, image_shape=[1, 3, 3])
    with pytest.raises(ConfigError, match=r"dataset\.image_shape.*\[C, H, W\]"):
        DATASETS.build({"name": "csv", "path": p, "image_shape": [12]})


@pytest.mark.parametrize("text,line,what", [
    ("1,2,3\n\n0,4,5\n1,2\n", 4, "2 columns, the rows above have 3"),
    ("1,2,3\n0,4,x\n", 2, "column 3: 'x' is not a number"),
    ("a,b,c\n1,2,3\n\n\n0,,5\n", 5, "column 2: '' is not a number"),
    ("1,2,3\n\n0,nan,5\n", 3, "NaN or infinite"),
    ("1,2,3\n\n-1,4,5\n", 3, "label -1 in column 1 is not a class index"),
    ("1,2,3\n0.5,4,5\n", 2, "label 0.5"),
    ("1,2\n3;4,5\n", 2, "'3;4' is not a number (wrong delimiter?"),
])
def test_csv_malformed_row_reports_its_line(tmp_path, text, line, what):
    p = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ConfigError) as e:
        csv_data(p)
    msg = str(e.value)
    assert f"bad.csv line {line}" in msg and what in msg and "\n" not in msg


def test_csv_missing_empty_and_bad_column(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset\.path=.*nope\.csv.*no such file"):
        csv_data(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="the file is empty"):
        csv_data(write_csv(tmp_path / "e.csv", "\n\n"))
    with pytest.raises(ConfigError, match="no data rows after the header"):
        csv_data(write_csv(tmp_path / "h.csv", "label,x\n"))
    with pytest.raises(ConfigError, match=r"dataset\.label_column=5.*3 columns"):
        csv_data(write_csv(tmp_path / "c.csv", "1,2,3\n"), label_column=5)
    with pytest.raises(ConfigError, match=r"dataset\.path=None.*file path"):
        DATASETS.build({"name": "csv"})


def test_csv_n_classes_and_val_path(tmp_path):
    train = write_csv(tmp_path / "train.csv", "0,1\n1,2\n0,3\n1,4\n")
    test = write_csv(tmp_path / "test.csv", "label,x\n2,5\n")
    data = csv_data(train, val_path=test, scaling="minmax")
    assert data.n_classes == 3 and data.y_val.tolist() == [2]
    np.testing.assert_allclose(data.X_val, [[4 / 3]])  # train min/max applied to val
    assert csv_data(train, n_classes=10).n_classes == 10
    with pytest.raises(ConfigError, match="label 2 is not below dataset.n_classes=2"):
        csv_data(train, val_path=test, n_classes=2)
    with pytest.raises(ConfigError, match=r"val_fraction=0.2.*0 when val_path is set"):
        DATASETS.build({"name": "csv", "path": train, "val_path": test})


def test_csv_split_is_stratified(tmp_path):
    rows = np.c_[np.arange(100) % 2, np.arange(100)]
    p = tmp_path / "s.csv"
    np.savetxt(p, rows, fmt="%d", delimiter=",")
    data = DATASETS.build({"name": "csv", "path": str(p), "val_fraction": 0.2}).load(rng())
    assert np.bincount(data.y_val).tolist() == [10, 10]
    assert sorted(np.r_[data.X_train[:, 0], data.X_val[:, 0]].tolist()) == list(range(100))


# ---------------------------------------------------------------------------------------

def test_core_module_imports_no_app_libraries():
    import subprocess
    import sys

    code = ("import sys, nets.data as d; d.DATASETS.build('blobs').load(0); "
            "bad = [m for m in ('hydra', 'omegaconf', 'mlflow', 'sklearn') if m in sys.modules];"
            "print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
