"""Set models: exact invariance, pi-SGD averaging, digit-set data."""

import numpy as np
import pytest

import zoo
from zoo import datasets
from zoo.layers.sets import KaryJanossyPooling
from zoo.models.sets import make_digit_sets


@pytest.fixture(scope="module")
def sets():
    bundle = datasets.load("digit-sets-sum")
    return bundle.test.x[:32]


def _permuted(x, seed):
    rng = np.random.default_rng(seed)
    return np.stack([row[rng.permutation(len(row))] for row in x])


@pytest.mark.parametrize("name", ["deepsets", "janossy-kary"])
def test_exactly_permutation_invariant(name, sets):
    model = zoo.get_model(name)
    reference = np.asarray(model(sets))
    for seed in range(5):
        shuffled = np.asarray(model(_permuted(sets, seed)))
        assert np.abs(shuffled - reference).max() < 1e-5


def test_deepsets_accepts_any_set_size(sets):
    model = zoo.get_model("deepsets")
    assert model(sets[:, :3]).shape == (32, 1)


def test_kary_counts_ordered_tuples():
    layer = KaryJanossyPooling(2, 5, [4])
    assert len(layer.tuple_indices) == 20
    assert len(set(layer.tuple_indices)) == 20
    assert all(a != b for a, b in layer.tuple_indices)


@pytest.mark.parametrize("arguments, message", [
    ({"k": 0, "set_size": 5, "hidden_units": [4]}, "Received: k=0"),
    ({"k": 6, "set_size": 5, "hidden_units": [4]}, "from 1 to set_size=5"),
    ({"k": 6, "set_size": 12, "hidden_units": [4]}, "665280 ordered"),
    ({"k": 2, "set_size": 5, "hidden_units": []}, "hidden_units"),
])
def test_kary_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        KaryJanossyPooling(**arguments)


def test_pisgd_spread_falls_with_more_permutations(sets):
    model = zoo.get_model("janossy-pisgd", lstm_units=16, head_units=[16])
    spreads = []
    for count in (1, 4, 16):
        # Eight independent estimates, each averaging `count` orders.
        estimates = [
            np.asarray(model.predict_permutations(
                sets, num_permutations=count, offset=1000 * trial)).mean(0)
            for trial in range(8)
        ]
        spreads.append(float(np.std(estimates, axis=0).mean()))
    assert spreads[0] > spreads[1] > spreads[2]
    # Averaging n orders divides the spread by about sqrt(n).
    assert spreads[2] < 0.5 * spreads[0]


def test_pisgd_training_draws_new_orders(sets):
    model = zoo.get_model("janossy-pisgd", lstm_units=8, head_units=[8])
    first = np.asarray(model(sets, training=True))
    second = np.asarray(model(sets, training=True))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(np.asarray(model(sets)),
                                  np.asarray(model(sets)))


def test_digit_set_targets():
    flat = datasets.load("digits-flat")
    for target, low, high in (("sum", 0, 45), ("range", 0, 9),
                              ("distinct", 1, 5)):
        split = make_digit_sets(flat.test, target, 300, seed=1)
        assert split.x.shape == (300, 5, 64)
        assert split.y.min() >= low
        assert split.y.max() <= high
    with pytest.raises(ValueError, match="target='mean'"):
        make_digit_sets(flat.test, "mean", 3)


def test_digit_sets_use_only_their_split():
    bundle = datasets.load("digit-sets-range")
    flat = datasets.load("digits-flat")
    train_rows = {row.tobytes() for row in flat.train.x}
    test_elements = bundle.test.x.reshape(-1, 64)
    assert not any(row.tobytes() in train_rows for row in test_elements)


@pytest.mark.slow
def test_deepsets_learns_the_sum(tmp_path):
    from training import trainer

    result = trainer.train("deepsets", epochs=15, run_dir=str(tmp_path))
    assert result.metrics["test_mae"] < 0.6 * \
        result.metrics["test_mae_mean_baseline"]
