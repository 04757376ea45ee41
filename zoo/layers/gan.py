"""Generative adversarial network: two networks and their own train step.

`GAN` contains a generator and a discriminator and trains them against each
other with separate optimizers, as in Goodfellow et al. (2014). The
discriminator returns logits. Its loss is the binary cross-entropy of
Goodfellow et al.'s value function. The generator minimizes
-log D(G(z)) (the "non-saturating" objective the same paper recommends
in practice) or log(1 - D(G(z))) (the minimax objective).

References:
    Goodfellow et al. (2014). Generative adversarial nets.
    https://arxiv.org/abs/1406.2661
    Salimans et al. (2016). Improved techniques for training GANs
    (one-sided label smoothing). https://arxiv.org/abs/1606.03498
"""

import logging

import keras
from keras import ops

logger = logging.getLogger(__name__)

GENERATOR_OBJECTIVES = ("non-saturating", "minimax")
EVALUATION_SEED = 1234


def discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """Compute the discriminator's loss from its logits on both batches.

    The loss is -E[log D(x)] - E[log(1 - D(G(z)))], the negated value
    function of Goodfellow et al. (2014), with each expectation estimated
    by the mean over its batch. For fixed densities p_data and p_g it is
    minimized by D*(x) = p_data(x) / (p_data(x) + p_g(x)).

    Args:
        real_logits: Discriminator logits on real samples, `(batch, 1)`.
        fake_logits: Discriminator logits on generated samples.
        label_smoothing: Target for real samples is `1 - label_smoothing`;
            generated samples keep target 0 (one-sided smoothing, Salimans
            et al. 2016). Defaults to 0.0.

    Returns:
        A scalar tensor.
    """
    real_targets = ops.full_like(real_logits, 1.0 - label_smoothing)
    fake_targets = ops.zeros_like(fake_logits)
    real_loss = keras.losses.binary_crossentropy(
        real_targets, real_logits, from_logits=True)
    fake_loss = keras.losses.binary_crossentropy(
        fake_targets, fake_logits, from_logits=True)
    return ops.mean(real_loss) + ops.mean(fake_loss)


def generator_loss(fake_logits, objective="non-saturating"):
    """Compute the generator's loss from the discriminator's logits.

    Args:
        fake_logits: Discriminator logits on generated samples.
        objective: `"non-saturating"` minimizes -E[log D(G(z))], which has
            strong gradients while D rejects the samples; `"minimax"`
            minimizes E[log(1 - D(G(z)))]. Defaults to `"non-saturating"`.

    Returns:
        A scalar tensor.
    """
    if objective == "non-saturating":
        targets = ops.ones_like(fake_logits)
        return ops.mean(keras.losses.binary_crossentropy(
            targets, fake_logits, from_logits=True))
    if objective == "minimax":
        targets = ops.zeros_like(fake_logits)
        return -ops.mean(keras.losses.binary_crossentropy(
            targets, fake_logits, from_logits=True))
    raise ValueError(
        f"`objective` must be one of {GENERATOR_OBJECTIVES}. "
        f"Received: objective={objective!r}"
    )


