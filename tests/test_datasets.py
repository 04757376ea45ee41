"""Embedded data sets and the tensorflow-datasets fallback."""

import numpy as np
import pytest

from zoo import datasets


def test_digits_split_is_stratified_and_fixed():
    first = datasets.load("digits")
    second = datasets.load("digits")

    sizes = (len(first.train), len(first.validation), len(first.test))
    assert sum(sizes) == 1797
    assert first.input_shape == (8, 8, 1)
    assert first.train.x.dtype == np.float32
    assert first.train.x.min() >= 0.0
    assert first.train.x.max() <= 1.0
    np.testing.assert_array_equal(first.test.y, second.test.y)
    np.testing.assert_array_equal(first.train.x, second.train.x)
    for part in (first.train, first.validation, first.test):
        shares = np.bincount(part.y, minlength=10) / len(part)
        assert shares.min() > 0.08
        assert shares.max() < 0.12


def test_digits_seed_changes_split():
    base = datasets.load("digits", seed=0)
    other = datasets.load("digits", seed=1)
    assert not np.array_equal(base.test.x, other.test.x)


def test_digits_flat_matches_images():
    images = datasets.load("digits")
    flat = datasets.load("digits-flat")
    np.testing.assert_array_equal(flat.test.x,
                                  images.test.x.reshape(-1, 64))


def test_diabetes_target_standardized_on_train():
    bundle = datasets.load("diabetes")
    assert bundle.train.y.shape[1:] == (1,)
    assert abs(float(bundle.train.y.mean())) < 1e-5


def test_series_loaders_chronological():
    sunspots = datasets.load_series("sunspots")
    assert sunspots.values.shape == (309, 1)
    assert sunspots.index[0] == 1700
    macro = datasets.load_series("macrodata")
    assert macro.values.shape[0] == 203
    assert "realgdp" in macro.columns
    assert macro.index[0] == "1959Q1"


def test_as_dataset_batches():
    bundle = datasets.load("digits")
    batches = list(datasets.as_dataset(bundle.test, 100))
    assert batches[0][0].shape == (100, 8, 8, 1)
    assert sum(len(b[1]) for b in batches) == len(bundle.test)


def test_as_dataset_rejects_bad_batch_size():
    bundle = datasets.load("digits")
    with pytest.raises(ValueError, match="Received: 0"):
        datasets.as_dataset(bundle.test, 0)


def test_unknown_dataset_error_lists_embedded():
    with pytest.raises(ValueError) as caught:
        datasets.load("digitz")
    message = str(caught.value)
    assert "'digitz'" in message
    assert "Did you mean: digits" in message
    assert "sunspots" in message or "digits-flat" in message


def test_tfds_unprepared_offline_says_what_to_do(tmp_path):
    with pytest.raises(ValueError) as caught:
        datasets.load("mnist", data_dir=str(tmp_path))
    message = str(caught.value)
    assert "'mnist'" in message
    assert "not prepared" in message
    assert "--data-dir" in message
    assert "--download" in message
