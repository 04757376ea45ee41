"""Double descent: minimum-norm random features on a digits subset."""

import json

import numpy as np
import pytest

from zoo.experiments import double_descent

TRAIN_SIZE = 100
SIZES = [10, 30, 50, 80, 90, 100, 110, 120, 200, 500, 2000]


@pytest.fixture(scope="module")
def sweeps():
    return {kind: double_descent.run_sweep(kind, TRAIN_SIZE, SIZES,
                                           repeats=1, seed=0)
            for kind in double_descent.KINDS}


@pytest.mark.parametrize("kind", double_descent.KINDS)
def test_sweep_peaks_at_threshold(sweeps, kind):
    summary = sweeps[kind].summary()

    assert summary["peak_size_squared"] == TRAIN_SIZE
    assert summary["peak_size_zero_one"] == TRAIN_SIZE
    assert summary["peak_zero_one"] > 2 * summary["best_under_zero_one"]


@pytest.mark.parametrize("kind", double_descent.KINDS)
def test_sweep_descends_again(sweeps, kind):
    result = sweeps[kind]
    summary = result.summary()

    assert summary["largest_zero_one"] < summary["best_under_zero_one"]
    assert summary["best_zero_one"] == summary["largest_zero_one"]
    over = [error for size, error in zip(result.sizes, result.test_zero_one)
            if size >= TRAIN_SIZE]
    assert over == sorted(over, reverse=True)


@pytest.mark.parametrize("kind", double_descent.KINDS)
def test_sweep_interpolates_beyond_threshold(sweeps, kind):
    result = sweeps[kind]
    for size, loss in zip(result.sizes, result.train_squared):
        if size > TRAIN_SIZE:
            assert loss < 1e-6, f"N={size} does not interpolate: {loss}"
        if size < TRAIN_SIZE // 2:
            assert loss > 0.05, f"N={size} fits too well: {loss}"


def test_readout_norm_peaks_at_threshold(sweeps):
    result = sweeps["fourier"]
    peak = result.sizes[int(np.argmax(result.readout_norm))]

    assert peak == TRAIN_SIZE


def test_fit_minimum_norm_matches_pseudo_inverse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5)).astype("float32")
    targets = np.eye(3)[rng.integers(0, 3, size=20)]
    model = double_descent.build_network("relu", 5, 50, 3, seed=1)

    readout = double_descent.fit_minimum_norm(model, x, targets)
    features = np.asarray(model.get_layer("hidden")(x), dtype="float64")
    expected = np.linalg.pinv(features) @ targets

    np.testing.assert_allclose(readout, expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(x)), targets, atol=1e-4)
    # Adding a null-space direction keeps the fit and raises the norm.
    null_space = np.linalg.svd(features)[2][-1]
    other = readout + null_space[:, None]
    np.testing.assert_allclose(features @ other, targets, atol=1e-6)
    assert np.linalg.norm(other) > np.linalg.norm(readout)


def test_network_hidden_layer_is_frozen():
    model = double_descent.build_network("fourier", 64, 16, 10,
                                         bandwidth=3.0, seed=0)

    assert not model.get_layer("hidden").trainable
    assert [w.name for w in model.trainable_weights] == ["kernel"]
    assert model.count_params() == 64 * 16 + 16 + 16 * 10


def test_default_sizes_surround_threshold():
    sizes = double_descent.default_sizes(200)

    assert 200 in sizes
    assert min(sizes) == 10
    assert max(sizes) == 4000
    assert sizes == sorted(set(sizes))


def test_plot_and_numbers_written(sweeps, tmp_path):
    path = str(tmp_path / "dd.png")
    double_descent.plot_sweeps(list(sweeps.values()), path)

    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    record = json.loads(json.dumps(sweeps["relu"].to_dict()))
    assert record["summary"]["peak_size_squared"] == TRAIN_SIZE
    assert record["sizes"] == SIZES


@pytest.mark.parametrize("arguments, message", [
    ({"kind": "sigmoid"}, "kind"),
    ({"train_size": 0}, "train_size"),
    ({"train_size": 10_000}, "train_size"),
    ({"repeats": 0}, "repeats"),
])
def test_sweep_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        double_descent.run_sweep(**{"sizes": [5], **arguments})


def test_experiment_listed_by_cli(zoo_command):
    result = zoo_command("experiment", "--help")

    assert result.returncode == 0, result.stderr
    assert "double-descent" in result.stdout
    assert "som-map" in result.stdout