@keras.saving.register_keras_serializable(package="zoo")
class GAN(keras.Model):
    """A generator and a discriminator trained against each other.

    Calling the model runs the generator on latent vectors. `fit` takes
    batches of real samples, as `x` or `(x, y)` with `y` ignored. Each
    step updates the discriminator once and then the generator once, each
    on a fresh latent batch drawn from N(0, I). `evaluate` draws its
    latents with a fixed seed, so it is repeatable. `fit` and `evaluate`
    report `d_loss`, `g_loss`, and the mean discriminator outputs
    `d_real` = D(x) and `d_fake` = D(G(z)).

    The whole model saves to `.keras` with both optimizers' state and the
    latent sampler's seed state, so training resumes where it stopped.

    Note:
        `model.optimizer` is the generator's optimizer, so callbacks that
        change `model.optimizer.learning_rate` (schedules, reduce on
        plateau) change only the generator's rate.

    Args:
        generator: Keras model from `(batch, latent_dim)` to samples.
        discriminator: Keras model from samples to logits `(batch, 1)`.
        latent_dim: Size of the latent vectors. Defaults to the
            generator's input size.
        label_smoothing: One-sided label smoothing: real samples get
            target `1 - label_smoothing`. Defaults to 0.0 (none).
        generator_objective: `"non-saturating"` or `"minimax"` (see
            `generator_loss`). Defaults to `"non-saturating"`.
        seed: Seed of the latent sampler. Defaults to `None`, seeded from
            Keras' global seed (`keras.utils.set_random_seed`).
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    ```python
    gan = GAN(generator, discriminator)
    gan.compile(
        discriminator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        generator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    gan.fit(images, epochs=10)
    samples = gan.generate(16)
    ```
    """

    def __init__(self, generator, discriminator, latent_dim=None,
                 label_smoothing=0.0, generator_objective="non-saturating",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if latent_dim is None:
            latent_dim = int(generator.inputs[0].shape[-1])
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(
                "`latent_dim` must be a positive integer. "
                f"Received: latent_dim={latent_dim!r}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        if generator_objective not in GENERATOR_OBJECTIVES:
            raise ValueError(
                f"`generator_objective` must be one of "
                f"{GENERATOR_OBJECTIVES}. "
                f"Received: generator_objective={generator_objective!r}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.label_smoothing = float(label_smoothing)
        self.generator_objective = generator_objective
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed,
                                                         name="latent_seed")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.discriminator_optimizer = None
        self.generator_optimizer = None
        # Both networks are built models, so the GAN needs no build step.
        self.built = True

    def call(self, latent, training=False):
        # latent: (batch, latent_dim) -> samples: (batch, *sample_shape)
        return self.generator(latent, training=training)

    def sample_latent(self, count):
        """Draw `count` latent vectors from N(0, I) with the model's seed."""
        return keras.random.normal((count, self.latent_dim),
                                   seed=self.seed_generator)

    def generate(self, count_or_latent):
        """Return generated samples, in the generator's output range.

        Args:
            count_or_latent: Number of samples to draw, or an array of
                latent vectors `(batch, latent_dim)`.
        """
        if isinstance(count_or_latent, int):
            latent = self.sample_latent(count_or_latent)
        else:
            latent = ops.convert_to_tensor(count_or_latent, "float32")
        return self.generator(latent, training=False)

    # --- compiling and saving -------------------------------------------

    def compile(self, discriminator_optimizer, generator_optimizer,
                **kwargs):
        """Configure the two optimizers.

        Args:
            discriminator_optimizer: Optimizer (instance, name or config)
                of the discriminator.
            generator_optimizer: Optimizer of the generator.
            **kwargs: `keras.Model.compile` arguments that do not concern
                the loss, such as `steps_per_execution` or `jit_compile`.
        """
        for reserved in ("optimizer", "loss", "metrics"):
            if reserved in kwargs:
                raise ValueError(
                    f"`GAN.compile` takes no `{reserved}`: the losses come "
                    "from `label_smoothing` and `generator_objective`, and "
                    "the optimizers are `discriminator_optimizer` and "
                    f"`generator_optimizer`. Received: {reserved}="
                    f"{kwargs[reserved]!r}"
                )
        super().compile(optimizer=None, **kwargs)
        self.discriminator_optimizer = keras.optimizers.get(
            discriminator_optimizer)
        self.generator_optimizer = keras.optimizers.get(generator_optimizer)
        # Callbacks written for one optimizer read `model.optimizer` (its
        # iteration count is the step count of TensorBoard and of backups).
        # One generator update happens per step, so the generator's serves.
        self.optimizer = self.generator_optimizer
        # Creating the slots now lets `load_model` restore their values.
        self.discriminator_optimizer.build(
            self.discriminator.trainable_variables)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self._gan_compile_kwargs = dict(kwargs)

    def get_compile_config(self):
        if not self.compiled or self.discriminator_optimizer is None:
            return {}
        return {
            "discriminator_optimizer": keras.optimizers.serialize(
                self.discriminator_optimizer),
            "generator_optimizer": keras.optimizers.serialize(
                self.generator_optimizer),
            **self._gan_compile_kwargs,
        }

    def compile_from_config(self, config):
        config = dict(config)
        self.compile(
            discriminator_optimizer=keras.optimizers.deserialize(
                config.pop("discriminator_optimizer")),
            generator_optimizer=keras.optimizers.deserialize(
                config.pop("generator_optimizer")),
            **config,
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(
                self.discriminator),
            "latent_dim": self.latent_dim,
            "label_smoothing": self.label_smoothing,
            "generator_objective": self.generator_objective,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects)
        return cls(**config)

    # --- training -------------------------------------------------------

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker,
                self.d_real_tracker, self.d_fake_tracker]

    def _real_batch(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return real

    def _replica_latent(self, count):
        """Draw latents that differ across `tf.distribute` replicas.

        The seed generator's state is mirrored, so every replica would draw
        the same vectors; the replica id is folded into the drawn seed.
        """
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return self.sample_latent(count)
        seed = self.seed_generator.next()
        offset = tf.cast(context.replica_id_in_sync_group, seed.dtype)
        seed = seed + tf.stack([tf.zeros_like(offset), offset])
        return tf.random.stateless_normal((count, self.latent_dim),
                                          seed=seed)

    def train_step(self, data):
        import tensorflow as tf

        # Each replica's gradients are summed across replicas, so its loss
        # is divided by their number to average over the global batch.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1

        # real: (batch, *sample_shape)
        real = self._real_batch(data)
        batch = ops.shape(real)[0]

        # Discriminator step: real batch and fake batch, separately
        # normalized, as Radford et al. (2015) train.
        latent = self._replica_latent(batch)
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits,
                                        self.label_smoothing)
            scaled_d_loss = d_loss / replicas
        weights = self.discriminator.trainable_variables
        gradients = tape.gradient(scaled_d_loss, weights)
        self.discriminator_optimizer.apply_gradients(zip(gradients, weights))

        # Generator step on a fresh latent batch, through the updated D.
        latent = self._replica_latent(batch)
        with tf.GradientTape() as tape:
            fake_logits_for_g = self.discriminator(
                self.generator(latent, training=True), training=True)
            g_loss = generator_loss(fake_logits_for_g,
                                    self.generator_objective)
            scaled_g_loss = g_loss / replicas
        weights = self.generator.trainable_variables
        gradients = tape.gradient(scaled_g_loss, weights)
        self.generator_optimizer.apply_gradients(zip(gradients, weights))

        return self._update_trackers(d_loss, g_loss, real_logits,
                                     fake_logits)

    def test_step(self, data):
        real = self._real_batch(data)
        # A fixed seed makes evaluation repeatable: every call, and every
        # epoch's validation, scores the generator on the same latents.
        latent = keras.random.normal((ops.shape(real)[0], self.latent_dim),
                                     seed=EVALUATION_SEED)
        fake = self.generator(latent, training=False)
        real_logits = self.discriminator(real, training=False)
        fake_logits = self.discriminator(fake, training=False)
        d_loss = discriminator_loss(real_logits, fake_logits,
                                    self.label_smoothing)
        g_loss = generator_loss(fake_logits, self.generator_objective)
        return self._update_trackers(d_loss, g_loss, real_logits,
                                     fake_logits)

    def _update_trackers(self, d_loss, g_loss, real_logits, fake_logits):
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(ops.sigmoid(real_logits))
        self.d_fake_tracker.update_state(ops.sigmoid(fake_logits))
        return {m.name: m.result() for m in self.metrics}
