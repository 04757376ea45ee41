"""A restricted Boltzmann machine with binary units, as a Keras model.

The model is trained by contrastive divergence in its own `train_step`, and
its forward pass returns the hidden-unit probabilities, which are the
features it serves.
"""

import keras
import tensorflow as tf
from keras import ops


def _check_positive_int(argument, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{argument}` must be a positive integer. Received: "
            f"{argument}={value!r}"
        )


@keras.saving.register_keras_serializable(package="zoo")
class RestrictedBoltzmannMachine(keras.Model):
    """Restricted Boltzmann machine with binary visible and hidden units.

    The energy of a joint state is `E(v, h) = -a^T v - b^T h - v^T W h`,
    with visible bias `a`, hidden bias `b` and weights `W`. Both
    conditionals factorize: `p(h_j = 1 | v) = sigmoid(b_j + v^T W[:, j])`
    and `p(v_i = 1 | h) = sigmoid(a_i + W[i, :] h)`.

    `fit` runs contrastive divergence: CD-k starts `cd_steps` Gibbs steps
    at each batch of data, and persistent CD (`persistent=True`) continues
    `num_chains` Gibbs chains from one batch to the next. The update is the
    gradient of `mean(F(v_data)) - mean(F(v_model))`, the free energy `F`
    of the data minus that of the Gibbs samples, which equals the CD
    estimate of the negative log-likelihood gradient. Visible inputs may be
    probabilities in [0, 1], as grey pixels are; they enter the positive
    phase as they are, and Gibbs samples are binary.

    Calling the model returns `p(h = 1 | v)`, the features.

    Args:
        num_visible: Number of visible units (input features).
        num_hidden: Number of hidden units.
        cd_steps: Gibbs steps `k` of the negative phase. Defaults to 1.
        persistent: Keep the negative chains between batches (persistent
            CD, also called stochastic maximum likelihood). Defaults to
            `False`, plain CD-k.
        num_chains: Number of persistent chains. Defaults to 64. Unused
            unless `persistent`.
        weight_stddev: Standard deviation of the normal initial weights.
            Defaults to 0.01.
        seed: Seed of the Gibbs sampler and initial weights. Defaults to
            `None`.
        **kwargs: Passed to `keras.Model`.

    Call arguments:
        inputs: Visible units `(batch, num_visible)` in [0, 1].

    Returns:
        Hidden-unit probabilities `(batch, num_hidden)`.

    Example:

    ```python
    rbm = RestrictedBoltzmannMachine(64, 100, persistent=True)
    rbm.compile(optimizer=keras.optimizers.SGD(0.06))
    rbm.fit(pixels, epochs=10, batch_size=10)
    features = rbm.predict(pixels)
    samples = rbm.sample(16, steps=1000)
    ```

    References:
        Hinton (2002). Training products of experts by minimizing
        contrastive divergence. https://doi.org/10.1162/089976602760128018
        Tieleman (2008). Training restricted Boltzmann machines using
        approximations to the likelihood gradient.
        https://doi.org/10.1145/1390156.1390290
        Hinton (2010). A practical guide to training restricted Boltzmann
        machines. https://www.cs.toronto.edu/~hinton/absps/guideTR.pdf
    """

    def __init__(self, num_visible, num_hidden, cd_steps=1, persistent=False,
                 num_chains=64, weight_stddev=0.01, seed=None, **kwargs):
        _check_positive_int("num_visible", num_visible)
        _check_positive_int("num_hidden", num_hidden)
        _check_positive_int("cd_steps", cd_steps)
        _check_positive_int("num_chains", num_chains)
        if not weight_stddev > 0:
            raise ValueError(
                "`weight_stddev` must be positive. Received: "
                f"weight_stddev={weight_stddev!r}"
            )
        super().__init__(**kwargs)
        self.num_visible = num_visible
        self.num_hidden = num_hidden
        self.cd_steps = cd_steps
        self.persistent = bool(persistent)
        self.num_chains = num_chains
        self.weight_stddev = weight_stddev
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        self.kernel = self.add_weight(
            shape=(num_visible, num_hidden), name="kernel",
            initializer=keras.initializers.RandomNormal(
                stddev=weight_stddev, seed=seed),
        )
        self.visible_bias = self.add_weight(
            shape=(num_visible,), name="visible_bias", initializer="zeros")
        self.hidden_bias = self.add_weight(
            shape=(num_hidden,), name="hidden_bias", initializer="zeros")
        # Binary visible states of the persistent chains. They start at
        # zero, so the first negative phase samples from the biases alone.
        self.chains = self.add_weight(
            shape=(num_chains, num_visible), name="chains",
            initializer="zeros", trainable=False,
        )
        self.built = True

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(
            name="reconstruction_error")
        self.free_energy_tracker = keras.metrics.Mean(name="free_energy")

    # --- conditionals and sampling ----------------------------------------

    def hidden_probabilities(self, visible):
        """Return `p(h = 1 | v)`, shape `(batch, num_hidden)`."""
        visible = ops.convert_to_tensor(visible, self.compute_dtype)
        # (batch, num_visible) @ (num_visible, num_hidden)
        return ops.sigmoid(ops.matmul(visible, self.kernel) + self.hidden_bias)

    def visible_probabilities(self, hidden):
        """Return `p(v = 1 | h)`, shape `(batch, num_visible)`."""
        hidden = ops.convert_to_tensor(hidden, self.compute_dtype)
        # (batch, num_hidden) @ (num_hidden, num_visible)
        return ops.sigmoid(
            ops.matmul(hidden, ops.transpose(self.kernel)) + self.visible_bias)

    def _bernoulli(self, probabilities):
        noise = keras.random.uniform(ops.shape(probabilities),
                                     seed=self.seed_generator,
                                     dtype=probabilities.dtype)
        return ops.cast(noise < probabilities, probabilities.dtype)

    def gibbs_step(self, visible):
        """Run one block Gibbs step `v -> h -> v'` and return binary `v'`."""
        hidden = self._bernoulli(self.hidden_probabilities(visible))
        return self._bernoulli(self.visible_probabilities(hidden))

    def gibbs_chain(self, visible, steps):
        """Run `steps` Gibbs steps from `visible` and return the last sample."""
        _check_positive_int("steps", steps)
        for _ in range(steps):
            visible = self.gibbs_step(visible)
        return visible

    def sample(self, num_samples, steps=1000, initial=None):
        """Draw visible samples from the model by block Gibbs sampling.

        Args:
            num_samples: Number of independent chains. Ignored when
                `initial` is given.
            steps: Gibbs steps per chain. Defaults to 1000.
            initial: Starting visible states `(chains, num_visible)`.
                Defaults to uniform random binary states.

        Returns:
            `p(v = 1 | h)` after the last hidden sample, shape
            `(chains, num_visible)`: the chains' mean visible states, which
            plot more smoothly than binary samples.
        """
        if initial is None:
            _check_positive_int("num_samples", num_samples)
            initial = self._bernoulli(
                ops.full((num_samples, self.num_visible), 0.5,
                         dtype=self.compute_dtype))
        visible = self.gibbs_chain(initial, steps)
        hidden = self._bernoulli(self.hidden_probabilities(visible))
        return self.visible_probabilities(hidden)

    # --- energies -----------------------------------------------------------

    def energy(self, visible, hidden):
        """Return `E(v, h) = -a^T v - b^T h - v^T W h`, shape `(batch,)`."""
        visible = ops.convert_to_tensor(visible, self.compute_dtype)
        hidden = ops.convert_to_tensor(hidden, self.compute_dtype)
        interaction = ops.sum(ops.matmul(visible, self.kernel) * hidden,
                              axis=-1)
        return (-ops.matmul(visible, self.visible_bias[:, None])[:, 0]
                - ops.matmul(hidden, self.hidden_bias[:, None])[:, 0]
                - interaction)

    def free_energy(self, visible):
        """Return the free energy `F(v) = -log sum_h exp(-E(v, h))`.

        With binary hidden units the sum has the closed form
        `F(v) = -a^T v - sum_j softplus(b_j + v^T W[:, j])`, so
        `p(v)` is proportional to `exp(-F(v))`.

        Returns:
            Free energy per example, shape `(batch,)`.
        """
        visible = ops.convert_to_tensor(visible, self.compute_dtype)
        # (batch, num_hidden)
        pre_activation = ops.matmul(visible, self.kernel) + self.hidden_bias
        visible_term = ops.matmul(visible, self.visible_bias[:, None])[:, 0]
        return -visible_term - ops.sum(ops.softplus(pre_activation), axis=-1)

    def reconstruction_error(self, visible):
        """Mean squared error of the mean-field reconstruction `v -> h -> v`.

        Returns:
            Error per example, shape `(batch,)`.
        """
        visible = ops.convert_to_tensor(visible, self.compute_dtype)
        reconstruction = self.visible_probabilities(
            self.hidden_probabilities(visible))
        return ops.mean(ops.square(visible - reconstruction), axis=-1)

    # --- Keras hooks ----------------------------------------------------------

    def call(self, inputs):
        return self.hidden_probabilities(inputs)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker,
                self.free_energy_tracker]

    def _negative_phase(self, visible):
        if not self.persistent:
            return self.gibbs_chain(visible, self.cd_steps)
        chains = self.gibbs_chain(ops.convert_to_tensor(self.chains),
                                  self.cd_steps)
        self.chains.assign(chains)
        return chains

    def train_step(self, data):
        visible = data[0] if isinstance(data, (tuple, list)) else data
        visible = ops.convert_to_tensor(visible, self.compute_dtype)
        negative = ops.stop_gradient(self._negative_phase(visible))
        with tf.GradientTape() as tape:
            data_energy = ops.mean(self.free_energy(visible))
            # The gradient of this gap is the CD estimate of the gradient
            # of the negative log-likelihood.
            loss = data_energy - ops.mean(self.free_energy(negative))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(visible, loss, data_energy)

    def test_step(self, data):
        visible = data[0] if isinstance(data, (tuple, list)) else data
        visible = ops.convert_to_tensor(visible, self.compute_dtype)
        # Evaluation starts CD-k chains at the data and leaves the
        # persistent chains untouched.
        negative = self.gibbs_chain(visible, self.cd_steps)
        data_energy = ops.mean(self.free_energy(visible))
        loss = data_energy - ops.mean(self.free_energy(negative))
        return self._update_metrics(visible, loss, data_energy)

    def _update_metrics(self, visible, loss, data_energy):
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(
            self.reconstruction_error(visible))
        self.free_energy_tracker.update_state(data_energy)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_visible": self.num_visible,
            "num_hidden": self.num_hidden,
            "cd_steps": self.cd_steps,
            "persistent": self.persistent,
            "num_chains": self.num_chains,
            "weight_stddev": self.weight_stddev,
            "seed": self.seed,
        })
        return config
