"""Restricted Boltzmann machine: energies, sampling, CD training, probe."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import datasets
from zoo.layers.rbm import RestrictedBoltzmannMachine
from zoo.models import rbm as rbm_family


def _tiny_rbm(num_visible=3, num_hidden=2, seed=0, **kwargs):
    model = RestrictedBoltzmannMachine(num_visible, num_hidden, seed=seed,
                                       **kwargs)
    rng = np.random.default_rng(seed)
    model.kernel.assign(rng.normal(0, 1.5, (num_visible, num_hidden)))
    model.visible_bias.assign(rng.normal(0, 1.0, num_visible))
    model.hidden_bias.assign(rng.normal(0, 1.0, num_hidden))
    return model


def _binary_states(count):
    return np.array(list(itertools.product([0, 1], repeat=count)),
                    dtype="float32")


def _exact_visible_distribution(model):
    visible = _binary_states(model.num_visible)
    free_energy = np.asarray(model.free_energy(visible), dtype="float64")
    weights = np.exp(-(free_energy - free_energy.min()))
    return visible, weights / weights.sum()


def test_free_energy_matches_sum_over_hidden_states():
    model = _tiny_rbm(num_visible=4, num_hidden=3)
    visible = _binary_states(4)
    hidden = _binary_states(3)

    energies = np.stack([
        np.asarray(model.energy(visible, np.repeat(h[None], len(visible), 0)))
        for h in hidden
    ], axis=1)
    expected = -np.log(np.sum(np.exp(-energies.astype("float64")), axis=1))

    np.testing.assert_allclose(np.asarray(model.free_energy(visible)),
                               expected, rtol=1e-5, atol=1e-5)


def test_hidden_conditional_matches_energy_ratio():
    model = _tiny_rbm(num_visible=4, num_hidden=1)
    visible = _binary_states(4)
    ones = np.ones((len(visible), 1), "float32")
    zeros = np.zeros((len(visible), 1), "float32")
    energy_on = np.asarray(model.energy(visible, ones))
    energy_off = np.asarray(model.energy(visible, zeros))
    expected = 1.0 / (1.0 + np.exp(energy_on - energy_off))

    np.testing.assert_allclose(
        np.asarray(model.hidden_probabilities(visible))[:, 0], expected,
        rtol=1e-5)


def test_gibbs_chains_reach_model_distribution():
    model = _tiny_rbm()
    states, exact = _exact_visible_distribution(model)
    start = np.zeros((4000, 3), "float32")

    samples = np.asarray(model.gibbs_chain(start, steps=30))
    codes = samples @ np.array([4, 2, 1])
    empirical = np.bincount(codes.astype(int), minlength=8) / len(codes)
    order = states @ np.array([4, 2, 1])
    total_variation = 0.5 * np.abs(empirical[order.astype(int)] - exact).sum()

    assert set(np.unique(samples)) <= {0.0, 1.0}
    assert total_variation < 0.04


def test_sample_returns_visible_probabilities():
    model = _tiny_rbm(num_visible=5, num_hidden=4)
    samples = np.asarray(model.sample(7, steps=5))

    assert samples.shape == (7, 5)
    assert samples.min() >= 0.0
    assert samples.max() <= 1.0


def test_cd_gradient_is_difference_of_statistics():
    model = _tiny_rbm(num_visible=4, num_hidden=3)
    rng = np.random.default_rng(1)
    data = rng.random((6, 4)).astype("float32")
    negative = (rng.random((6, 4)) < 0.5).astype("float32")

    with tf.GradientTape() as tape:
        gap = tf.reduce_mean(model.free_energy(data)) - tf.reduce_mean(
            model.free_energy(negative))
    kernel_gradient, = tape.gradient(gap, [model.kernel])
    positive = data.T @ np.asarray(model.hidden_probabilities(data)) / 6
    negative_stats = negative.T @ np.asarray(
        model.hidden_probabilities(negative)) / 6

    np.testing.assert_allclose(np.asarray(kernel_gradient),
                               -(positive - negative_stats), atol=1e-5)


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits-flat")


@pytest.mark.parametrize("persistent", [False, True])
def test_training_lowers_reconstruction_error(digits, persistent):
    keras.utils.set_random_seed(0)
    model = RestrictedBoltzmannMachine(64, 32, persistent=persistent,
                                       num_chains=20, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    before = float(np.mean(model.reconstruction_error(digits.test.x)))
    history = model.fit(digits.train.x, epochs=3, batch_size=20, verbose=0)
    after = float(np.mean(model.reconstruction_error(digits.test.x)))
    errors = history.history["reconstruction_error"]

    assert after < 0.6 * before
    assert errors[-1] < errors[0]


def test_persistent_chains_move_only_when_persistent(digits):
    batch = digits.train.x[:10]
    for persistent in (False, True):
        model = RestrictedBoltzmannMachine(64, 8, persistent=persistent,
                                           num_chains=5, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.train_on_batch(batch)
        changed = np.any(np.asarray(model.chains) != 0)
        assert changed == persistent


@pytest.mark.parametrize("cd_steps", [1, 3])
def test_train_step_runs_cd_steps(digits, cd_steps):
    model = RestrictedBoltzmannMachine(64, 8, cd_steps=cd_steps, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    calls = []
    original = model.gibbs_step

    def counted(visible):
        calls.append(visible.shape[0])
        return original(visible)

    model.gibbs_step = counted
    model.train_on_batch(digits.train.x[:10])

    assert calls == [10] * cd_steps


def test_config_round_trip_keeps_settings():
    model = RestrictedBoltzmannMachine(10, 4, cd_steps=3, persistent=True,
                                       num_chains=7, weight_stddev=0.05,
                                       seed=3)
    rebuilt = RestrictedBoltzmannMachine.from_config(model.get_config())

    assert rebuilt.get_config() == model.get_config()
    assert rebuilt.chains.shape == (7, 10)


@pytest.mark.parametrize("arguments, message", [
    ({"num_hidden": 0}, "num_hidden"),
    ({"cd_steps": 0}, "cd_steps"),
    ({"num_chains": 1.5}, "num_chains"),
    ({"weight_stddev": 0.0}, "weight_stddev"),
])
def test_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        RestrictedBoltzmannMachine(**{"num_visible": 4, "num_hidden": 3,
                                      **arguments})


def test_nudge_images_shifts_by_one_pixel():
    image = np.zeros((1, 64), "float32")
    image[0, 3 * 8 + 4] = 1.0
    nudged, labels = rbm_family.nudge_images(image, np.array([7]))
    positions = [tuple(np.argwhere(x.reshape(8, 8) == 1.0)[0])
                 for x in nudged]

    assert nudged.shape == (5, 64)
    assert list(labels) == [7] * 5
    assert positions == [(3, 4), (4, 4), (2, 4), (3, 5), (3, 3)]


def test_nudge_images_rejects_wrong_width():
    with pytest.raises(ValueError, match="x.shape"):
        rbm_family.nudge_images(np.zeros((2, 10)), np.zeros(2))


@pytest.mark.slow
def test_pretrained_features_beat_raw_pixels(digits):
    from zoo import hub

    entry = hub.get_entry("rbm", "digits")[1]
    model = zoo.get_model("rbm", weights="digits")
    measured = rbm_family.compare_features(model, digits)
    recorded = entry["metrics"]

    assert measured["rbm_logistic_accuracy"] > \
        measured["raw_logistic_accuracy"] + 0.05
    assert measured["rbm_logistic_accuracy"] == pytest.approx(
        recorded["test_rbm_logistic_accuracy"], abs=0.01)
    assert measured["raw_logistic_accuracy"] == pytest.approx(
        recorded["test_raw_logistic_accuracy"], abs=0.01)


def test_published_saved_model_serves_features(digits, tmp_path):
    from zoo import hub, predict

    target = hub.extract_saved_model("rbm", "digits", str(tmp_path))
    pixels = digits.test.x[:3]
    response = predict.predict(target, {"instances": pixels.tolist()})
    model = zoo.get_model("rbm", weights="digits", compile=False)
    features = np.asarray(response["predictions"])

    assert features.shape == (3, 100)
    np.testing.assert_allclose(features, np.asarray(model(pixels)),
                               atol=1e-5)
