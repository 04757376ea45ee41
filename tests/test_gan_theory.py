"""GAN theory on 1-D densities: D*, C(G), JSD, and a trained discriminator.

The densities are p_data = N(0, 1) and p_g = N(mu, 1). For them
D*(x) = sigmoid(mu**2 / 2 - mu * x) in closed form, which checks the
numerical D*; the Jensen-Shannon divergence is checked against SciPy's
`jensenshannon` on a fine grid, an independent computation.
"""

import numpy as np
import pytest
from scipy import special
from scipy import stats
from scipy.spatial import distance

from zoo import gan_theory

LOG_4 = np.log(4.0)


def _densities(mu):
    return stats.norm(0.0, 1.0).pdf, stats.norm(mu, 1.0).pdf


def _jsd_on_grid(mu):
    # SciPy returns the square root of the divergence, in nats by default.
    x = np.linspace(-14.0, 14.0 + mu, 400_001)
    p, q = _densities(mu)
    return distance.jensenshannon(p(x), q(x)) ** 2


def test_criterion_at_equal_densities_is_minus_log_4():
    p_data, p_g = _densities(0.0)

    value = gan_theory.virtual_training_criterion(p_data, p_g)

    assert value == pytest.approx(-LOG_4, abs=1e-9)


@pytest.mark.parametrize("mu", [1.0, 2.0])
def test_criterion_matches_jensen_shannon(mu):
    p_data, p_g = _densities(mu)

    criterion = gan_theory.virtual_training_criterion(p_data, p_g)
    jsd = gan_theory.jensen_shannon_divergence(p_data, p_g)

    assert criterion == pytest.approx(-LOG_4 + 2.0 * jsd, abs=1e-4)
    assert criterion > -LOG_4 + 0.1


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0, 4.0])
def test_jensen_shannon_matches_scipy(mu):
    p_data, p_g = _densities(mu)

    jsd = gan_theory.jensen_shannon_divergence(p_data, p_g)

    assert jsd == pytest.approx(_jsd_on_grid(mu), abs=1e-6)
    assert 0.0 < jsd < np.log(2.0)


def test_jensen_shannon_is_symmetric():
    p, q = stats.norm(0.0, 1.0).pdf, stats.norm(1.0, 2.0).pdf

    forward = gan_theory.jensen_shannon_divergence(p, q)
    backward = gan_theory.jensen_shannon_divergence(q, p)

    assert forward == pytest.approx(backward, abs=1e-9)


def test_kl_divergence_of_gaussians_closed_form():
    # KL(N(0, 1) || N(mu, s^2)) = log s + (1 + mu^2) / (2 s^2) - 1/2.
    mu, scale = 1.5, 2.0
    p, q = stats.norm(0.0, 1.0).pdf, stats.norm(mu, scale).pdf
    expected = np.log(scale) + (1.0 + mu ** 2) / (2.0 * scale ** 2) - 0.5

    assert gan_theory.kl_divergence(p, q) == pytest.approx(expected,
                                                           abs=1e-8)


def test_optimal_discriminator_closed_form():
    mu = 1.5
    x = np.linspace(-5.0, 6.0, 201)

    d_star = gan_theory.optimal_discriminator(*_densities(mu))(x)

    np.testing.assert_allclose(d_star, special.expit(mu ** 2 / 2 - mu * x),
                               atol=1e-12)


def test_optimal_discriminator_where_both_densities_vanish():
    uniform_a = stats.uniform(0.0, 1.0).pdf
    uniform_b = stats.uniform(0.5, 1.0).pdf

    d_star = gan_theory.optimal_discriminator(uniform_a, uniform_b)

    np.testing.assert_allclose(d_star(np.array([0.25, 0.75, 1.25, 3.0])),
                               [1.0, 0.5, 0.0, 0.5])


def test_optimal_discriminator_maximizes_value():
    p_data, p_g = _densities(1.0)
    criterion = gan_theory.virtual_training_criterion(p_data, p_g)

    def shifted(x):
        return special.expit(0.5 - 1.2 * np.asarray(x))

    constant = gan_theory.value_function(lambda x: 0.5, p_data, p_g)
    other = gan_theory.value_function(shifted, p_data, p_g)

    assert constant == pytest.approx(-LOG_4, abs=1e-9)
    assert other < criterion
    assert constant < criterion


def test_trained_discriminator_approaches_optimum():
    mu = 1.0
    d_star = gan_theory.optimal_discriminator(*_densities(mu))
    grid = np.linspace(-2.0, 3.0, 101)

    trained = gan_theory.fit_discriminator(
        lambda rng, n: rng.normal(0.0, 1.0, n),
        lambda rng, n: rng.normal(mu, 1.0, n),
        steps=300, batch_size=1024, seed=0)
    error = np.abs(trained(grid) - d_star(grid))

    assert error.mean() < 0.05
    # Its value is close to, and not above, the optimum C(G).
    value = gan_theory.value_function(trained, *_densities(mu))
    criterion = gan_theory.virtual_training_criterion(*_densities(mu))
    assert value <= criterion + 1e-9
    assert value == pytest.approx(criterion, abs=5e-3)


def test_theory_rejects_invalid_arguments():
    p = stats.norm(0.0, 1.0).pdf
    with pytest.raises(ValueError, match="density function"):
        gan_theory.jensen_shannon_divergence(p, 3.0)
    with pytest.raises(ValueError, match="lower < upper"):
        gan_theory.virtual_training_criterion(p, p, support=(1.0, -1.0))
    with pytest.raises(ValueError, match="steps"):
        gan_theory.fit_discriminator(None, None, steps=0)
