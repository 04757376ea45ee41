"""Stochastic layers for Bayesian neural networks, native to Keras 3.

`MCDropout` keeps dropout on at prediction (Gal and Ghahramani 2016) and
`DenseVariational` learns a Gaussian posterior over its weights by Bayes by
Backprop (Blundell et al. 2015). Both draw their noise from a seed generator
while training. At prediction, `sample=i` draws from the fixed seed
`seed + i`, so a predictive distribution of `num_samples` draws is a
deterministic function of the input batch, as a served model must be.
"""

import math

import keras
from keras import ops

from zoo._validation import check_positive_ints


def fixed_random_bits(shape, seed):
    """Draw int32 random bits from a fixed integer seed with Philox.

    Float draws of TensorFlow 2.21 (`stateless_uniform`, even with
    `alg="philox"`) gave other numbers when a loaded SavedModel was
    compiled with XLA, while full-range integer draws match. Served
    predictions therefore build their floats from these bits, so they are
    equal with and without XLA (the stand-in for TPUs).
    """
    import tensorflow as tf

    return tf.random.stateless_uniform(
        shape, seed=tf.constant([seed, 0], "int64"), minval=None,
        maxval=None, dtype=tf.int32, alg="philox")


def _bits_to_unit(bits):
    """Map int32 bits to floats in (0, 1) from their 24 high bits."""
    import tensorflow as tf

    high = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 8), 0xFFFFFF)
    return (tf.cast(high, "float32") + 0.5) * (2.0**-24)


def _fixed_uniform(shape, seed, dtype):
    """Draw uniform (0, 1) values from a fixed integer seed."""
    return ops.cast(_bits_to_unit(fixed_random_bits(shape, seed)), dtype)


def _fixed_normal(shape, seed, dtype):
    """Draw N(0, 1) values from a fixed integer seed (Box-Muller)."""
    import tensorflow as tf

    bits = fixed_random_bits(tf.concat([[2], tf.cast(shape, "int32")], 0),
                             seed)
    first, second = _bits_to_unit(bits[0]), _bits_to_unit(bits[1])
    radius = tf.sqrt(-2.0 * tf.math.log(first))
    return ops.cast(radius * tf.cos(2.0 * math.pi * second), dtype)


def _check_rate(rate):
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate}")


