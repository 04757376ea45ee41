"""GAN theory for one-dimensional densities, computed numerically.

For a fixed generator density p_g, Goodfellow et al. (2014) show that the
discriminator maximizing the GAN value function

    V(D, G) = E_{x~p_data}[log D(x)] + E_{x~p_g}[log(1 - D(x))]

is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and that the value it reaches,
the virtual training criterion C(G) = V(D*, G), equals
-log 4 + 2 JSD(p_data || p_g). So C(G) is minimal, at -log 4, exactly when
p_g = p_data. This module computes D*, V, C(G), the Kullback-Leibler and
Jensen-Shannon divergences by numerical integration (`scipy.integrate.quad`)
for densities given as vectorized functions, and fits a neural
discriminator with the zoo's GAN loss to compare with D*.

Example:

```python
from scipy import stats

p_data, p_g = stats.norm(0, 1).pdf, stats.norm(1, 1).pdf
virtual_training_criterion(p_data, p_g)           # -1.1951...
-np.log(4) + 2 * jensen_shannon_divergence(p_data, p_g)   # the same
```

References:
    Goodfellow et al. (2014). Generative adversarial nets, Proposition 1
    and Theorem 1. https://arxiv.org/abs/1406.2661
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

LOG_4 = float(np.log(4.0))


def _check_density(argument, density):
    if not callable(density):
        raise ValueError(
            f"`{argument}` must be a density function of x, such as "
            f"scipy.stats.norm(0, 1).pdf. Received: {density!r}"
        )


def _check_support(support):
    lower, upper = support
    if not lower < upper:
        raise ValueError(
            "`support` must be (lower, upper) with lower < upper. "
            f"Received: support={support!r}"
        )
    return float(lower), float(upper)


def _integrate(function, support):
    from scipy import integrate

    lower, upper = _check_support(support)
    value, error = integrate.quad(function, lower, upper, epsabs=1e-12,
                                  epsrel=1e-10, limit=200)
    if error > 1e-6:
        logger.warning("Numerical integral %.6g has error estimate %.3g; "
                       "pass a tighter `support`.", value, error)
    return float(value)


def optimal_discriminator(p_data, p_g):
    """Return the optimal discriminator D* of the GAN value function.

    Args:
        p_data: Data density, a vectorized function of x.
        p_g: Generator density, a vectorized function of x.

    Returns:
        A function x -> p_data(x) / (p_data(x) + p_g(x)). Where both
        densities are 0 every value is optimal; it returns 0.5 there.
    """
    _check_density("p_data", p_data)
    _check_density("p_g", p_g)

    def discriminator(x):
        p, q = np.asarray(p_data(x), "float64"), np.asarray(p_g(x), "float64")
        total = p + q
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.5)

    return discriminator


def value_function(discriminator, p_data, p_g, support=(-np.inf, np.inf)):
    """Return V(D, G) = E_data[log D(x)] + E_g[log(1 - D(x))].

    Args:
        discriminator: Function x -> D(x) in (0, 1).
        p_data: Data density.
        p_g: Generator density.
        support: Integration interval. Defaults to the whole real line.

    Returns:
        The value, a float <= `virtual_training_criterion(p_data, p_g)`.
    """
    from scipy import special

    _check_density("p_data", p_data)
    _check_density("p_g", p_g)

    def integrand(x):
        d = float(np.clip(discriminator(x), 0.0, 1.0))
        return float(special.xlogy(p_data(x), d)
                     + special.xlogy(p_g(x), 1.0 - d))

    return _integrate(integrand, support)


def _optimal_value_integrand(p_data, p_g):
    from scipy import special

    def integrand(x):
        p, q = float(p_data(x)), float(p_g(x))
        if p + q == 0.0:
            return 0.0
        # log D* = log p - log(p + q) and log(1 - D*) = log q - log(p + q).
        # Computing 1 - p / (p + q) instead rounds to 0 in the far tails,
        # where q is tiny but its log is finite.
        return float(special.xlogy(p, p) + special.xlogy(q, q)
                     - special.xlogy(p + q, p + q))

    return integrand


def virtual_training_criterion(p_data, p_g, support=(-np.inf, np.inf)):
    """Return C(G) = V(D*, G), the value of the optimal discriminator.

    It is computed from D* directly, as E_data[log D*(x)] +
    E_g[log(1 - D*(x))], not through the Jensen-Shannon divergence, so
    the two can check each other.

    Args:
        p_data: Data density.
        p_g: Generator density.
        support: Integration interval. Defaults to the whole real line.

    Returns:
        C(G), a float in [-log 4, 0].
    """
    _check_density("p_data", p_data)
    _check_density("p_g", p_g)
    return _integrate(_optimal_value_integrand(p_data, p_g), support)


def kl_divergence(p, q, support=(-np.inf, np.inf)):
    """Return KL(p || q) = E_p[log p(x) - log q(x)] in nats.

    Args:
        p: Density of the expectation.
        q: Reference density; it must be positive where `p` is.
        support: Integration interval. Defaults to the whole real line.
    """
    from scipy import special

    _check_density("p", p)
    _check_density("q", q)

    def integrand(x):
        px, qx = float(p(x)), float(q(x))
        if px == 0.0:
            return 0.0
        if qx == 0.0:
            return np.inf
        return float(special.xlogy(px, px) - special.xlogy(px, qx))

    return _integrate(integrand, support)


def jensen_shannon_divergence(p, q, support=(-np.inf, np.inf)):
    """Return JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2.

    Args:
        p: First density.
        q: Second density.
        support: Integration interval. Defaults to the whole real line.

    Returns:
        The divergence in nats, in [0, log 2].
    """
    _check_density("p", p)
    _check_density("q", q)

    def mixture(x):
        return 0.5 * (np.asarray(p(x)) + np.asarray(q(x)))

    return 0.5 * kl_divergence(p, mixture, support) + \
        0.5 * kl_divergence(q, mixture, support)


def fit_discriminator(sample_data, sample_g, steps=600, batch_size=512,
                      hidden_units=16, learning_rate=0.01, seed=0):
    """Train a small discriminator with the zoo's GAN loss on two samplers.

    The discriminator is an MLP from x to a logit, trained with
    `zoo.layers.gan.discriminator_loss` (the loss `GAN.train_step` uses)
    on fresh batches from both samplers at each step. For a fixed p_g its
    sigmoid output approaches D*.

    Args:
        sample_data: Function `(rng, count) -> array (count,)` of data
            samples.
        sample_g: Function `(rng, count) -> array (count,)` of generator
            samples.
        steps: Adam steps. Defaults to 600.
        batch_size: Samples of each kind per step. Defaults to 512.
        hidden_units: Width of the one tanh hidden layer. Defaults to 16.
        learning_rate: Adam learning rate. Defaults to 0.01.
        seed: Seed of the weights and the samples. Defaults to 0.

    Returns:
        A function x -> D(x) in (0, 1), elementwise on NumPy arrays.
    """
    import keras
    import tensorflow as tf
    from scipy import special

    from zoo.layers.gan import discriminator_loss

    for argument, value in (("steps", steps), ("batch_size", batch_size),
                            ("hidden_units", hidden_units)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{argument}` must be a positive integer. "
                f"Received: {argument}={value!r}"
            )
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = keras.Sequential([
        keras.Input(shape=(1,)),
        keras.layers.Dense(hidden_units, activation="tanh"),
        keras.layers.Dense(1),
    ], name="discriminator_1d")
    optimizer = keras.optimizers.Adam(learning_rate)
    # real, fake: (steps, batch_size, 1), drawn up front so the whole
    # training runs as one graph.
    real = np.asarray(sample_data(rng, steps * batch_size), "float32")
    fake = np.asarray(sample_g(rng, steps * batch_size), "float32")
    real = tf.constant(real.reshape(steps, batch_size, 1))
    fake = tf.constant(fake.reshape(steps, batch_size, 1))

    @tf.function
    def train():
        for step in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = discriminator_loss(
                    model(real[step], training=True),
                    model(fake[step], training=True))
            weights = model.trainable_variables
            gradients = tape.gradient(loss, weights)
            optimizer.apply_gradients(zip(gradients, weights))
        return loss

    train()

    # The trained MLP as NumPy, so integrals can evaluate it point by
    # point without a Keras call each time.
    kernel, bias, head_kernel, head_bias = (
        np.asarray(w, "float64") for w in model.get_weights())

    def discriminator(x):
        x = np.asarray(x, "float64")
        hidden = np.tanh(x[..., None] * kernel[0] + bias)
        return special.expit(hidden @ head_kernel[:, 0] + head_bias[0])

    return discriminator