@keras.saving.register_keras_serializable(package="zoo")
class MCDropout(keras.layers.Layer):
    """Dropout that stays on at prediction, for Monte Carlo dropout.

    While training it behaves as `keras.layers.Dropout`. At prediction it
    drops units too: call it with `sample=i` to draw the `i`-th mask of a
    fixed sequence (seeded by `seed + i`), so repeated predictions are
    reproducible. Batch normalization layers around it keep their usual
    inference behaviour (moving statistics).

    Args:
        rate: Fraction of units to drop, in [0, 1).
        seed: Base seed of the prediction masks. Defaults to 0.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Any tensor.
        training: Python boolean. Defaults to `None` (prediction).
        sample: Index of the prediction mask. Defaults to 0.

    Returns:
        `inputs` with units dropped and the rest scaled by `1 / (1 - rate)`.

    References:
        Gal, Ghahramani (2016). Dropout as a Bayesian approximation.
        https://arxiv.org/abs/1506.02142
    """

    def __init__(self, rate, seed=0, **kwargs):
        super().__init__(**kwargs)
        _check_rate(rate)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None, sample=0):
        if self.rate == 0.0:
            return inputs
        if training:
            return keras.random.dropout(inputs, self.rate,
                                        seed=self.seed_generator)
        keep = _fixed_uniform(ops.shape(inputs), int(self.seed) + int(sample),
                              "float32") >= self.rate
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="zoo")
class DenseVariational(keras.layers.Layer):
    """Dense layer with a factorized Gaussian posterior over its weights.

    Each weight has a posterior N(mu, sigma^2) with sigma = softplus(rho).
    Every call draws weights by reparameterization, w = mu + sigma * eps,
    and the layer adds `kl_weight * KL(q(w) || p(w))` to the model's losses
    through `add_loss`, with the prior p(w) = N(0, prior_std^2). Set
    `kl_weight` to 1 / (number of training examples) so that the summed
    losses are the negative evidence lower bound per example.

    Args:
        units: Output width.
        activation: Activation. Defaults to `None` (linear).
        prior_std: Standard deviation of the Gaussian prior. Defaults to 1.
        kl_weight: Scale of the KL term. Defaults to 1e-3.
        initial_std: Initial posterior standard deviation. Defaults to 1e-3.
        seed: Base seed of the prediction draws. Defaults to 0.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor `(batch, features)`.
        training: Python boolean. Defaults to `None` (prediction).
        sample: Index of the prediction draw (seeded by `seed + sample`).
            Defaults to 0.

    Returns:
        Tensor `(batch, units)`.

    References:
        Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight
        uncertainty in neural networks. https://arxiv.org/abs/1505.05424
    """

    def __init__(self, units, activation=None, prior_std=1.0, kl_weight=1e-3,
                 initial_std=1e-3, seed=0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(
                f"`units` must be a positive integer. Received: units={units}"
            )
        if prior_std <= 0:
            raise ValueError(
                f"`prior_std` must be positive. Received: {prior_std}"
            )
        if kl_weight < 0:
            raise ValueError(
                f"`kl_weight` must be >= 0. Received: {kl_weight}"
            )
        if initial_std <= 0:
            raise ValueError(
                f"`initial_std` must be positive. Received: {initial_std}"
            )
        self.units = units
        self.activation = keras.activations.get(activation)
        self.prior_std = prior_std
        self.kl_weight = kl_weight
        self.initial_std = initial_std
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        features = input_shape[-1]
        # softplus(rho) = initial_std  <=>  rho = log(exp(initial_std) - 1).
        rho_start = math.log(math.expm1(self.initial_std))
        self.kernel_mu = self.add_weight(
            name="kernel_mu", shape=(features, self.units),
            initializer="glorot_uniform")
        self.kernel_rho = self.add_weight(
            name="kernel_rho", shape=(features, self.units),
            initializer=keras.initializers.Constant(rho_start))
        self.bias_mu = self.add_weight(
            name="bias_mu", shape=(self.units,), initializer="zeros")
        self.bias_rho = self.add_weight(
            name="bias_rho", shape=(self.units,),
            initializer=keras.initializers.Constant(rho_start))

    def _kl(self, mu, sigma):
        # Closed-form KL(N(mu, sigma^2) || N(0, prior^2)), summed.
        prior = self.prior_std
        return ops.sum(
            ops.log(prior / sigma)
            + (ops.square(sigma) + ops.square(mu)) / (2.0 * prior**2)
            - 0.5
        )

    def call(self, inputs, training=None, sample=0):
        kernel_sigma = ops.softplus(self.kernel_rho)
        bias_sigma = ops.softplus(self.bias_rho)
        dtype = kernel_sigma.dtype
        if training:
            kernel_noise = keras.random.normal(
                ops.shape(self.kernel_mu), dtype=dtype,
                seed=self.seed_generator)
            bias_noise = keras.random.normal(
                ops.shape(self.bias_mu), dtype=dtype,
                seed=self.seed_generator)
        else:
            # Two fixed seeds per draw: one for the kernel, one for the bias.
            seed = 2 * (int(self.seed) + int(sample))
            kernel_noise = _fixed_normal(ops.shape(self.kernel_mu), seed,
                                         dtype)
            bias_noise = _fixed_normal(ops.shape(self.bias_mu), seed + 1,
                                       dtype)
        kernel = self.kernel_mu + kernel_sigma * kernel_noise
        bias = self.bias_mu + bias_sigma * bias_noise
        if training and self.kl_weight:
            kl = self._kl(self.kernel_mu, kernel_sigma) + self._kl(
                self.bias_mu, bias_sigma)
            self.add_loss(self.kl_weight * kl)
        # [batch, features] @ [features, units] -> [batch, units]
        outputs = ops.matmul(inputs, ops.cast(kernel, inputs.dtype)) + \
            ops.cast(bias, inputs.dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "prior_std": self.prior_std,
            "kl_weight": self.kl_weight,
            "initial_std": self.initial_std,
            "seed": self.seed,
        })
        return config


@keras.saving.register_keras_serializable(package="zoo")
class BayesianMLP(keras.Model):
    """MLP classifier whose prediction averages stochastic forward passes.

    Hidden layers are Dense, batch normalization, ReLU and `MCDropout`
    (`kind="mc_dropout"`), or `DenseVariational` and ReLU
    (`kind="bayes_by_backprop"`). Training runs one stochastic pass per
    step. Prediction (`training=False`) returns the mean of
    `num_samples` softmax outputs, each from a fixed, seeded draw, so the
    same batch always gets the same predictive distribution.

    Args:
        input_dim: Number of input features.
        num_classes: Number of classes.
        hidden_units: Widths of the hidden layers.
        kind: `"mc_dropout"` or `"bayes_by_backprop"`.
        dropout: Dropout rate of `MCDropout`.
        num_samples: Forward passes averaged at prediction.
        kl_weight: KL scale of `DenseVariational` layers.
        prior_std: Prior standard deviation of `DenseVariational` layers.
        seed: Base seed of the prediction draws.
        **kwargs: Base model arguments.

    Note: a prediction depends on the batch it is in, because the dropout
    masks are drawn per batch row. Compare predictive spreads on batches of
    the same size.
    """

    KINDS = ("mc_dropout", "bayes_by_backprop")

    def __init__(self, input_dim, num_classes, hidden_units, kind, dropout,
                 num_samples, kl_weight, prior_std, seed=0, **kwargs):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(
                f"`kind` must be one of {', '.join(self.KINDS)}. "
                f"Received: kind={kind!r}"
            )
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(
                "`num_samples` must be a positive integer. "
                f"Received: num_samples={num_samples!r}"
            )
        check_positive_ints("hidden_units", hidden_units)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.hidden_units = list(hidden_units)
        self.kind = kind
        self.dropout = dropout
        self.num_samples = num_samples
        self.kl_weight = kl_weight
        self.prior_std = prior_std
        self.seed = seed

        self.blocks = []
        for index, units in enumerate(self.hidden_units):
            if kind == "mc_dropout":
                block = [
                    keras.layers.Dense(units, name=f"dense_{index}"),
                    keras.layers.BatchNormalization(name=f"norm_{index}"),
                    keras.layers.ReLU(name=f"relu_{index}"),
                    MCDropout(dropout, seed=seed + 1000 * index,
                              name=f"mc_dropout_{index}"),
                ]
            else:
                block = [
                    DenseVariational(units, activation="relu",
                                     kl_weight=kl_weight,
                                     prior_std=prior_std,
                                     seed=seed + 1000 * index,
                                     name=f"variational_{index}"),
                ]
            self.blocks.append(block)
        if kind == "mc_dropout":
            self.head = keras.layers.Dense(num_classes, name="logits")
        else:
            self.head = DenseVariational(
                num_classes, kl_weight=kl_weight, prior_std=prior_std,
                seed=seed + 1000 * len(self.hidden_units), name="logits")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.head.build(shape)
        self.built = True

    def _forward(self, inputs, training, sample):
        x = inputs
        for block in self.blocks:
            for layer in block:
                if isinstance(layer, (MCDropout, DenseVariational)):
                    x = layer(x, training=training, sample=sample)
                else:
                    x = layer(x, training=training)
        if isinstance(self.head, DenseVariational):
            logits = self.head(x, training=training, sample=sample)
        else:
            logits = self.head(x)
        return ops.softmax(logits)

    def call(self, inputs, training=None):
        if training:
            return self._forward(inputs, True, 0)
        return ops.mean(self.predict_samples(inputs), axis=0)

    def predict_samples(self, inputs, num_samples=None, offset=0):
        """Return `num_samples` softmax draws stacked as `(samples, batch,
        classes)`; draw `i` is seeded by `seed + offset + i`."""
        count = num_samples or self.num_samples
        draws = [self._forward(inputs, False, offset + i)
                 for i in range(count)]
        # [samples, batch, classes]
        return ops.stack(draws, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_dim": self.input_dim,
            "num_classes": self.num_classes,
            "hidden_units": self.hidden_units,
            "kind": self.kind,
            "dropout": self.dropout,
            "num_samples": self.num_samples,
            "kl_weight": self.kl_weight,
            "prior_std": self.prior_std,
            "seed": self.seed,
        })
        return config
